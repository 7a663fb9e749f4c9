"""`keyledger iam`: principals (users, roles) and their identity-based policies.

They are ledger state, changed only through events, so who could do what
at any moment is replayable. Output follows the AWS CLI's `aws iam`
(`{"User": ...}`, `{"Role": ...}`, `PolicyDocument` as a JSON object).

`iam` is a plain click group: other modules add to it with
`iam.add_command(...)` (e.g. `create-access-key` for the HTTP server).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from keyledger.cli import params
from keyledger.cli.context import settings
from keyledger.cli.output import LedgerCommand, show
from keyledger.responses import to_aws
from keyledger.service import KeyLedger

POLICY_DOCUMENT_HELP = "The identity-based policy: file://PATH or the JSON text."


@click.group("iam")
def iam() -> None:
    """IAM principals and their identity-based policies, kept in the
    ledger's log: create users and roles, attach and detach policies."""


def iam_command(name: str, operation: str) -> Callable[[Callable[..., Any]], LedgerCommand]:
    """Declare `keyledger iam <name>`; `operation` names it in errors and in the log."""
    return iam.command(name, cls=LedgerCommand, operation=operation, output_options=True)


def principal_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--user-name | --role-name | --principal-arn: exactly one names the principal."""
    fn = click.option("--principal-arn", default=None, metavar="ARN",
                      help="Or the principal's ARN (e.g. an arn:aws:iam::ACCOUNT:root).")(fn)
    fn = click.option("--role-name", default=None, help="Or the role's name.")(fn)
    return click.option("--user-name", default=None, help="The user's name.")(fn)


def _principal(user_name: str | None, role_name: str | None,
               principal_arn: str | None) -> Callable[[KeyLedger], str]:
    """The principal's ARN, once the ledger (and so its account) is open."""
    given = [v for v in (user_name, role_name, principal_arn) if v is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --user-name, --role-name and --principal-arn",
                               click.get_current_context())
    if principal_arn is not None:
        return lambda kms: principal_arn
    kind, name = ("user", user_name) if user_name is not None else ("role", role_name)
    return lambda kms: f"arn:aws:iam::{kms.account}:{kind}/{name}"


def _as_role(entity: dict[str, Any]) -> dict[str, Any]:
    renamed = {"UserName": "RoleName", "UserId": "RoleId"}
    return {renamed.get(k, k): v for k, v in entity.items()}


@iam_command("create-user", "CreateUser")
@click.option("--user-name", required=True, help="The new user's name (1-128 of A-Z a-z 0-9 +=,.@_-).")
def create_user(user_name: str) -> None:
    """Create a user, arn:aws:iam::ACCOUNT:user/NAME (CreateUser)."""
    with settings().open() as kms:
        user = kms.create_user(user_name)
    show({"User": to_aws(user)})


@iam_command("create-role", "CreateRole")
@click.option("--role-name", required=True, help="The new role's name (1-128 of A-Z a-z 0-9 +=,.@_-).")
def create_role(role_name: str) -> None:
    """Create a role, arn:aws:iam::ACCOUNT:role/NAME (CreateRole)."""
    with settings().open() as kms:
        role = kms.create_role(role_name)
    show({"Role": _as_role(to_aws(role))})


@iam_command("attach-policy", "PutUserPolicy")
@principal_options
@click.option("--policy-name", required=True, help="The policy's name; an existing one is replaced.")
@click.option("--policy-document", required=True, metavar="POLICY", help=POLICY_DOCUMENT_HELP)
def attach_policy(user_name: str | None, role_name: str | None, principal_arn: str | None,
                  policy_name: str, policy_document: str) -> None:
    """Attach (or replace) a named identity-based policy of a user or role (PutUserPolicy)."""
    principal = _principal(user_name, role_name, principal_arn)
    document = params.text("--policy-document", policy_document)
    with settings().open() as kms:
        kms.put_principal_policy(principal(kms), policy_name, document)


@iam_command("detach-policy", "DeleteUserPolicy")
@principal_options
@click.option("--policy-name", required=True, help="The policy's name.")
def detach_policy(user_name: str | None, role_name: str | None, principal_arn: str | None,
                  policy_name: str) -> None:
    """Detach a named identity-based policy from a user or role (DeleteUserPolicy)."""
    principal = _principal(user_name, role_name, principal_arn)
    with settings().open() as kms:
        kms.delete_principal_policy(principal(kms), policy_name)


@iam_command("list-users", "ListUsers")
def list_users() -> None:
    """List the users of the ledger (ListUsers)."""
    with settings().open() as kms:
        users = kms.list_users()
    show(to_aws(users))


@iam_command("list-attached-policies", "ListUserPolicies")
@principal_options
def list_attached_policies(user_name: str | None, role_name: str | None, principal_arn: str | None) -> None:
    """List the names of a user's or role's policies (ListUserPolicies)."""
    principal = _principal(user_name, role_name, principal_arn)
    with settings().open() as kms:
        names = kms.list_principal_policies(principal(kms))
    show(to_aws(names))


@iam_command("get-policy", "GetUserPolicy")
@principal_options
@click.option("--policy-name", required=True, help="The policy's name.")
def get_policy(user_name: str | None, role_name: str | None, principal_arn: str | None, policy_name: str) -> None:
    """Print one of a user's or role's policies, its document as a JSON
    object as `aws iam get-user-policy` does (GetUserPolicy)."""
    principal = _principal(user_name, role_name, principal_arn)
    with settings().open() as kms:
        arn = principal(kms)
        found = to_aws(kms.get_principal_policy(arn, policy_name))
    found["PolicyDocument"] = json.loads(found["PolicyDocument"])  # the service checked it is JSON
    show(_as_role(found) if ":role/" in arn else found)


COMMANDS = [iam]
