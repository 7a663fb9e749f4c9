"""`keyledger`: the command group, its global options, and every command.

The AWS KMS operations are built from botocore's model (`cli.kms`), as the
AWS CLI builds `aws kms`; keyledger's own verbs live one group per module
(admin, iam, policy, replay, audit, forensics, bill, demo, serve). Each is
thin: parse the options, make one library call, print.
"""

from __future__ import annotations

from pathlib import Path

import click

from keyledger.cli import admin, audit, bill, demo, files, forensics, iam, kms, policy_sim, replay
from keyledger.cli.context import PRINCIPAL_ENV, Settings, check_principal
from keyledger.cli.output import OUTPUT_FORMATS, OUTPUT_HELP, QUERY_HELP, check_query

DURABILITY_MODES = ("durable", "relaxed")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.option("--home", envvar="KEYLEDGER_HOME", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="The ledger's directory (env KEYLEDGER_HOME; default: the user's data directory, "
                   "e.g. ~/.local/share/keyledger).")
@click.option("--region", default=None,
              help="The region of the request (default: the ledger's initial region); with init, the "
                   "initial region of a new ledger (default us-east-1).")
@click.option("--account", default=None,
              help="Account id of a new ledger (default 111122223333); an existing ledger keeps its own "
                   "(naming another is an error).")
@click.option("--principal", envvar=PRINCIPAL_ENV, default=None, metavar="ARN", callback=check_principal,
              help="The IAM principal every request is made as, e.g. arn:aws:iam::111122223333:user/bob "
                   f"(env {PRINCIPAL_ENV}; default: the account root, arn:aws:iam::ACCOUNT:root).")
@click.option("--durability", type=click.Choice(DURABILITY_MODES), default="durable", show_default=True,
              help="durable: every commit synced; relaxed: synced periodically.")
@click.option("--output", type=click.Choice(OUTPUT_FORMATS), default=None, help=OUTPUT_HELP)
@click.option("--query", default=None, metavar="JMESPATH", callback=check_query, help=QUERY_HELP)
@click.version_option(package_name="keyledger")
@click.pass_context
def main(ctx: click.Context, home: Path | None, region: str | None, account: str | None,
         principal: str | None, durability: str, output: str | None, query: str | None) -> None:
    """keyledger: an embedded key management service with AWS KMS semantics,
    whose event log is its audit trail.

    Every AWS KMS operation is a command named as in `aws kms` (create-key,
    encrypt, decrypt, ...) with the AWS CLI's options, printing AWS-shaped
    JSON. Every request is authorized as `--principal` against key policies,
    grants and the `keyledger iam` policies. Start with `keyledger demo`.
    """
    ctx.obj = Settings(home=home, region=region, account=account, durability=durability,
                       output=output, query=query, principal=principal)


for _module in (admin, kms, files, policy_sim, iam, replay, audit, forensics, bill, demo):
    for _command in _module.COMMANDS:
        main.add_command(_command)

from keyledger.cli import ssm as _ssm  # noqa: E402  the parameter store: `keyledger ssm put-parameter ...`
main.add_command(_ssm.ssm)

# The HTTP endpoint (issue 5): `serve`, and the access keys it authenticates.
from keyledger.server import cli as _server_cli  # noqa: E402  (after the groups it extends)

main.add_command(_server_cli.serve)
from keyledger.cli.cluster import cluster as _cluster  # noqa: E402  (issue 15: keyledger cluster)
main.add_command(_cluster)
for _command in _server_cli.ACCESS_KEY_COMMANDS:  # create-, list-, update-, delete-access-key
    iam.iam.add_command(_command)
