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
    ledger's log: create users and roles, put and delete their inline
    policies (named as `aws iam` names them)."""


def iam_command(name: str, operation: str) -> Callable[[Callable[..., Any]], LedgerCommand]:
    """Declare `keyledger iam <name>`; `operation` names it in errors and in the log."""
    return iam.command(name, cls=LedgerCommand, operation=operation, output_options=True)  # type: ignore[return-value]


def _as_role(entity: dict[str, Any]) -> dict[str, Any]:
    """A role as `aws iam` prints it: RoleName, RoleId, the trust policy as a JSON object."""
    renamed = {"UserName": "RoleName", "UserId": "RoleId"}
    shown = {renamed.get(k, k): v for k, v in entity.items()}
    if isinstance(shown.get("AssumeRolePolicyDocument"), str):
        shown["AssumeRolePolicyDocument"] = json.loads(shown["AssumeRolePolicyDocument"])
    return shown


TAGS_HELP = "A tag (repeat the option for more), or a JSON list of {\"Key\": .., \"Value\": ..}."


@iam_command("create-user", "CreateUser")
@click.option("--user-name", required=True, help="The new user's name (1-128 of A-Z a-z 0-9 +=,.@_-).")
@click.option("--tags", multiple=True, metavar="Key=k,Value=v", help=TAGS_HELP)
def create_user(user_name: str, tags: tuple[str, ...]) -> None:
    """Create a user, arn:aws:iam::ACCOUNT:user/NAME (CreateUser)."""
    with settings().open() as kms:
        user = kms.create_user(user_name, tags=_iam_tags(tags) or None)
    show({"User": to_aws(user)})


@iam_command("create-role", "CreateRole")
@click.option("--role-name", required=True, help="The new role's name (1-128 of A-Z a-z 0-9 +=,.@_-).")
@click.option("--assume-role-policy-document", default=None, metavar="POLICY",
              help="The trust policy: who may assume the role (sts:AssumeRole), file://PATH or the JSON text. "
                   "Without one, nobody can assume it (it can still be named in policies and act in the library).")
@click.option("--max-session-duration", type=int, default=None,
              help="The longest session of the role, in seconds (3600-43200; default 3600).")
@click.option("--tags", multiple=True, metavar="Key=k,Value=v", help=TAGS_HELP)
@click.option("--description", default=None, help="What the role is for (up to 1000 characters).")
def create_role(role_name: str, assume_role_policy_document: str | None, max_session_duration: int | None,
                tags: tuple[str, ...], description: str | None) -> None:
    """Create a role, arn:aws:iam::ACCOUNT:role/NAME (CreateRole)."""
    trust = None if assume_role_policy_document is None \
        else params.text("--assume-role-policy-document", assume_role_policy_document)
    with settings().open() as kms:
        role = kms.create_role(role_name, trust, max_session_duration=max_session_duration,
                               tags=_iam_tags(tags) or None, description=description)
    show({"Role": _as_role(to_aws(role))})


@iam_command("update-role", "UpdateRole")
@click.option("--role-name", required=True, help="The role's name.")
@click.option("--description", default=None, help="The role's new description (\"\" for none).")
@click.option("--max-session-duration", type=int, default=None,
              help="The longest session of the role, in seconds (3600-43200). Not given: 3600, as in IAM.")
def update_role(role_name: str, description: str | None, max_session_duration: int | None) -> None:
    """Set a role's description and its sessions' longest life (UpdateRole);
    sessions already issued keep their expiry."""
    with settings().open() as kms:
        kms.update_role(role_name, description=description, max_session_duration=max_session_duration)


@iam_command("update-role-description", "UpdateRoleDescription")
@click.option("--role-name", required=True, help="The role's name.")
@click.option("--description", required=True, help="The role's new description (\"\" for none).")
def update_role_description(role_name: str, description: str) -> None:
    """Set a role's description (UpdateRoleDescription); prints the role."""
    with settings().open() as kms:
        role = kms.update_role_description(role_name, description)
    show({"Role": _as_role(to_aws(role))})


@iam_command("update-assume-role-policy", "UpdateAssumeRolePolicy")
@click.option("--role-name", required=True, help="The role's name.")
@click.option("--policy-document", required=True, metavar="POLICY",
              help="The new trust policy, file://PATH or the JSON text.")
def update_assume_role_policy(role_name: str, policy_document: str) -> None:
    """Replace a role's trust policy (UpdateAssumeRolePolicy); sessions
    already issued last until they expire."""
    document = params.text("--policy-document", policy_document)
    assert document is not None  # (a required option)
    with settings().open() as kms:
        kms.update_assume_role_policy(role_name, document)


@click.group("sts")
def sts() -> None:
    """STS: temporary credentials for a role, for `keyledger serve`'s callers."""


@sts.command("get-caller-identity", cls=LedgerCommand, operation="GetCallerIdentity", output_options=True)
def get_caller_identity() -> None:
    """Who --principal is, as `aws sts get-caller-identity` prints it (GetCallerIdentity)."""
    with settings().open() as kms:
        show(to_aws(kms.get_caller_identity()))


@sts.command("assume-role", cls=LedgerCommand, operation="AssumeRole", output_options=True)
@click.option("--role-arn", required=True, help="The role to assume, arn:aws:iam::ACCOUNT:role/NAME.")
@click.option("--role-session-name", required=True, help="The session's name (2-64 of A-Z a-z 0-9 +=,.@_-).")
@click.option("--duration-seconds", type=int, default=None,
              help="How long the credentials last, 900 up to the role's maximum (default 3600).")
@click.option("--external-id", default=None, help="The sts:ExternalId the trust policy may ask for.")
def assume_role(role_arn: str, role_session_name: str, duration_seconds: int | None,
                external_id: str | None) -> None:
    """Assume a role as --principal (AssumeRole): print temporary
    credentials (AccessKeyId, SecretAccessKey, SessionToken, Expiration) for
    requests to `keyledger serve` on this ledger or its cluster, as `aws sts
    assume-role` prints them. The secret and token are shown this once and
    are never recorded."""
    with settings().open() as kms:
        made = kms.assume_role(role_arn, role_session_name, duration_seconds=duration_seconds,
                               external_id=external_id)
    show(made.to_aws())


@iam_command("get-user", "GetUser")
@click.option("--user-name", default=None, help="The user's name (default: the caller, e.g. the account root).")
def get_user(user_name: str | None) -> None:
    """Show a user, or the calling principal (GetUser)."""
    with settings().open() as kms:
        user = kms.get_user(f"arn:aws:iam::{kms.account}:user/{user_name}" if user_name else kms.caller)
    shown = to_aws(user)
    if not shown.get("UserName"):  # the account root: IAM shows its id, ARN and date only
        shown = {k: v for k, v in shown.items() if k in ("UserId", "Arn", "CreateDate")}
    show({"User": shown})


@iam_command("list-users", "ListUsers")
def list_users() -> None:
    """List the users of the ledger (ListUsers)."""
    with settings().open() as kms:
        users = kms.list_users()
    show(to_aws(users))


@iam_command("get-role", "GetRole")
@click.option("--role-name", required=True, help="The role's name.")
def get_role(role_name: str) -> None:
    """Show a role (GetRole)."""
    with settings().open() as kms:
        role = kms.get_role(role_name)
    show({"Role": _as_role(to_aws(role))})


@iam_command("list-roles", "ListRoles")
def list_roles() -> None:
    """List the roles of the ledger (ListRoles)."""
    with settings().open() as kms:
        roles = kms.list_roles()
    show({"Roles": [_as_role(role) for role in to_aws(roles)["Roles"]]})


@iam_command("delete-user", "DeleteUser")
@click.option("--user-name", required=True, help="The user's name.")
def delete_user(user_name: str) -> None:
    """Delete a user that has no access keys or policies left (DeleteUser).
    Key policies and grants naming it name its unique id afterwards, so a
    user made later with the same name inherits none of its rights."""
    with settings().open() as kms:
        kms.delete_user(user_name)


@iam_command("delete-role", "DeleteRole")
@click.option("--role-name", required=True, help="The role's name.")
def delete_role(role_name: str) -> None:
    """Delete a role that has no policies left (DeleteRole); as delete-user."""
    with settings().open() as kms:
        kms.delete_role(role_name)


# -- inline policies of users and roles, as `aws iam` names them ------------------------

def _inline_policy_commands(kind: str) -> None:
    """`put-, get-, delete-<kind>-policy` and `list-<kind>-policies` for
    kind user or role: the principal is named by --user-name / --role-name."""
    Kind = kind.capitalize()
    name_option = click.option(f"--{kind}-name", "name", required=True, help=f"The {kind}'s name.")

    def arn(kms: KeyLedger, name: str) -> str:
        return f"arn:aws:iam::{kms.account}:{kind}/{name}"

    def shaped(found: dict[str, Any]) -> dict[str, Any]:
        return _as_role(found) if kind == "role" else found

    @iam_command(f"put-{kind}-policy", f"Put{Kind}Policy")
    @name_option
    @click.option("--policy-name", required=True, help="The policy's name; an existing one is replaced.")
    @click.option("--policy-document", required=True, metavar="POLICY", help=POLICY_DOCUMENT_HELP)
    def put(name: str, policy_name: str, policy_document: str) -> None:
        document = params.text("--policy-document", policy_document)
        with settings().open() as kms:
            kms.put_principal_policy(arn(kms, name), policy_name, document)  # type: ignore[arg-type]

    @iam_command(f"delete-{kind}-policy", f"Delete{Kind}Policy")
    @name_option
    @click.option("--policy-name", required=True, help="The policy's name.")
    def delete(name: str, policy_name: str) -> None:
        with settings().open() as kms:
            kms.delete_principal_policy(arn(kms, name), policy_name)

    @iam_command(f"list-{kind}-policies", f"List{Kind}Policies")
    @name_option
    def list_(name: str) -> None:
        with settings().open() as kms:
            names = kms.list_principal_policies(arn(kms, name))
        show(to_aws(names))

    @iam_command(f"get-{kind}-policy", f"Get{Kind}Policy")
    @name_option
    @click.option("--policy-name", required=True, help="The policy's name.")
    def get(name: str, policy_name: str) -> None:
        with settings().open() as kms:
            found = to_aws(kms.get_principal_policy(arn(kms, name), policy_name))
        found["PolicyDocument"] = json.loads(found["PolicyDocument"])  # the service checked it is JSON
        show(shaped(found))

    put.help = (f"Attach (or replace) a named identity-based policy of a {kind}, "
                f"as `aws iam put-{kind}-policy` (Put{Kind}Policy).")
    delete.help = f"Delete a named identity-based policy of a {kind} (Delete{Kind}Policy)."
    list_.help = f"List the names of a {kind}'s identity-based policies (List{Kind}Policies)."
    get.help = (f"Print one of a {kind}'s identity-based policies, its document as a JSON object "
                f"as `aws iam get-{kind}-policy` does (Get{Kind}Policy).")


_inline_policy_commands("user")
_inline_policy_commands("role")


def _iam_tags(values: tuple[str, ...]) -> list[dict[str, str]]:
    """--tags as `aws iam` takes them: each `Key=k,Value=v`, a JSON object, or a JSON list of them."""
    out: list[dict[str, str]] = []
    for value in values:
        text = params.text("--tags", value) or ""
        if text.strip().startswith(("{", "[")):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise click.BadParameter(f"not JSON: {exc.msg}", param_hint="--tags") from None
            out.extend(data if isinstance(data, list) else [data])
            continue
        pairs = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        if set(pairs) - {"Key", "Value"} or "Key" not in pairs:
            raise click.BadParameter("expected Key=k,Value=v", param_hint="--tags")
        out.append({"Key": pairs["Key"], "Value": pairs.get("Value", "")})
    return out


def _tag_commands(kind: str) -> None:
    """`tag-<kind>`, `untag-<kind>` and `list-<kind>-tags`, as `aws iam` names them."""
    Kind = kind.capitalize()
    name_option = click.option(f"--{kind}-name", "name", required=True, help=f"The {kind}'s name.")

    @iam_command(f"tag-{kind}", f"Tag{Kind}")
    @name_option
    @click.option("--tags", required=True, multiple=True, metavar="Key=k,Value=v", help=TAGS_HELP)
    def tag(name: str, tags: tuple[str, ...]) -> None:
        found = _iam_tags(tags)
        with settings().open() as kms:
            kms.tag_principal(f"arn:aws:iam::{kms.account}:{kind}/{name}", found)

    @iam_command(f"untag-{kind}", f"Untag{Kind}")
    @name_option
    @click.option("--tag-keys", required=True, multiple=True, metavar="KEY", help="A tag key (repeat for more).")
    def untag(name: str, tag_keys: tuple[str, ...]) -> None:
        with settings().open() as kms:
            kms.untag_principal(f"arn:aws:iam::{kms.account}:{kind}/{name}", list(tag_keys))

    @iam_command(f"list-{kind}-tags", f"List{Kind}Tags")
    @name_option
    def list_tags(name: str) -> None:
        with settings().open() as kms:
            found = kms.list_principal_tags(f"arn:aws:iam::{kms.account}:{kind}/{name}")
        show(to_aws(found))

    tag.help = (f"Tag a {kind} (Tag{Kind}): its tags are aws:PrincipalTag/<key> in policy conditions"
                + (", for the role and its sessions." if kind == "role" else "."))
    untag.help = f"Remove tags from a {kind} by key (Untag{Kind})."
    list_tags.help = f"List a {kind}'s tags (List{Kind}Tags)."


_tag_commands("user")
_tag_commands("role")

COMMANDS = [iam, sts]
