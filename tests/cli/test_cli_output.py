"""One output vocabulary: PascalCase JSON, --query as JMESPath, --output
json|text|table, and the forensics answers in the same words."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

import keyledger
from keyledger.cli.output import format_columns, format_table

if TYPE_CHECKING:
    from conftest import Cli

ARN = "arn:aws:kms:us-east-1:111122223333:key/"


def _records(cli: Cli) -> int:
    with keyledger.open(cli.home) as kms, kms.store.snapshot() as snap:
        return snap.head().seq


# -- --query --------------------------------------------------------------------------

def test_query_is_jmespath(cli: Cli) -> None:
    keys = [cli.create_key("--description", f"k{i}") for i in range(3)]
    listed = cli.json("list-keys", "--query", "Keys[*].KeyId")
    assert sorted(listed) == sorted(keys)
    first = cli.json("list-keys")["Keys"][0]["KeyId"]
    assert cli.json("list-keys", "--query", "Keys[0].KeyId") == first
    assert cli("list-keys", "--query", "Keys[0].KeyId", "--output", "text").stdout == first + "\n"
    # a list of scalars in text: one tab-separated line, as the AWS CLI prints it
    assert sorted(cli("list-keys", "--query", "Keys[*].KeyId", "--output", "text").stdout.strip().split("\t")) == \
        sorted(keys)
    assert cli.json("list-keys", "--query", "length(Keys)") == 3
    assert cli.json("list-keys", "--query", "{Count: length(Keys), Truncated: Truncated}") == \
        {"Count": 3, "Truncated": False}
    cli("create-alias", "--alias-name", "alias/two", "--target-key-id", keys[1])
    assert cli.json("list-aliases", "--query", "Aliases[?AliasName=='alias/two'].TargetKeyId | [0]") == keys[1]
    # the global option, before the command, is the same
    assert cli.json("--query", "Keys[*].KeyId", "list-keys") == listed


@pytest.mark.parametrize("expression", ["Keys[", "Keys[*.KeyId", "[?"])
def test_a_bad_expression_is_refused_before_anything_runs(cli: Cli, expression: str) -> None:
    cli("init")
    before = _records(cli)
    result = cli("create-key", "--query", expression, expect=2)
    assert "not a JMESPath expression" in result.stderr and result.stdout == ""
    assert _records(cli) == before  # no key was made
    assert "not a JMESPath expression" in cli("--query", expression, "list-keys", expect=2).stderr


def test_query_of_nothing(cli: Cli, key: str) -> None:
    assert cli("describe-key", "--key-id", key, "--query", "KeyMetadata.Nope").stdout == "null\n"
    assert cli("describe-key", "--key-id", key, "--query", "KeyMetadata.Nope", "--output", "text").stdout == "None\n"
    assert cli("describe-key", "--key-id", key, "--query", "Nope", "--output", "table").stdout == ""


# -- --output table ---------------------------------------------------------------------

def test_format_table_is_the_aws_clis_boxes() -> None:
    data = {"Keys": [{"KeyId": "k1", "KeyArn": "arn1"}, {"KeyId": "k2", "KeyArn": "arn2"}], "Truncated": False}
    assert format_table(data, "ListKeys") == "\n".join([
        "-------------------------",
        "|        ListKeys       |",
        "+-----------------------+",
        "|  Truncated  |  False  |",
        "+-------------+---------+",
        "||         Keys        ||",
        "|+---------------------+|",
        "||  KeyArn  |  KeyId   ||",
        "|+----------+----------+|",
        "||  arn1    |  k1      ||",
        "||  arn2    |  k2      ||",
        "|+----------+----------+|",
    ])
    assert format_table(["a", "b"]) == "\n".join(["-------", "|  a  |", "|  b  |", "+-----+"])
    assert format_table(None) == "" and format_table({}) == ""


def test_table_output_of_a_command(cli: Cli) -> None:
    key = cli.create_key("--description", "orders")
    lines = cli("describe-key", "--key-id", key, "--output", "table").stdout.splitlines()
    width = len(lines[0])
    assert set(lines[0]) == {"-"} and all(len(line) == width for line in lines)
    assert lines[1].strip("| ") == "DescribeKey" and lines[3].strip("| ") == "KeyMetadata"
    assert any(line.startswith("||  Description") and "orders" in line for line in lines)
    assert lines[-2].strip("| ") == "SYMMETRIC_DEFAULT"  # EncryptionAlgorithms, a nested list
    assert cli("--output", "table", "describe-key", "--key-id", key).stdout.splitlines() == lines


def test_format_columns() -> None:
    assert format_columns(("A", "LONGER"), [[1, None], ["wide cell", "x"]]) == \
        "A          LONGER\n1          -\nwide cell  x"


# -- forensics: PascalCase, readable text, one shape with replay --until ------------------

@pytest.fixture
def trail(cli: Cli, key: str, write) -> dict[str, str]:
    cli("create-alias", "--alias-name", "alias/orders", "--target-key-id", key)
    blob = cli.json("encrypt", "--key-id", "alias/orders", "--plaintext", "x",
                    "--encryption-context", "o=1")["CiphertextBlob"]
    cli("decrypt", "--ciphertext-blob", blob, "--encryption-context", "o=1")
    return {"key": key, "blob": blob}


def _pascal(data: object) -> None:
    """Every member name is PascalCase (values may be anything)."""
    if isinstance(data, dict):
        for name, value in data.items():
            assert name[:1].isupper() and "_" not in name, name
            _pascal(value)
    elif isinstance(data, list):
        for value in data:
            _pascal(value)


def test_forensics_speaks_pascal_case(cli: Cli, trail: dict[str, str]) -> None:
    key = trail["key"]
    found = cli.json("forensics", "ciphertext", "--ciphertext-blob", trail["blob"])
    assert set(found) == {"KeyId", "KeyArn", "KeyVersion", "CiphertextSha256", "ProducedBy", "LaterUses"}
    assert found["ProducedBy"]["Operation"] == "Encrypt" and found["LaterUses"][0]["Event"] == "Decrypted"
    assert len(found["CiphertextSha256"]) == 44  # base64 of 32 bytes, as every hash is printed
    timeline = cli.json("forensics", "key", key)
    assert timeline["UsageByPrincipal"] == [{"Principal": "arn:aws:iam::111122223333:root", "Requests": 2}]
    who = cli.json("forensics", "who-can", "--key-id", key)
    for data in (found, timeline, who, cli.json("forensics", "at", "0")):
        _pascal(data)


def test_forensics_at_and_replay_until_share_one_shape(cli: Cli, trail: dict[str, str]) -> None:
    for point in ("0", "2", "2100-01-01T00:00:00Z"):
        assert cli.json("forensics", "at", point) == cli.json("replay", "--until", point)
    assert cli("--output", "text", "forensics", "at", "2").stdout == \
        cli("--output", "text", "replay", "--until", "2").stdout


def test_forensics_text_is_readable_columns(cli: Cli, trail: dict[str, str]) -> None:
    key = trail["key"]
    text = cli("forensics", "key", "alias/orders", "--output", "text").stdout
    lines = text.splitlines()
    assert lines[0] == f"key:      {ARN}{key}" and lines[1] == "aliases:  alias/orders"
    header = lines[3].split()
    assert header == ["SEQ", "TIME", "PRINCIPAL", "OPERATION", "EVENT", "DETAIL"]
    created = lines[4].split()
    assert created[0] == "0" and created[3:] == ["CreateKey", "KeyCreated", "-"]
    assert lines[5].split()[3:] == ["CreateAlias", "AliasCreated", "alias/orders"]
    assert "\t" not in text and "{" not in text

    used = cli("forensics", "ciphertext", "--ciphertext-blob", trail["blob"], "--output", "text").stdout
    assert used.startswith(f"key:          {ARN}{key} (version 1)\n")
    assert "produced by:  arn:aws:iam::111122223333:root with Encrypt at " in used
    assert used.splitlines()[-1].split()[3:] == ["Decrypt", "Decrypted"]

    who = cli("forensics", "who-can", "--key-id", key, "--output", "text").stdout.splitlines()
    assert who[3].split() == ["PRINCIPAL", "DECISION", "REASON"]
    assert who[4].split()[:2] == ["arn:aws:iam::111122223333:root", "allowed"]

    # --query still applies to the JSON shape
    assert cli("forensics", "key", key, "--query", "Timeline[0].Event", "--output", "text").stdout == "KeyCreated\n"
    assert json.loads(cli("forensics", "key", key, "--query", "AliasesNow").stdout) == ["alias/orders"]
