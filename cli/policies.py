"""Key policies and grants: one command per AWS operation.

Policy documents go to the service as text (`file://PATH` or the literal
JSON) and are checked there, so a bad one is the service's
MalformedPolicyDocumentException naming the problem, as AWS reports it.
Grant constraints take the AWS CLI's shorthand
(`EncryptionContextSubset={k=v,k2=v2}`) or a JSON object.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

from keyledger.cli import params
from keyledger.cli.keys import bypass_lockout_option, grant_tokens_option, key_id_option, limit_option, marker_option
from keyledger.cli.output import call, operation

POLICY_NAME = "default"  # the only key policy name AWS KMS has
policy_name_option = click.option("--policy-name", default=POLICY_NAME, show_default=True,
                                  help="The key policy's name (always default).")
grant_id_option = click.option("--grant-id", required=True, help="The grant's id (GrantId of create-grant).")


# -- grant constraints ----------------------------------------------------------

CONSTRAINT_MEMBERS = ("EncryptionContextSubset", "EncryptionContextEquals")
_CONSTRAINTS_HELP = ("expected EncryptionContextSubset={k=v,...} or EncryptionContextEquals={k=v,...}, "
                     "or a JSON object")
# One `Member={k=v,...}` of the shorthand, and the comma (or end) after it.
_SHORTHAND_MEMBER = re.compile(r"\s*([A-Za-z]+)\s*=\s*\{([^{}]*)\}\s*(,|$)")


def _constraint_member(param: str, name: str, value: Any) -> dict[str, str]:
    if name not in CONSTRAINT_MEMBERS:
        raise click.BadParameter(f"unknown constraint {name!r} (expected {' or '.join(CONSTRAINT_MEMBERS)})",
                                 param_hint=param)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise click.BadParameter(f"{name} must be a map of strings", param_hint=param)
    return value


def grant_constraints(param: str, value: str | None) -> dict[str, dict[str, str]] | None:
    """--constraints: `EncryptionContextSubset={k=v,k2=v2}` (the AWS CLI's
    shorthand), a JSON object, or file:// of either. Which members may be
    combined is the service's to say."""
    text = params.text(param, value)
    if text is None:
        return None
    text = text.strip()
    out: dict[str, dict[str, str]] = {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"invalid JSON: {exc.msg} at position {exc.pos}", param_hint=param) from None
        if not isinstance(data, dict):
            raise click.BadParameter(_CONSTRAINTS_HELP, param_hint=param)
        return {name: _constraint_member(param, name, v) for name, v in data.items()}
    pos = 0
    while pos < len(text):
        match = _SHORTHAND_MEMBER.match(text, pos)
        if match is None or (match.group(3) == "," and match.end() == len(text)):
            raise click.BadParameter(_CONSTRAINTS_HELP, param_hint=param)
        name, body = match.group(1), match.group(2)
        if name in out:
            raise click.BadParameter(f"{name} is given twice", param_hint=param)
        out[name] = _constraint_member(param, name, params.string_map(param, body) if body.strip() else {})
        pos = match.end()
    if not out:
        raise click.BadParameter(_CONSTRAINTS_HELP, param_hint=param)
    return out


# -- key policies ---------------------------------------------------------------

@operation("put-key-policy")
@key_id_option
@click.option("--policy", required=True, metavar="POLICY", help="The key policy: file://PATH or the JSON text.")
@policy_name_option
@bypass_lockout_option
def put_key_policy(key_id: str, policy: str, policy_name: str, bypass_policy_lockout_safety_check: bool) -> None:
    """Replace a key's policy; unless bypassed, the caller must still be
    allowed to change it afterwards (PutKeyPolicy)."""
    document = params.text("--policy", policy)
    call(lambda kms: kms.put_key_policy(key_id, document, policy_name=policy_name,
                                        bypass_policy_lockout_safety_check=bypass_policy_lockout_safety_check))


@operation("get-key-policy")
@key_id_option
@policy_name_option
def get_key_policy(key_id: str, policy_name: str) -> None:
    """Print a key's policy document, as a JSON string (GetKeyPolicy)."""
    call(lambda kms: kms.get_key_policy(key_id, policy_name=policy_name))


@operation("list-key-policies")
@key_id_option
@limit_option
@marker_option
def list_key_policies(key_id: str, limit: int | None, marker: str | None) -> None:
    """List the names of a key's policies: always default (ListKeyPolicies)."""
    call(lambda kms: kms.list_key_policies(key_id, limit=limit, marker=marker))


# -- grants -----------------------------------------------------------------------

@operation("create-grant", list_options=["--operations", "--grant-tokens"])
@key_id_option
@click.option("--grantee-principal", required=True, metavar="ARN",
              help="Who the grant lets use the key, e.g. arn:aws:iam::111122223333:user/bob.")
@click.option("--operations", multiple=True, required=True, metavar="OPS",
              help="What it may do: Decrypt Encrypt GenerateDataKey ... (space-separated, or a JSON list).")
@click.option("--retiring-principal", default=None, metavar="ARN", help="Who may also retire the grant.")
@click.option("--constraints", default=None, metavar="CONSTRAINTS",
              help="EncryptionContextSubset={k=v,...} or EncryptionContextEquals={k=v,...}, or a JSON object: "
                   "the grant holds only for requests with that encryption context.")
@click.option("--name", default=None, help="A name; creating the same grant with the same name again "
                                           "returns the existing grant.")
@grant_tokens_option
def create_grant(key_id: str, grantee_principal: str, operations: tuple[str, ...], retiring_principal: str | None,
                 constraints: str | None, name: str | None, grant_tokens: tuple[str, ...]) -> None:
    """Let a principal use a key for some operations, at once, without
    changing the key policy (CreateGrant). Prints GrantToken and GrantId."""
    ops = params.string_list("--operations", operations) or []
    constraint_map = grant_constraints("--constraints", constraints)
    tokens = params.string_list("--grant-tokens", grant_tokens)
    call(lambda kms: kms.create_grant(key_id, grantee_principal, ops, retiring_principal=retiring_principal,
                                      constraints=constraint_map, name=name, grant_tokens=tokens))


@operation("list-grants")
@key_id_option
@click.option("--grant-id", default=None, help="Only this grant.")
@click.option("--grantee-principal", default=None, metavar="ARN", help="Only the grants to this principal.")
@limit_option
@marker_option
def list_grants(key_id: str, grant_id: str | None, grantee_principal: str | None, limit: int | None,
                marker: str | None) -> None:
    """List the grants of a key, one page (ListGrants)."""
    call(lambda kms: kms.list_grants(key_id, grant_id=grant_id, grantee_principal=grantee_principal,
                                     limit=limit, marker=marker))


@operation("list-retirable-grants")
@click.option("--retiring-principal", required=True, metavar="ARN",
              help="The principal whose retirable grants to list.")
@limit_option
@marker_option
def list_retirable_grants(retiring_principal: str, limit: int | None, marker: str | None) -> None:
    """List the grants, of every key, that a principal may retire (ListRetirableGrants)."""
    call(lambda kms: kms.list_retirable_grants(retiring_principal, limit=limit, marker=marker))


@operation("retire-grant")
@click.option("--grant-token", default=None, metavar="TOKEN", help="The grant's token (GrantToken of create-grant).")
@click.option("--key-id", default=None, help="With --grant-id, instead of --grant-token: the grant's key.")
@click.option("--grant-id", default=None, help="With --key-id: the grant's id.")
def retire_grant(grant_token: str | None, key_id: str | None, grant_id: str | None) -> None:
    """Retire a grant: by its token, or by key and grant id. For its retiring
    principal, its grantee (if it may RetireGrant) or the account (RetireGrant)."""
    call(lambda kms: kms.retire_grant(grant_token=grant_token, key_id=key_id, grant_id=grant_id))


@operation("revoke-grant")
@key_id_option
@grant_id_option
def revoke_grant(key_id: str, grant_id: str) -> None:
    """Revoke a grant: for whoever the key policy lets manage the key (RevokeGrant)."""
    call(lambda kms: kms.revoke_grant(key_id, grant_id))


COMMANDS = [put_key_policy, get_key_policy, list_key_policies, create_grant, list_grants,
            list_retirable_grants, retire_grant, revoke_grant]
