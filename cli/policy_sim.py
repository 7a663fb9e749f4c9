"""`keyledger policy simulate`: what the evaluator decides, and why.

Register: `main.add_command(policy)`.
"""

from __future__ import annotations

import click

from keyledger.cli import params
from keyledger.cli.output import LedgerCommand, call


@click.group("policy")
def policy() -> None:
    """Ask the authorization evaluator questions without making the call."""


@policy.command("simulate", cls=LedgerCommand, operation="SimulatePrincipalPolicy", output_options=True)
@click.option("--principal-arn", required=True, metavar="ARN",
              help="Whose request to simulate, e.g. arn:aws:iam::111122223333:user/bob.")
@click.option("--action", required=True, metavar="ACTION", help="The action, e.g. kms:Decrypt.")
@click.option("--key-id", default=None, help="The key (any id form); omit for calls without a key.")
@click.option("--encryption-context", default=None, metavar="CONTEXT",
              help="The request's encryption context: k=v,k2=v2 or a JSON object.")
def simulate(principal_arn: str, action: str, key_id: str | None, encryption_context: str | None) -> None:
    """Print the decision for PRINCIPAL doing ACTION (on KEY, with CONTEXT) and
    the statements that made it: explicit deny, allow from the key policy,
    IAM or a grant, or an implicit deny. Changes nothing (the query is logged)."""
    context = params.string_map("--encryption-context", encryption_context)
    call(lambda kms: kms.simulate_policy(principal_arn, action, key_id=key_id, encryption_context=context))


COMMANDS = (policy,)
