"""The `aws kms` commands built from the model: one per implemented
operation, named and optioned as the AWS CLI names them, with help from the
model's documentation, dispatched through the server's own mapping."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pytest
from click.testing import CliRunner

import keyledger
from keyledger import events as ev
from keyledger import operations as ops
from keyledger.cli import kms, params
from keyledger.cli.main import main
from keyledger.service import KeyLedger

if TYPE_CHECKING:
    from conftest import Cli

IMPLEMENTED = sorted(name for name in ops.MODEL["operations"] if callable(getattr(KeyLedger, ops.snake(name), None)))


def test_one_command_per_operation_the_library_implements() -> None:
    assert len(IMPLEMENTED) >= 30
    assert sorted(c.operation for c in kms.COMMANDS) == IMPLEMENTED
    for name in IMPLEMENTED:
        command = main.commands[ops.kebab(name)]
        assert command is kms.BY_OPERATION[name]
    # and nothing for what keyledger does not do
    for name in set(ops.MODEL["operations"]) - set(IMPLEMENTED):
        assert ops.kebab(name) not in main.commands, name


@pytest.mark.parametrize("name, command", [("GenerateDataKeyWithoutPlaintext", "generate-data-key-without-plaintext"),
                                           ("ReEncrypt", "re-encrypt"), ("ListKeys", "list-keys")])
def test_names_are_the_aws_clis(name: str, command: str) -> None:
    assert ops.kebab(name) == command and command in main.commands


@pytest.mark.parametrize("command", kms.COMMANDS, ids=lambda c: c.name)
def test_every_generated_command_has_help_from_the_model(command: click.Command) -> None:
    docs = ops.documentation()[command.operation]  # type: ignore[attr-defined]
    assert docs[""] and command.help and command.help.startswith(docs[""])
    shown = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    for option in shown:
        assert option.help and len(option.help) > 10, option.name
    result = CliRunner().invoke(main, [command.name, "--help"], prog_name="keyledger")  # type: ignore[list-item]
    assert result.exit_code == 0 and result.stdout.startswith(f"Usage: keyledger {command.name} [OPTIONS]")


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_options_are_the_model_members(name: str) -> None:
    """One option per member, --kebab-case; required exactly when the model
    (or the library) requires it; members the library lacks are hidden."""
    op = ops.OPERATIONS[name]
    command = kms.BY_OPERATION[name]
    options = {p.opts[0]: p for p in command.params if isinstance(p, click.Option)}
    for member, (shape, kwarg) in op.members.items():
        option = options["--" + ops.kebab(member)]
        assert option.hidden == (kwarg is None), member
        assert option.required == (kwarg is not None and member in op.required), member
        kind = ops.SHAPES[shape]["type"]
        assert option.multiple == (kind == "list"), member
        if kind == "boolean":
            assert option.secondary_opts == ["--no-" + ops.kebab(member)]


def test_the_options_of_encrypt() -> None:
    options = {p.opts[0]: p for p in kms.BY_OPERATION["Encrypt"].params if isinstance(p, click.Option)}
    assert {"--key-id", "--plaintext", "--encryption-context", "--grant-tokens", "--encryption-algorithm",
            "--output", "--query"} <= set(options)
    assert options["--key-id"].required and options["--plaintext"].required
    assert not options["--encryption-context"].required and not options["--encryption-context"].hidden


def test_a_new_library_method_is_a_new_command(tmp_path: Path) -> None:
    """Adding an operation is its library method plus its model entry."""
    class Extended(KeyLedger):
        def get_public_key(self, key_id: str, *, grant_tokens: list[str] | None = None) -> Any:
            return {"KeyId": key_id, "GrantTokens": grant_tokens}

    op = ops.build_operations(Extended)["GetPublicKey"]
    command = kms.build(op)
    assert command.name == "get-public-key" and command.operation == "GetPublicKey"
    names = {p.opts[0] for p in command.params if isinstance(p, click.Option) and not p.hidden}
    assert {"--key-id", "--grant-tokens"} <= names
    assert kms.invoke(_Fake(), op, {"KeyId": "k", "GrantTokens": ["a", "b"]}) == \
        ("get_public_key", {"key_id": "k", "grant_tokens": ["a", "b"]})


class _Fake:
    def __getattr__(self, name: str) -> Any:
        return lambda **kwargs: (name, kwargs)


def test_documentation_covers_every_implemented_member() -> None:
    docs = ops.documentation()
    for name in IMPLEMENTED:
        for member, (_, kwarg) in ops.OPERATIONS[name].members.items():
            if kwarg is not None:
                assert docs[name].get(member), f"{name}.{member}"
        assert "<" not in docs[name][""] and "\n" not in docs[name][""]  # plain text, one paragraph


def test_vendored_docs_are_botocores_first_paragraphs() -> None:
    pytest.importorskip("botocore")
    from vendor_docs import first_paragraph

    assert first_paragraph("<p>Encrypts <code>plaintext</code>.</p> <p>More.</p>") == "Encrypts plaintext."
    assert first_paragraph("<p>A &amp; B</p>") == "A & B"
    assert first_paragraph("No markup at all.") == "No markup at all."
    assert first_paragraph(None) == ""


# -- parameters -------------------------------------------------------------------------

def test_wire_values_by_shape(tmp_path: Path) -> None:
    (tmp_path / "raw.bin").write_bytes(b"\x00\xff")
    (tmp_path / "doc.txt").write_text("from a file")
    b64 = base64.b64encode(b"\x00\xff").decode()
    assert params.wire_value("--plaintext", "PlaintextType", f"fileb://{tmp_path / 'raw.bin'}") == b64
    assert params.wire_value("--plaintext", "PlaintextType", "hi") == base64.b64encode(b"hi").decode()
    assert params.wire_value("--ciphertext-blob", "CiphertextType", b64) == b64
    assert params.wire_value("--ciphertext-blob", "CiphertextType", f"fileb://{tmp_path / 'raw.bin'}") == b64
    assert params.wire_value("--description", "DescriptionType", f"file://{tmp_path / 'doc.txt'}") == "from a file"
    assert params.wire_value("--encryption-context", "EncryptionContextType", "a=1,b=2") == {"a": "1", "b": "2"}
    assert params.wire_value("--encryption-context", "EncryptionContextType", '{"a": "1"}') == {"a": "1"}
    assert params.wire_value("--grant-tokens", "GrantTokenList", ("t1", "t2")) == ["t1", "t2"]
    assert params.wire_value("--grant-tokens", "GrantTokenList", ('["t1", "t2"]',)) == ["t1", "t2"]
    assert params.wire_value("--grant-tokens", "GrantTokenList", ()) is None
    assert params.wire_value("--tags", "TagList", ("TagKey=a,TagValue=1", '{"TagKey": "b", "TagValue": "2"}')) == \
        [{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}]
    assert params.wire_value("--constraints", "GrantConstraints", "EncryptionContextEquals={k=v}") == \
        {"EncryptionContextEquals": {"k": "v"}}
    assert params.wire_value("--limit", "LimitType", 5) == 5
    assert params.wire_value("--bypass-policy-lockout-safety-check", "BooleanType", False) is False


@pytest.mark.parametrize("shape, value, message", [
    ("TagList", ("TagKey=a,Nope=1",), "unknown tag member 'Nope'"),
    ("TagList", ('[{"TagKey": 1, "TagValue": "x"}]',), "expected a string at [0].TagKey"),
    ("GrantConstraints", "EncryptionContextSubset=x", "must be a map"),
    ("EncryptionContextType", "novalue", "key=value"),
    ("CiphertextType", "fileb:///no/such/file", "unable to load paramfile"),
    ("CiphertextType", "***", "invalid base64"),
])
def test_malformed_values_are_usage_errors(shape: str, value: Any, message: str) -> None:
    with pytest.raises(click.BadParameter) as caught:
        params.wire_value("--x", shape, value)
    assert message in caught.value.format_message()


def test_space_separated_lists_end_at_the_next_option(cli: Cli, key: str) -> None:
    cli("tag-resource", "--key-id", key, "--tags", "TagKey=a,TagValue=1", "TagKey=b,TagValue=2")
    cli("untag-resource", "--tag-keys", "a", "b", "--key-id", key)
    assert cli.json("list-resource-tags", "--key-id", key)["Tags"] == []


def test_a_required_member_is_a_usage_error(cli: Cli) -> None:
    result = cli("re-encrypt", "--ciphertext-blob", "AAAA", expect=2)
    assert "--destination-key-id" in result.stderr and result.stdout == ""


def test_a_member_keyledger_lacks_is_refused_and_recorded(cli: Cli) -> None:
    assert ops.OPERATIONS["GenerateRandom"].members["Recipient"][1] is None  # no Nitro Enclave attestation
    result = cli("generate-random", "--number-of-bytes", "8", "--recipient",
                 "KeyEncryptionAlgorithm=RSAES_OAEP_SHA_256,AttestationDocument=AAAA", expect=254)
    assert result.stderr == ("An error occurred (UnsupportedOperationException) when calling the GenerateRandom "
                             "operation: Recipient is not supported by keyledger for GenerateRandom.\n")
    with keyledger.open(cli.home) as opened, opened.store.snapshot() as snap:
        last = list(snap.records())[-1]
    assert isinstance(last.event, ev.RequestDenied) and last.event.error_code == "UnsupportedOperationException"
    assert cli.json("list-keys") == {"Keys": [], "Truncated": False}


def test_the_same_request_through_the_cli_and_the_server_mapping(cli: Cli, key: str, write) -> None:
    """The CLI builds the request document the AWS CLI would send; the
    shared mapping turns it into the same library call as the server's."""
    blob = cli.json("encrypt", "--key-id", key, "--plaintext", write("p.bin", b"\x01\x02"),
                    "--encryption-context", "a=1", "--grant-tokens", '[]')["CiphertextBlob"]
    document = {"CiphertextBlob": blob, "EncryptionContext": {"a": "1"}}
    kwargs = ops.request_kwargs(ops.OPERATIONS["Decrypt"], document)
    with keyledger.open(cli.home) as opened:
        assert opened.decrypt(**kwargs).plaintext == b"\x01\x02"
    assert json.loads(cli("decrypt", "--ciphertext-blob", blob, "--encryption-context", "a=1").stdout)[
        "Plaintext"] == base64.b64encode(b"\x01\x02").decode()
