"""Key policies and grants through the CLI, acting as other principals with `--principal`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest
from click.testing import CliRunner

from keyledger.cli.main import main
from keyledger.cli.policies import COMMANDS, grant_constraints

if TYPE_CHECKING:
    from conftest import Cli

ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
CAROL = f"arn:aws:iam::{ACCOUNT}:user/carol"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/"
GRANT_ID = re.compile(r"^[0-9a-f]{64}$")
LOCKOUT = "The new key policy will not allow you to update the key policy in the future."


@pytest.fixture(autouse=True)
def _no_principal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYLEDGER_PRINCIPAL", raising=False)


@pytest.fixture(autouse=True)
def _bob(cli: Cli) -> None:
    """bob exists: a key policy may name only a principal that exists (as in AWS)."""
    cli("iam", "create-user", "--user-name", "bob")


def key_policy(*statements: dict[str, object], root: bool = True) -> str:
    admin = {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": ([admin] if root else []) + list(statements)})


def allow(principal: str, *actions: str) -> dict[str, object]:
    return {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": list(actions), "Resource": "*"}


def error(code: str, operation: str, message: str = "") -> str:
    return f"An error occurred ({code}) when calling the {operation} operation: {message}"


# -- key policies -----------------------------------------------------------------

def test_a_key_policy_naming_the_user_allows_it_without_iam(cli: Cli, key: str, tmp_path: Path) -> None:
    document = key_policy(allow(BOB, "kms:Encrypt", "kms:Decrypt"))
    (tmp_path / "policy.json").write_text(document)
    denied = cli("--principal", BOB, "encrypt", "--key-id", key, "--plaintext", "x", expect=254)
    assert denied.stderr == error("AccessDeniedException", "Encrypt",
                                  f"User: {BOB} is not authorized to perform: kms:Encrypt on resource: {KEY_ARN}{key} "
                                  "because no identity-based policy allows the kms:Encrypt action\n")

    assert cli("put-key-policy", "--key-id", key, "--policy", f"file://{tmp_path / 'policy.json'}",
               "--policy-name", "default").stdout == ""
    blob = cli.json("--principal", BOB, "encrypt", "--key-id", key, "--plaintext", "x")["CiphertextBlob"]
    assert cli.json("--principal", BOB, "decrypt", "--ciphertext-blob", blob)["KeyId"] == KEY_ARN + key
    refused = cli("--principal", BOB, "get-key-policy", "--key-id", key, expect=254)
    assert refused.stderr.startswith(error("AccessDeniedException", "GetKeyPolicy"))

    # printed as the AWS CLI prints it: the document as a string
    assert cli.json("get-key-policy", "--key-id", key) == {"Policy": document, "PolicyName": "default"}
    text = cli("get-key-policy", "--key-id", key, "--query", "Policy", "--output", "text").stdout
    assert json.loads(text) == json.loads(document)
    assert cli.json("list-key-policies", "--key-id", key) == {"PolicyNames": ["default"], "Truncated": False}


def test_the_default_key_policy_delegates_to_iam(cli: Cli, key: str) -> None:
    policy = json.loads(cli.json("get-key-policy", "--key-id", key)["Policy"])
    assert policy["Statement"] == [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                                    "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}]


def test_create_key_with_a_policy(cli: Cli) -> None:
    document = key_policy(allow(BOB, "kms:Encrypt", "kms:DescribeKey"))
    key = cli.create_key("--policy", document, "--description", "bob's")
    assert cli.json("get-key-policy", "--key-id", key)["Policy"] == document
    assert cli.json("--principal", BOB, "describe-key", "--key-id", key)["KeyMetadata"]["Description"] == "bob's"
    cli("--principal", BOB, "encrypt", "--key-id", key, "--plaintext", "x")


def test_the_lockout_check_and_its_bypass(cli: Cli, key: str) -> None:
    bob_only = key_policy(allow(BOB, "kms:*"), root=False)
    result = cli("put-key-policy", "--key-id", key, "--policy", bob_only, expect=254)
    assert result.stderr == error("MalformedPolicyDocumentException", "PutKeyPolicy", LOCKOUT + "\n")
    assert json.loads(cli.json("get-key-policy", "--key-id", key)["Policy"])["Statement"][0]["Principal"] == \
        {"AWS": ROOT}  # unchanged

    cli("put-key-policy", "--key-id", key, "--policy", bob_only, "--bypass-policy-lockout-safety-check")
    # the account root is locked out now; bob is not
    locked = cli("get-key-policy", "--key-id", key, expect=254)
    assert locked.stderr == error("AccessDeniedException", "GetKeyPolicy",
                                  f"User: {ROOT} is not authorized to perform: kms:GetKeyPolicy on resource: "
                                  f"{KEY_ARN}{key} because no resource-based policy allows the kms:GetKeyPolicy "
                                  "action\n")
    assert cli.json("--principal", BOB, "get-key-policy", "--key-id", key)["Policy"] == bob_only

    created = cli("create-key", "--policy", bob_only, expect=254)
    assert created.stderr == error("MalformedPolicyDocumentException", "CreateKey", LOCKOUT + "\n")
    cli.create_key("--policy", bob_only, "--bypass-policy-lockout-safety-check")
    cli.create_key("--policy", key_policy(), "--no-bypass-policy-lockout-safety-check")


def test_a_malformed_key_policy_is_named(cli: Cli, key: str) -> None:
    result = cli("put-key-policy", "--key-id", key, "--policy", '{"Version": "2012-10-17"}', expect=254)
    assert result.stderr.startswith(error("MalformedPolicyDocumentException", "PutKeyPolicy",
                                          "The policy document is malformed: "))
    result = cli("put-key-policy", "--key-id", key, "--policy", "not json", expect=254)
    assert "(MalformedPolicyDocumentException)" in result.stderr
    result = cli("get-key-policy", "--key-id", key, "--policy-name", "other", expect=254)
    assert result.stderr.startswith(error("NotFoundException", "GetKeyPolicy"))


# -- grants -----------------------------------------------------------------------

def grant(cli: Cli, key: str, *args: str) -> dict[str, str]:
    out = cli.json("create-grant", "--key-id", key, "--grantee-principal", BOB, *args)
    assert list(out) == ["GrantToken", "GrantId"] and GRANT_ID.match(out["GrantId"])
    return out


def test_a_grant_with_a_constraint_used_by_its_grantee(cli: Cli, key: str) -> None:
    made = grant(cli, key, "--operations", "Encrypt", "Decrypt",
                 "--constraints", "EncryptionContextSubset={tenant=acme}", "--name", "acme-app")
    as_bob = ("--principal", BOB)
    refused = cli(*as_bob, "encrypt", "--key-id", key, "--plaintext", "x", expect=254)
    assert "(AccessDeniedException) when calling the Encrypt operation" in refused.stderr
    cli(*as_bob, "encrypt", "--key-id", key, "--plaintext", "x", "--encryption-context", "tenant=other", expect=254)
    blob = cli.json(*as_bob, "encrypt", "--key-id", key, "--plaintext", "x",
                    "--encryption-context", "tenant=acme,order=42", "--grant-tokens", made["GrantToken"])
    cli(*as_bob, "decrypt", "--ciphertext-blob", blob["CiphertextBlob"], "--encryption-context",
        "order=42,tenant=acme")
    # the grant covers Encrypt and Decrypt only
    cli(*as_bob, "generate-data-key", "--key-id", key, "--key-spec", "AES_256",
        "--encryption-context", "tenant=acme", expect=254)

    listed = cli.json("list-grants", "--key-id", key)
    assert listed["Truncated"] is False
    entry = listed["Grants"][0]
    entry.pop("CreationDate")
    # AWS lists grants under the key's ARN
    assert entry == {"KeyId": f"arn:aws:kms:us-east-1:111122223333:key/{key}", "GrantId": made["GrantId"],
                     "GranteePrincipal": BOB,
                     "Operations": ["Encrypt", "Decrypt"], "IssuingAccount": ROOT, "Name": "acme-app",
                     "Constraints": {"EncryptionContextSubset": {"tenant": "acme"}}}
    # the same named grant again is the same grant
    again = grant(cli, key, "--operations", "Encrypt", "Decrypt",
                  "--constraints", '{"EncryptionContextSubset": {"tenant": "acme"}}', "--name", "acme-app")
    assert again["GrantId"] == made["GrantId"]


def test_list_grants_filters_and_pages(cli: Cli, key: str) -> None:
    first = grant(cli, key, "--operations", '["Encrypt"]')
    second = cli.json("create-grant", "--key-id", key, "--grantee-principal", CAROL, "--operations", "Decrypt",
                      "--constraints", "EncryptionContextEquals={a=1,b=2}")
    by_grantee = cli.json("list-grants", "--key-id", key, "--grantee-principal", CAROL)["Grants"]
    assert [g["GrantId"] for g in by_grantee] == [second["GrantId"]]
    assert by_grantee[0]["Constraints"] == {"EncryptionContextEquals": {"a": "1", "b": "2"}}
    by_id = cli.json("list-grants", "--key-id", key, "--grant-id", first["GrantId"])["Grants"]
    assert [g["GranteePrincipal"] for g in by_id] == [BOB]
    page = cli.json("list-grants", "--key-id", key, "--limit", "1")
    assert page["Truncated"] is True and len(page["Grants"]) == 1
    rest = cli.json("list-grants", "--key-id", key, "--limit", "1", "--marker", page["NextMarker"])
    assert {page["Grants"][0]["GrantId"], rest["Grants"][0]["GrantId"]} == {first["GrantId"], second["GrantId"]}


def test_retire_by_the_retiring_principal(cli: Cli, key: str) -> None:
    by_token = grant(cli, key, "--operations", "Encrypt", "--retiring-principal", CAROL)
    by_id = grant(cli, key, "--operations", "Decrypt", "--retiring-principal", CAROL)
    cli("--principal", BOB, "encrypt", "--key-id", key, "--plaintext", "x")

    listed = cli.json("list-retirable-grants", "--retiring-principal", CAROL)
    assert sorted(g["GrantId"] for g in listed["Grants"]) == sorted([by_token["GrantId"], by_id["GrantId"]])
    assert all(g["RetiringPrincipal"] == CAROL for g in listed["Grants"])

    # the grantee may not retire it (RetireGrant is not among its operations)
    result = cli("--principal", BOB, "retire-grant", "--grant-token", by_token["GrantToken"], expect=254)
    assert result.stderr.startswith(error("AccessDeniedException", "RetireGrant", f"User: {BOB}"))

    assert cli("--principal", CAROL, "retire-grant", "--grant-token", by_token["GrantToken"]).stdout == ""
    cli("--principal", CAROL, "retire-grant", "--key-id", key, "--grant-id", by_id["GrantId"])
    assert cli.json("list-grants", "--key-id", key)["Grants"] == []
    cli("--principal", BOB, "encrypt", "--key-id", key, "--plaintext", "x", expect=254)
    gone = cli("--principal", CAROL, "retire-grant", "--grant-token", by_token["GrantToken"], expect=254)
    assert gone.stderr.startswith(error("NotFoundException", "RetireGrant"))
    neither = cli("retire-grant", "--grant-id", by_id["GrantId"], expect=254)
    assert neither.stderr.startswith(error("ValidationException", "RetireGrant"))


def test_revoke_is_for_the_key_managers(cli: Cli, key: str) -> None:
    made = grant(cli, key, "--operations", "Encrypt", "RetireGrant")
    cli("--principal", BOB, "encrypt", "--key-id", key, "--plaintext", "x")
    result = cli("--principal", BOB, "revoke-grant", "--key-id", key, "--grant-id", made["GrantId"], expect=254)
    assert result.stderr.startswith(error("AccessDeniedException", "RevokeGrant",
                                          f"User: {BOB} is not authorized to perform: kms:RevokeGrant"))
    assert cli("revoke-grant", "--key-id", key, "--grant-id", made["GrantId"]).stdout == ""
    cli("--principal", BOB, "encrypt", "--key-id", key, "--plaintext", "x", expect=254)
    again = cli("revoke-grant", "--key-id", key, "--grant-id", made["GrantId"], expect=254)
    assert again.stderr.startswith(error("NotFoundException", "RevokeGrant"))


def test_a_grantee_with_retire_grant_may_retire_its_grant(cli: Cli, key: str) -> None:
    made = grant(cli, key, "--operations", "Encrypt", "RetireGrant")
    cli("--principal", BOB, "retire-grant", "--grant-token", made["GrantToken"])
    assert cli.json("list-grants", "--key-id", key)["Grants"] == []


def test_a_grant_may_let_its_grantee_create_grants(cli: Cli, key: str) -> None:
    grant(cli, key, "--operations", "CreateGrant", "Encrypt")
    sub = cli.json("--principal", BOB, "create-grant", "--key-id", key, "--grantee-principal", CAROL,
                   "--operations", "Encrypt")
    cli("--principal", CAROL, "encrypt", "--key-id", key, "--plaintext", "x", "--grant-tokens", sub["GrantToken"])


BAD_TOKEN = "KLGT1bm90LWEtZ3JhbnQ"


@pytest.mark.parametrize("command", [
    ["encrypt", "--plaintext", "x"],
    ["generate-data-key", "--key-spec", "AES_256"],
    ["generate-data-key-without-plaintext", "--number-of-bytes", "16"],
])
def test_grant_tokens_are_passed_to_the_service(cli: Cli, key: str, command: list[str]) -> None:
    result = cli(*command, "--key-id", key, "--grant-tokens", BAD_TOKEN, expect=254)
    assert result.stderr == error("InvalidGrantTokenException", "".join(p.capitalize() for p in
                                  command[0].split("-")), "The grant token is not valid.\n")


def test_describe_key_takes_grant_tokens_without_reading_them(cli: Cli, key: str) -> None:
    """AWS lists no InvalidGrantTokenException for DescribeKey."""
    assert cli.json("describe-key", "--key-id", key, "--grant-tokens", BAD_TOKEN)["KeyMetadata"]["KeyId"] == key


def test_grant_tokens_on_decrypt_and_re_encrypt(cli: Cli, key: str) -> None:
    made = grant(cli, key, "--operations", "Encrypt")
    blob = cli.json("encrypt", "--key-id", key, "--plaintext", "x")["CiphertextBlob"]
    cli("decrypt", "--ciphertext-blob", blob, "--grant-tokens", made["GrantToken"], made["GrantToken"])
    cli("re-encrypt", "--ciphertext-blob", blob, "--destination-key-id", key, "--grant-tokens", made["GrantToken"])
    result = cli("decrypt", "--ciphertext-blob", blob, "--grant-tokens", BAD_TOKEN, expect=254)
    assert "(InvalidGrantTokenException)" in result.stderr


def test_bad_grant_requests_are_refused_by_the_service(cli: Cli, key: str) -> None:
    result = cli("create-grant", "--key-id", key, "--grantee-principal", BOB, "--operations", "Fly", expect=254)
    assert result.stderr.startswith(error("ValidationException", "CreateGrant"))
    both = cli("create-grant", "--key-id", key, "--grantee-principal", BOB, "--operations", "Encrypt",
               "--constraints", "EncryptionContextSubset={a=1},EncryptionContextEquals={b=2}", expect=254)
    assert both.stderr.startswith(error("ValidationException", "CreateGrant"))
    who = cli("create-grant", "--key-id", key, "--grantee-principal", "bob", "--operations", "Encrypt", expect=254)
    assert who.stderr.startswith(error("ValidationException", "CreateGrant"))


# -- parameter syntax -------------------------------------------------------------

def test_constraints_shorthand_and_json() -> None:
    assert grant_constraints("--c", None) is None
    assert grant_constraints("--c", "EncryptionContextSubset={a=1,b=x=y}") == \
        {"EncryptionContextSubset": {"a": "1", "b": "x=y"}}
    assert grant_constraints("--c", " EncryptionContextEquals = { a = 1 } ") == {"EncryptionContextEquals": {"a": "1"}}
    assert grant_constraints("--c", "EncryptionContextSubset={}") == {"EncryptionContextSubset": {}}
    assert grant_constraints("--c", "EncryptionContextSubset={a=1},EncryptionContextEquals={b=2}") == \
        {"EncryptionContextSubset": {"a": "1"}, "EncryptionContextEquals": {"b": "2"}}
    assert grant_constraints("--c", '{"EncryptionContextEquals": {"a": "1"}}') == \
        {"EncryptionContextEquals": {"a": "1"}}


@pytest.mark.parametrize("bad", [
    "a=1",                                   # not Member={...}
    "EncryptionContextSubset=a=1",
    "EncryptionContextSubset={a=1},",
    "EncryptionContextSubset={a}",
    "Subset={a=1}",                          # unknown member
    "EncryptionContextSubset={a=1},EncryptionContextSubset={b=2}",
    '{"EncryptionContextSubset": {"a": 1}}',
    '{"EncryptionContextSubset": ["a"]}',
    '["EncryptionContextSubset"]',
    "{not json",
])
def test_malformed_constraints_are_a_usage_error(cli: Cli, key: str, bad: str) -> None:
    result = cli("create-grant", "--key-id", key, "--grantee-principal", BOB, "--operations", "Encrypt",
                 "--constraints", bad, expect=2)
    assert "--constraints" in result.stderr and result.stdout == ""


def test_a_policy_file_that_is_missing_is_a_usage_error(cli: Cli, key: str) -> None:
    result = cli("put-key-policy", "--key-id", key, "--policy", "file:///no/such/policy.json", expect=2)
    assert "--policy" in result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_policy_command_is_registered_and_has_help(command: click.Command) -> None:
    assert main.commands[command.name] is command
    assert command.help and len(command.help.strip()) > 20
    assert all(p.help for p in command.params if isinstance(p, click.Option)), command.name
    result = CliRunner().invoke(main, [command.name, "--help"], prog_name="keyledger")
    assert result.exit_code == 0 and result.stdout.startswith(f"Usage: keyledger {command.name} [OPTIONS]")


def test_create_key_help_names_the_policy_options() -> None:
    result = CliRunner().invoke(main, ["create-key", "--help"])
    assert "--policy" in result.stdout and "--bypass-policy-lockout-safety-check" in result.stdout


def test_policy_simulate_prints_the_decision_and_its_statements(tmp_path) -> None:
    from click.testing import CliRunner

    from keyledger.cli.main import main

    runner = CliRunner()
    home = str(tmp_path / "sim")
    assert runner.invoke(main, ["--home", home, "init"]).exit_code == 0
    key = runner.invoke(main, ["--home", home, "create-key", "--query", "KeyMetadata.KeyId",
                               "--output", "text"]).output.strip()
    assert runner.invoke(main, ["--home", home, "iam", "create-user", "--user-name", "bob"]).exit_code == 0
    result = runner.invoke(main, ["--home", home, "policy", "simulate", "--principal-arn",
                                  "arn:aws:iam::111122223333:user/bob", "--action", "kms:Decrypt",
                                  "--key-id", key, "--encryption-context", "app=orders"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["Decision"] == "denied"
    assert out["MatchedStatements"] == [{"Source": "key policy", "Statement": "Enable IAM User Permissions",
                                         "Effect": "Allow", "Via": "account delegation"}]


def test_a_key_policy_may_name_only_principals_that_exist(cli: Cli, key: str) -> None:
    """AWS: "The principal(s) specified in the key policy must exist" (IAM resolves each
    to its unique id). Checked before the lockout check, and not bypassed with it."""
    invalid = "Policy contains a statement with one or more invalid principals."
    for name in (CAROL, f"arn:aws:iam::{ACCOUNT}:role/bob", f"arn:aws:iam::{ACCOUNT}:user/"):
        document = key_policy(allow(name, "kms:Encrypt"))
        for command in (["put-key-policy", "--key-id", key], ["create-key"]):
            for bypass in ([], ["--bypass-policy-lockout-safety-check"]):
                refused = cli(*command, "--policy", document, *bypass, expect=254)
                assert refused.stderr == error("MalformedPolicyDocumentException",
                                               "PutKeyPolicy" if command[0] == "put-key-policy" else "CreateKey",
                                               invalid + "\n"), name
    # the root, "*", another account, a service and an assumed-role session are not looked up
    for name in (ROOT, ACCOUNT, "*", "arn:aws:iam::444455556666:user/someone",
                 f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/session"):
        cli("put-key-policy", "--key-id", key, "--policy", key_policy(allow(name, "kms:Encrypt")))
    cli("iam", "create-user", "--user-name", "carol")
    cli("put-key-policy", "--key-id", key, "--policy", key_policy(allow(CAROL, "kms:Encrypt")))
