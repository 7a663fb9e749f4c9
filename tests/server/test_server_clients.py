"""Unmodified AWS clients against the server: the AWS CLI and the AWS
Encryption SDK, pointed at it by endpoint URL alone."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk import CommitmentPolicy

from keyledger import events as ev
from serverkit import REGION, Server

AWS = str(Path(sys.executable).parent / "aws")


def aws_cli(server: Server, tmp_path: Path, *args: str, endpoint: bool = True,
            fails: bool = False) -> subprocess.CompletedProcess[str]:
    key = server.access["alice"]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": key.access_key_id,
           "AWS_SECRET_ACCESS_KEY": key.secret_access_key, "AWS_DEFAULT_REGION": REGION,
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": ""}
    argv = [AWS, *(["--endpoint-url", server.url] if endpoint else []), "kms", *args]
    if not endpoint:
        env["AWS_ENDPOINT_URL_KMS"] = server.url
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode != 0) == fails, done.stderr  # AWS CLI v1 exits 255 on errors, v2 254
    return done


def test_aws_cli(server: Server, key_id: str, tmp_path: Path) -> None:
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"\x00attack at dawn\xff")
    out = aws_cli(server, tmp_path, "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{plain}",
                  "--encryption-context", "order=42", "--output", "text", "--query", "CiphertextBlob")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(base64.b64decode(out.stdout.strip()))
    # the service-specific endpoint variable instead of --endpoint-url
    out = aws_cli(server, tmp_path, "decrypt", "--ciphertext-blob", f"fileb://{blob}",
                  "--encryption-context", "order=42", endpoint=False)
    decrypted = json.loads(out.stdout)
    assert base64.b64decode(decrypted["Plaintext"]) == plain.read_bytes()
    assert decrypted["KeyId"].endswith(key_id)
    described = json.loads(aws_cli(server, tmp_path, "describe-key", "--key-id", key_id).stdout)
    assert described["KeyMetadata"]["KeyId"] == key_id
    err = aws_cli(server, tmp_path, "describe-key", "--key-id", "alias/none", fails=True)
    assert "An error occurred (NotFoundException) when calling the DescribeKey operation" in err.stderr
    encrypted = [r for r in server.records() if isinstance(r.event, ev.Encrypted) and r.event.key_id == key_id]
    assert encrypted[-1].event.encryption_context == {"order": "42"}
    assert encrypted[-1].principal == server.access["alice"].principal


def test_encryption_sdk_across_a_rotation(server: Server, kms: Any, key_id: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", server.url)
    key = server.access["alice"]
    session = botocore.session.Session()
    session.set_credentials(key.access_key_id, key.secret_access_key)
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn], botocore_session=session)
    sdk = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    context = {"purpose": "server-test", "tenant": "t1"}
    mark = server.head()

    before, _ = sdk.encrypt(source=b"message one" * 100, key_provider=provider, encryption_context=context)
    kms.rotate_key_on_demand(KeyId=key_id)
    after, _ = sdk.encrypt(source=b"message two", key_provider=provider, encryption_context=context)

    for message, expected in ((before, b"message one" * 100), (after, b"message two")):
        plaintext, header = sdk.decrypt(source=message, key_provider=provider)
        assert plaintext == expected
        assert {k: header.encryption_context[k] for k in context} == context
    # the ciphertexts were made under different key versions, and all of it is in the log
    records = server.records(mark)
    made = [r.event for r in records if isinstance(r.event, ev.DataKeyGenerated)]
    opened = [r.event for r in records if isinstance(r.event, ev.Decrypted)]
    assert [e.key_version for e in made] == [1, 2] and sorted(e.key_version for e in opened) == [1, 2]
    assert all(e.encryption_context["purpose"] == "server-test" for e in made + opened)
    assert {r.principal for r in records if isinstance(r.event, (ev.DataKeyGenerated, ev.Decrypted))} == {
        key.principal}
    # a message altered in its encryption context does not decrypt
    tampered = before.replace(b"server-test", b"server-tesT")
    with pytest.raises(Exception):
        sdk.decrypt(source=tampered, key_provider=provider)
