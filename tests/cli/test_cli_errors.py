"""Errors: the AWS CLI's message and exit code, usage errors, unusable ledgers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from keyledger.cli.output import _spread, format_text

if TYPE_CHECKING:
    from conftest import Cli

MISSING = "0b6c1a3e-7d43-4b1e-9a57-2c1f5e0d9a11"


def test_not_found(cli: Cli) -> None:
    result = cli("describe-key", "--key-id", MISSING, expect=254)
    assert result.stdout == ""
    assert result.stderr == (
        "An error occurred (NotFoundException) when calling the DescribeKey operation: "
        f"Key 'arn:aws:kms:us-east-1:111122223333:key/{MISSING}' does not exist\n")


def test_not_found_alias(cli: Cli) -> None:
    result = cli("encrypt", "--key-id", "alias/nope", "--plaintext", "x", expect=254)
    assert result.stderr == ("An error occurred (NotFoundException) when calling the Encrypt operation: "
                             "Alias arn:aws:kms:us-east-1:111122223333:alias/nope is not found.\n")


def test_validation(cli: Cli, key: str) -> None:
    result = cli("schedule-key-deletion", "--key-id", key, "--pending-window-in-days", "6", expect=254)
    assert result.stdout == ""
    assert result.stderr == (
        "An error occurred (ValidationException) when calling the ScheduleKeyDeletion operation: "
        "1 validation error detected: Value '6' at 'pendingWindowInDays' failed to satisfy constraint: "
        "Member must have value greater than or equal to 7\n")


def test_disabled(cli: Cli, key: str) -> None:
    cli("disable-key", "--key-id", key)
    result = cli("encrypt", "--key-id", key, "--plaintext", "x", expect=254)
    assert result.stdout == ""
    assert result.stderr.startswith(
        "An error occurred (DisabledException) when calling the Encrypt operation: ")
    assert result.stderr.count("\n") == 1


def test_operation_names_in_errors(cli: Cli) -> None:
    result = cli("generate-data-key-without-plaintext", "--key-id", MISSING, "--key-spec", "AES_256", expect=254)
    assert "when calling the GenerateDataKeyWithoutPlaintext operation" in result.stderr
    result = cli("re-encrypt", "--ciphertext-blob", "AAAA", "--destination-key-id", MISSING, expect=254)
    assert "(InvalidCiphertextException) when calling the ReEncrypt operation" in result.stderr


@pytest.mark.parametrize("args", [
    ["describe-key"],                                           # missing required option
    ["encrypt", "--key-id", MISSING],                           # missing --plaintext
    ["list-keys", "--limit", "many"],                           # not an integer
    ["decrypt", "--ciphertext-blob", "not base64!"],
    ["decrypt", "--ciphertext-blob", "fileb:///no/such/file"],
    ["--output", "yaml", "list-keys"],
    ["no-such-command"],
    ["replay"],                                                 # neither --check nor --until
    ["replay", "--until", "yesterday"],
])
def test_bad_usage_exits_2(cli: Cli, args: list[str]) -> None:
    result = cli(*args, expect=2)
    assert result.stdout == ""
    assert "Usage:" in result.stderr or "Error:" in result.stderr


def test_ledger_error_exits_1(cli: Cli) -> None:
    cli("init", "--region", "eu-west-1")  # another --region is a request region now (tests/cli/test_cli_regions)
    result = cli("--account", "999988887777", "list-keys", expect=1)
    assert result.stderr.startswith("keyledger: error: this ledger was created for account 111122223333")


def test_wrong_root_key_exits_1(cli: Cli) -> None:
    cli("init")
    (cli.home / "root.key").write_bytes(b"\x01" * 32)
    result = cli("list-keys", expect=1)
    assert result.stderr == "keyledger: error: the root key does not match this ledger\n"


def test_home_that_is_a_file_exits_1(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cli.home = blocker / "ledger"
    result = cli("list-keys", expect=1)
    assert result.stderr.startswith("keyledger: error: ")


def test_spread_turns_space_separated_values_into_repeats() -> None:
    assert _spread(["--tags", "a", "b", "--x", "y", "z"], ["--tags"]) == \
        ["--tags", "a", "--tags", "b", "--x", "y", "z"]
    assert _spread(["--tags=a", "b"], ["--tags"]) == ["--tags=a", "--tags", "b"]
    assert _spread(["--tags", "a", "--", "b"], ["--tags"]) == ["--tags", "a", "--", "b"]


def test_format_text_follows_the_aws_cli_rules() -> None:
    data = {"Z": 1, "Items": [{"b": 2, "a": 1, "Sub": {"q": "v"}}, {"a": 3}], "Names": ["x", "y"], "On": True}
    assert format_text(data) == "\n".join([
        "True\t1",            # top-level scalars, in key order, no name
        "ITEMS\t1\t2",        # a list of structures shares one column order
        "SUB\tv",
        "ITEMS\t3\t",
        "NAMES\tx",           # a list of scalars: one line each
        "NAMES\ty",
    ])
