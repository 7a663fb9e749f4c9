"""The data plane through the CLI: blobs in and out, encryption contexts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from keyledger.cli.params import string_map

if TYPE_CHECKING:
    from conftest import Cli

ARN = "arn:aws:kms:us-east-1:111122223333:key/"
SECRET = b"attack at dawn \x00\xff binary tail"


def _b64(blob: str) -> bytes:
    return base64.b64decode(blob, validate=True)


def test_encrypt_decrypt_round_trip_through_fileb_files(cli: Cli, key: str, write, tmp_path: Path) -> None:
    out = cli.json("encrypt", "--key-id", key, "--plaintext", write("plain.bin", SECRET),
                   "--encryption-context", "purpose=test,order=42")
    assert set(out) == {"CiphertextBlob", "KeyId", "EncryptionAlgorithm"}
    assert out["KeyId"] == ARN + key and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = _b64(out["CiphertextBlob"])
    assert SECRET not in blob

    # the AWS CLI way: --query CiphertextBlob --output text | base64 --decode > file
    text = cli("encrypt", "--key-id", key, "--plaintext", write("plain2.bin", SECRET), "--encryption-context",
               "purpose=test,order=42", "--query", "CiphertextBlob", "--output", "text").stdout
    assert text.endswith("\n") and "\t" not in text
    for ciphertext in (blob, _b64(text.strip())):
        url = write("cipher.bin", ciphertext)
        decrypted = cli.json("decrypt", "--ciphertext-blob", url, "--encryption-context", "order=42,purpose=test")
        assert len(decrypted.pop("KeyMaterialId")) == 64  # AWS's 2025 addition
        assert decrypted == {"KeyId": ARN + key, "Plaintext": base64.b64encode(SECRET).decode(),
                             "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}


def test_decrypt_accepts_base64_text_and_checks_key_id(cli: Cli, key: str) -> None:
    blob = cli.json("encrypt", "--key-id", key, "--plaintext", "hello")["CiphertextBlob"]
    out = cli.json("decrypt", "--ciphertext-blob", blob, "--key-id", key)
    assert _b64(out["Plaintext"]) == b"hello"  # literal --plaintext text is its UTF-8 bytes
    other = cli.create_key()
    result = cli("decrypt", "--ciphertext-blob", blob, "--key-id", other, expect=254)
    assert result.stderr.startswith("An error occurred (IncorrectKeyException) when calling the Decrypt operation")


@pytest.mark.parametrize("given", [
    "purpose=test,order=42",
    " order = 42 , purpose=test ",
    '{"purpose": "test", "order": "42"}',
    '{"order": "42", "purpose": "test"}',
])
def test_encryption_context_both_forms_are_the_same_context(cli: Cli, key: str, given: str) -> None:
    blob = cli.json("encrypt", "--key-id", key, "--plaintext", "x",
                    "--encryption-context", "order=42,purpose=test")["CiphertextBlob"]
    out = cli.json("decrypt", "--ciphertext-blob", blob, "--encryption-context", given)
    assert _b64(out["Plaintext"]) == b"x"


def test_encryption_context_from_a_file(cli: Cli, key: str, tmp_path: Path) -> None:
    (tmp_path / "ctx.json").write_text(json.dumps({"tenant": "acme"}))
    blob = cli.json("encrypt", "--key-id", key, "--plaintext", "x",
                    "--encryption-context", f"file://{tmp_path / 'ctx.json'}")["CiphertextBlob"]
    cli("decrypt", "--ciphertext-blob", blob, "--encryption-context", "tenant=acme")
    result = cli("decrypt", "--ciphertext-blob", blob, "--encryption-context", "tenant=other", expect=254)
    assert "(InvalidCiphertextException)" in result.stderr


def test_context_parsing_unit() -> None:
    assert string_map("--c", "a=1,b=x=y") == {"a": "1", "b": "x=y"}
    assert string_map("--c", '{"a": "1"}') == {"a": "1"}
    assert string_map("--c", None) is None


@pytest.mark.parametrize("bad", ["novalue", "a=1,a=2", "=1", '{"a": 1}', "{not json"])
def test_malformed_context_is_a_usage_error(cli: Cli, key: str, bad: str) -> None:
    result = cli("encrypt", "--key-id", key, "--plaintext", "x", "--encryption-context", bad, expect=2)
    assert "--encryption-context" in result.stderr
    assert result.stdout == ""


def test_re_encrypt_to_another_key_and_context(cli: Cli, key: str) -> None:
    other = cli.create_key()
    blob = cli.json("encrypt", "--key-id", key, "--plaintext", "moving", "--encryption-context", "a=1")
    out = cli.json("re-encrypt", "--ciphertext-blob", blob["CiphertextBlob"], "--destination-key-id", other,
                   "--source-encryption-context", "a=1", "--destination-encryption-context", '{"b": "2"}')
    assert set(out) == {"CiphertextBlob", "SourceKeyId", "KeyId", "SourceEncryptionAlgorithm",
                        "DestinationEncryptionAlgorithm", "SourceKeyMaterialId", "DestinationKeyMaterialId"}
    assert out["SourceKeyId"] == ARN + key and out["KeyId"] == ARN + other
    back = cli.json("decrypt", "--ciphertext-blob", out["CiphertextBlob"], "--encryption-context", "b=2")
    assert back["KeyId"] == ARN + other and _b64(back["Plaintext"]) == b"moving"


def test_generate_data_key_and_without_plaintext(cli: Cli, key: str) -> None:
    out = cli.json("generate-data-key", "--key-id", key, "--key-spec", "AES_256", "--encryption-context", "k=v")
    assert set(out) == {"CiphertextBlob", "Plaintext", "KeyId", "KeyMaterialId"} and out["KeyId"] == ARN + key
    data_key = _b64(out["Plaintext"])
    assert len(data_key) == 32
    opened = cli.json("decrypt", "--ciphertext-blob", out["CiphertextBlob"], "--encryption-context", "k=v")
    assert _b64(opened["Plaintext"]) == data_key

    out = cli.json("generate-data-key-without-plaintext", "--key-id", key, "--number-of-bytes", "16")
    assert set(out) == {"CiphertextBlob", "KeyId", "KeyMaterialId"}
    opened = cli.json("decrypt", "--ciphertext-blob", out["CiphertextBlob"])
    assert len(_b64(opened["Plaintext"])) == 16


def test_generate_random(cli: Cli) -> None:
    out = cli.json("generate-random", "--number-of-bytes", "24")
    assert list(out) == ["Plaintext"] and len(_b64(out["Plaintext"])) == 24


def test_plaintext_appears_only_in_the_response(cli: Cli, key: str, write) -> None:
    secret = b"do-not-print-me-0123456789"
    url = write("s.bin", secret)
    enc = cli("encrypt", "--key-id", key, "--plaintext", url, "--encryption-context", "a=1")
    assert secret not in enc.stdout_bytes + enc.stderr_bytes
    assert base64.b64encode(secret) not in enc.stdout_bytes
    blob = json.loads(enc.stdout)["CiphertextBlob"]
    denied = cli("decrypt", "--ciphertext-blob", blob, "--encryption-context", "a=2", expect=254)
    assert secret not in denied.output_bytes and base64.b64encode(secret) not in denied.output_bytes
    too_long = cli("encrypt", "--key-id", key, "--plaintext", "s3cret" * 700, expect=254)
    assert "s3cret" not in too_long.output
