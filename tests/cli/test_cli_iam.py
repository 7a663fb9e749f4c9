"""`keyledger iam` and `--principal`: users, roles, identity-based policies,
and the AccessDeniedException of a principal nothing allows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest
from click.testing import CliRunner

import keyledger
from keyledger.cli.iam import iam
from keyledger.cli.main import main
from keyledger import events as ev

if TYPE_CHECKING:
    from conftest import Cli

ACCOUNT = "111122223333"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
OPS = f"arn:aws:iam::{ACCOUNT}:role/ops"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/"
ALLOW_ENCRYPT = {"Version": "2012-10-17",
                 "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}]}


@pytest.fixture(autouse=True)
def _no_principal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYLEDGER_PRINCIPAL", raising=False)


def denied(principal: str, action: str, key: str, because: str = "") -> str:
    because = because or f"because no identity-based policy allows the {action} action"
    return (f"User: {principal} is not authorized to perform: {action} on resource: {KEY_ARN}{key} {because}")


def test_create_user_and_role_print_the_aws_iam_shapes(cli: Cli) -> None:
    user = cli.json("iam", "create-user", "--user-name", "bob")["User"]
    assert (user["UserName"], user["Arn"], user["Path"]) == ("bob", BOB, "/")
    assert user["CreateDate"].endswith("Z")
    role = cli.json("iam", "create-role", "--role-name", "ops")
    assert list(role) == ["Role"] and "UserName" not in role["Role"]
    assert (role["Role"]["RoleName"], role["Role"]["Arn"]) == ("ops", OPS)
    # get-user shows one user, or the caller itself (the account root: id, ARN and date only)
    assert cli.json("iam", "get-user", "--user-name", "bob")["User"] == user
    me = cli.json("iam", "get-user")["User"]
    assert me == {"UserId": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:root", "CreateDate": me["CreateDate"]}
    assert cli("iam", "get-user", "--user-name", "ops", expect=254).stderr == (
        "An error occurred (NotFoundException) when calling the GetUser operation: "
        "The user with name ops cannot be found.\n")  # a role is no user
    # list-users lists users only, as IAM's ListUsers does
    assert [u["Arn"] for u in cli.json("iam", "list-users")["Users"]] == [BOB]
    again = cli("iam", "create-user", "--user-name", "bob", expect=254)
    assert again.stderr == ("An error occurred (AlreadyExistsException) when calling the CreateUser operation: "
                            "User with name bob already exists.\n")


def test_a_user_is_denied_by_default_and_the_denial_is_logged(cli: Cli, key: str) -> None:
    cli("iam", "create-user", "--user-name", "bob")
    result = cli("--principal", BOB, "encrypt", "--key-id", key, "--plaintext", "x", expect=254)
    assert result.stdout == ""
    assert result.stderr == ("An error occurred (AccessDeniedException) when calling the Encrypt operation: "
                             + denied(BOB, "kms:Encrypt", key) + "\n")
    with keyledger.open(cli.home) as kms, kms.store.snapshot() as snap:
        last = list(snap.records())[-1]
    assert last.principal == BOB
    assert isinstance(last.event, ev.RequestDenied) and last.event.error_code == "AccessDeniedException"


def test_put_user_policy_allows_and_delete_takes_it_away(cli: Cli, key: str, tmp_path: Path) -> None:
    cli("iam", "create-user", "--user-name", "bob")
    doc = tmp_path / "allow.json"
    doc.write_text(json.dumps(ALLOW_ENCRYPT))
    out = cli("iam", "put-user-policy", "--user-name", "bob", "--policy-name", "use-keys",
              "--policy-document", f"file://{doc}")
    assert out.stdout == ""  # like aws iam put-user-policy
    blob = cli.json("--principal", BOB, "encrypt", "--key-id", key, "--plaintext", "x")["CiphertextBlob"]
    cli("--principal", BOB, "decrypt", "--ciphertext-blob", blob)
    # allowed Encrypt and Decrypt, nothing else
    result = cli("--principal", BOB, "disable-key", "--key-id", key, expect=254)
    assert denied(BOB, "kms:DisableKey", key) in result.stderr

    assert cli.json("iam", "list-user-policies", "--user-name", "bob") == {"PolicyNames": ["use-keys"]}
    assert cli.json("iam", "get-user-policy", "--user-name", "bob", "--policy-name", "use-keys") == {
        "UserName": "bob", "PolicyName": "use-keys", "PolicyDocument": ALLOW_ENCRYPT}

    assert cli("iam", "delete-user-policy", "--user-name", "bob", "--policy-name", "use-keys").stdout == ""
    assert cli.json("iam", "list-user-policies", "--user-name", "bob") == {"PolicyNames": []}
    cli("--principal", BOB, "encrypt", "--key-id", key, "--plaintext", "x", expect=254)
    gone = cli("iam", "delete-user-policy", "--user-name", "bob", "--policy-name", "use-keys", expect=254)
    assert gone.stderr.startswith("An error occurred (NotFoundException) when calling the DeleteUserPolicy operation")


def test_a_role_and_its_policies(cli: Cli, key: str) -> None:
    cli("iam", "create-role", "--role-name", "ops")
    cli("iam", "put-role-policy", "--role-name", "ops", "--policy-name", "p",
        "--policy-document", json.dumps(ALLOW_ENCRYPT))
    assert cli.json("--principal", OPS, "encrypt", "--key-id", key, "--plaintext", "x")["KeyId"] == KEY_ARN + key
    got = cli.json("iam", "get-role-policy", "--role-name", "ops", "--policy-name", "p")
    assert got == {"RoleName": "ops", "PolicyName": "p", "PolicyDocument": ALLOW_ENCRYPT}
    assert cli.json("iam", "list-role-policies", "--role-name", "ops") == {"PolicyNames": ["p"]}
    cli("iam", "delete-role-policy", "--role-name", "ops", "--policy-name", "p")
    assert cli.json("iam", "list-role-policies", "--role-name", "ops") == {"PolicyNames": []}


def test_delete_user_and_delete_role(cli: Cli, key: str) -> None:
    cli("iam", "create-user", "--user-name", "bob")
    cli("iam", "put-user-policy", "--user-name", "bob", "--policy-name", "p",
        "--policy-document", json.dumps(ALLOW_ENCRYPT))
    refused = cli("iam", "delete-user", "--user-name", "bob", expect=254)
    assert refused.stderr == ("An error occurred (DeleteConflictException) when calling the DeleteUser operation: "
                              "Cannot delete entity, must delete policies first.\n")
    cli("iam", "delete-user-policy", "--user-name", "bob", "--policy-name", "p")
    assert cli("iam", "delete-user", "--user-name", "bob").stdout == ""  # like aws iam delete-user
    assert cli.json("iam", "list-users") == {"Users": []}
    gone = cli("iam", "delete-user", "--user-name", "bob", expect=254)
    assert gone.stderr == ("An error occurred (NotFoundException) when calling the DeleteUser operation: "
                           "The user with name bob cannot be found.\n")
    made = cli.json("iam", "create-role", "--role-name", "ops")["Role"]
    assert cli.json("iam", "get-role", "--role-name", "ops") == {"Role": made}
    assert cli.json("iam", "list-roles") == {"Roles": [made]}
    assert set(made) == {"Path", "RoleName", "RoleId", "Arn", "CreateDate", "MaxSessionDuration"}
    assert made["RoleId"].startswith("AROA")
    assert cli("iam", "delete-role", "--role-name", "ops").stdout == ""
    assert cli.json("iam", "list-roles") == {"Roles": []}
    gone = cli("iam", "get-role", "--role-name", "ops", expect=254)
    assert gone.stderr == ("An error occurred (NotFoundException) when calling the GetRole operation: "
                           "The role with name ops cannot be found.\n")
    cli("--principal", OPS, "encrypt", "--key-id", key, "--plaintext", "x", expect=254)
    with keyledger.open(cli.home) as kms, kms.store.snapshot() as snap:
        deleted = [r.event for r in snap.records() if isinstance(r.event, ev.PrincipalDeleted)]
    assert [(e.principal, e.kind) for e in deleted] == [(BOB, "user"), (OPS, "role")]


def test_the_principal_from_the_environment(cli: Cli, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("iam", "create-user", "--user-name", "bob")
    monkeypatch.setenv("KEYLEDGER_PRINCIPAL", BOB)
    result = cli("encrypt", "--key-id", key, "--plaintext", "x", expect=254)
    assert denied(BOB, "kms:Encrypt", key) in result.stderr
    # --principal wins over the environment: the account root may do anything
    cli("--principal", f"arn:aws:iam::{ACCOUNT}:root", "encrypt", "--key-id", key, "--plaintext", "x")


def test_only_an_allowed_principal_manages_iam(cli: Cli) -> None:
    cli("iam", "create-user", "--user-name", "bob")
    result = cli("--principal", BOB, "iam", "create-user", "--user-name", "eve", expect=254)
    assert result.stderr == (
        "An error occurred (AccessDeniedException) when calling the CreateUser operation: "
        f"User: {BOB} is not authorized to perform: iam:CreateUser on resource: arn:aws:iam::{ACCOUNT}:user/eve "
        "because no identity-based policy allows the iam:CreateUser action\n")
    # nor may bob give himself a policy
    result = cli("--principal", BOB, "iam", "put-user-policy", "--user-name", "bob", "--policy-name", "p",
                 "--policy-document", json.dumps(ALLOW_ENCRYPT), expect=254)
    assert "(AccessDeniedException) when calling the PutUserPolicy operation" in result.stderr
    assert cli.json("iam", "list-user-policies", "--user-name", "bob") == {"PolicyNames": []}


def test_a_malformed_policy_document_is_named(cli: Cli) -> None:
    cli("iam", "create-user", "--user-name", "bob")
    result = cli("iam", "put-user-policy", "--user-name", "bob", "--policy-name", "p",
                 "--policy-document", '{"Statement": []}', expect=254)
    assert result.stderr.startswith("An error occurred (MalformedPolicyDocumentException) when calling the "
                                    "PutUserPolicy operation: The policy document is malformed: ")
    missing = cli("iam", "put-user-policy", "--user-name", "nobody", "--policy-name", "p",
                  "--policy-document", json.dumps(ALLOW_ENCRYPT), expect=254)
    assert "(NotFoundException)" in missing.stderr


@pytest.mark.parametrize("args", [
    ["--principal", "bob", "list-keys"],                                           # not an ARN
    ["--principal", "arn:aws:iam::1111:user/bob", "list-keys"],                    # not a 12-digit account
    ["iam", "list-user-policies"],                                                 # no principal
    ["iam", "list-user-policies", "--role-name", "ops"],                           # a role's option
    ["iam", "get-user-policy", "--user-name", "bob"],                              # no --policy-name
    ["iam", "put-user-policy", "--user-name", "bob", "--policy-name", "p",
     "--policy-document", "file:///no/such/file"],
])
def test_bad_usage_exits_2(cli: Cli, args: list[str]) -> None:
    result = cli(*args, expect=2)
    assert result.stdout == "" and "Error:" in result.stderr


def test_malformed_principal_from_the_environment_is_a_usage_error(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYLEDGER_PRINCIPAL", "bob")
    assert "--principal" in cli("list-keys", expect=2).stderr


def test_the_group_can_take_more_commands() -> None:
    assert main.commands["iam"] is iam and isinstance(iam, click.Group)
    assert {"create-user", "create-role", "list-users", "create-access-key", "put-user-policy", "get-user-policy",
            "delete-user-policy", "list-user-policies", "put-role-policy", "get-role-policy", "delete-role-policy",
            "list-role-policies", "delete-user", "delete-role", "get-role", "list-roles"} <= set(iam.commands)
    assert not {"attach-policy", "detach-policy", "list-attached-policies", "get-policy"} & set(iam.commands)


@pytest.mark.parametrize("name", sorted(iam.commands))
def test_every_iam_command_has_help(name: str) -> None:
    command = iam.commands[name]
    assert command.help and len(command.help.strip()) > 20
    assert all(p.help for p in command.params if isinstance(p, click.Option)), name
    result = CliRunner().invoke(main, ["iam", name, "--help"], prog_name="keyledger")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: keyledger iam {name} [OPTIONS]")


def test_a_role_with_a_trust_policy_is_assumed_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "sts:AssumeRole"}]}
    (tmp_path / "trust.json").write_text(json.dumps(trust))
    cli.json("iam", "create-user", "--user-name", "bob")
    made = cli.json("iam", "create-role", "--role-name", "ops", "--assume-role-policy-document",
                    f"file://{tmp_path / 'trust.json'}", "--max-session-duration", "7200")["Role"]
    assert (made["AssumeRolePolicyDocument"], made["MaxSessionDuration"]) == (trust, 7200)
    assumed = cli.json("--principal", BOB, "sts", "assume-role", "--role-arn", OPS, "--role-session-name", "cli",
                       "--duration-seconds", "7200")
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/cli"
    assert assumed["AssumedRoleUser"]["AssumedRoleId"] == made["RoleId"] + ":cli"
    assert set(assumed["Credentials"]) == {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    refused = cli("sts", "assume-role", "--role-arn", OPS, "--role-session-name", "cli", expect=254)
    assert refused.stderr == ("An error occurred (AccessDeniedException) when calling the AssumeRole operation: "
                              "Roles may not be assumed by root accounts.\n")
    account_trust = {**trust, "Statement": [{**trust["Statement"][0],  # type: ignore[dict-item]
                                             "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
    cli("iam", "update-assume-role-policy", "--role-name", "ops", "--policy-document", json.dumps(account_trust))
    refused = cli("--principal", BOB, "sts", "assume-role", "--role-arn", OPS, "--role-session-name", "cli",
                  expect=254)
    assert "because no identity-based policy allows the sts:AssumeRole action" in refused.stderr
    # the session acts as the role: with the role's identity policy, through the default key policy
    key = cli.json("create-key")["KeyMetadata"]["KeyId"]
    cli("iam", "put-role-policy", "--role-name", "ops", "--policy-name", "use", "--policy-document",
        json.dumps(ALLOW_ENCRYPT))
    encrypted = cli.json("--principal", f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/cli", "encrypt", "--key-id", key,
                         "--plaintext", "hello")
    assert encrypted["KeyId"] == KEY_ARN + key


def test_sts_get_caller_identity(cli: Cli) -> None:
    cli.json("iam", "create-user", "--user-name", "bob")
    assert cli.json("sts", "get-caller-identity") == {"UserId": ACCOUNT, "Account": ACCOUNT,
                                                      "Arn": f"arn:aws:iam::{ACCOUNT}:root"}
    bob = cli.json("--principal", BOB, "sts", "get-caller-identity")
    assert (bob["Arn"], bob["Account"]) == (BOB, ACCOUNT) and bob["UserId"].startswith("AIDA")


def test_tags_of_users_and_roles(cli: Cli) -> None:
    cli.json("iam", "create-user", "--user-name", "bob")
    assert cli("iam", "tag-user", "--user-name", "bob", "--tags", "Key=team,Value=payments",
               "--tags", '{"Key": "env", "Value": "prod"}').stdout == ""
    assert cli.json("iam", "list-user-tags", "--user-name", "bob") == {
        "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "payments"}], "IsTruncated": False}
    cli("iam", "untag-user", "--user-name", "bob", "--tag-keys", "env")
    assert cli.json("iam", "list-user-tags", "--user-name", "bob")["Tags"] == [{"Key": "team", "Value": "payments"}]
    cli.json("iam", "create-role", "--role-name", "ops")
    cli("iam", "tag-role", "--role-name", "ops", "--tags", "Key=tier,Value=1")
    assert cli.json("iam", "list-role-tags", "--role-name", "ops")["Tags"] == [{"Key": "tier", "Value": "1"}]
    carol = cli.json("iam", "create-user", "--user-name", "carol", "--tags", "Key=team,Value=ops")["User"]
    assert carol["Tags"] == [{"Key": "team", "Value": "ops"}]
    assert cli.json("iam", "get-user", "--user-name", "carol")["User"]["Tags"] == carol["Tags"]
    bad = cli("iam", "tag-role", "--role-name", "ops", "--tags", "Name=x", expect=2)
    assert "expected Key=k,Value=v" in bad.stderr


def test_a_role_description_and_its_updates(cli: Cli) -> None:
    made = cli.json("iam", "create-role", "--role-name", "ops", "--description", "On call")["Role"]
    assert (made["Description"], made["MaxSessionDuration"]) == ("On call", 3600)
    shown = cli.json("iam", "update-role-description", "--role-name", "ops", "--description", "Paged")["Role"]
    assert (shown["Description"], shown["RoleId"]) == ("Paged", made["RoleId"])
    assert cli("iam", "update-role", "--role-name", "ops", "--max-session-duration", "7200").stdout == ""
    role = cli.json("iam", "get-role", "--role-name", "ops")["Role"]
    assert (role["Description"], role["MaxSessionDuration"]) == ("Paged", 7200)
    refused = cli("iam", "update-role", "--role-name", "ops", "--description", "x" * 1001, expect=254)
    assert "Member must have length less than or equal to 1000" in refused.stderr
    assert cli("iam", "update-role", "--role-name", "nobody", "--description", "x", expect=254).stderr == (
        "An error occurred (NotFoundException) when calling the UpdateRole operation: "
        "The role with name nobody cannot be found.\n")


def test_a_user_made_again_has_another_id_in_the_cloudtrail_rendering(cli: Cli) -> None:
    first = cli.json("iam", "create-user", "--user-name", "bob")["User"]["UserId"]
    cli("--principal", BOB, "sts", "get-caller-identity")
    cli("iam", "delete-user", "--user-name", "bob")
    second = cli.json("iam", "create-user", "--user-name", "bob")["User"]["UserId"]
    assert second != first
    assert cli.json("--principal", BOB, "sts", "get-caller-identity")["UserId"] == second
    trail = json.loads(cli("audit", "log", "--format", "cloudtrail", "--oldest-first",
                           "--principal", BOB).stdout)["Records"]
    assert [(r["eventName"], r["userIdentity"]["principalId"]) for r in trail] == [
        ("GetCallerIdentity", first), ("GetCallerIdentity", second)]
