"""DryRun and DryRunModifiers through boto3 against the real server: the
six operations that newly take DryRun answer DryRunOperationException (400)
with nothing done, IGNORE_CIPHERTEXT tests Decrypt's and ReEncrypt's
authorization without a ciphertext, and a missing CiphertextBlob (which the
model no longer marks required) is AWS's ValidationException."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from keyledger import events as ev
from serverkit import ACCOUNT, Server

IGNORE = ["IGNORE_CIPHERTEXT"]
DRY = "The request would have succeeded, but the DryRun option is set."
MISSING = "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null"
EFFECTS = (ev.DataKeyGenerated, ev.ReEncrypted, ev.Decrypted, ev.GrantCreated, ev.GrantRetired, ev.GrantRevoked)


def refused(server: Server, code: str, call: Any) -> dict[str, Any]:
    """`call` is answered with the AWS error `code`, whose request is one
    RequestDenied record of that code and nothing else; the error."""
    before = server.head()
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response
    assert error["Error"]["Code"] == code, error
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    mine = [r for r in server.records(before) if r.request_id == error["ResponseMetadata"]["RequestId"]]
    assert [type(r.event) for r in mine] == [ev.RequestDenied]
    assert mine[0].event.error_code == code
    if code == "DryRunOperationException":
        assert error["Error"]["Message"] == DRY
    return error


def no_effects(server: Server, before: int) -> None:
    assert not [r for r in server.records(before) if isinstance(r.event, EFFECTS)]


def test_dry_run_of_each_operation(server: Server, kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    dst = kms.create_key()["KeyMetadata"]["KeyId"]
    bob = server.access["bob"].principal
    blob = kms.encrypt(KeyId=key, Plaintext=b"payload", EncryptionContext={"a": "b"})["CiphertextBlob"]
    grant = kms.create_grant(KeyId=key, GranteePrincipal=bob, Operations=["Encrypt"], RetiringPrincipal=bob)
    before = server.head()
    for call in [
        lambda: kms.generate_data_key(KeyId=key, KeySpec="AES_256", DryRun=True),
        lambda: kms.generate_data_key_without_plaintext(KeyId=key, NumberOfBytes=32, DryRun=True),
        lambda: kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"a": "b"}, DestinationKeyId=dst,
                               DryRun=True),
        lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"}, DryRun=True),
        lambda: kms.create_grant(KeyId=key, GranteePrincipal=bob, Operations=["Decrypt"], DryRun=True),
        lambda: server.client("bob").retire_grant(GrantToken=grant["GrantToken"], DryRun=True),
        lambda: server.client("root").retire_grant(KeyId=key, GrantId=grant["GrantId"], DryRun=True),
        lambda: kms.revoke_grant(KeyId=key, GrantId=grant["GrantId"], DryRun=True),
    ]:
        refused(server, "DryRunOperationException", call)
    no_effects(server, before)
    assert [g["GrantId"] for g in kms.list_grants(KeyId=key)["Grants"]] == [grant["GrantId"]]
    server.client("bob").encrypt(KeyId=key, Plaintext=b"the grant still works")
    # DryRun false is an ordinary call
    assert len(kms.generate_data_key(KeyId=key, KeySpec="AES_256", DryRun=False)["Plaintext"]) == 32


def test_dry_run_of_a_failing_call_is_the_real_error(server: Server, kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    off = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=off)
    bob = server.client("bob")
    grant = kms.create_grant(KeyId=key, GranteePrincipal=server.access["alice"].principal, Operations=["Encrypt"])
    refused(server, "AccessDeniedException",
            lambda: bob.generate_data_key(KeyId=key, KeySpec="AES_256", DryRun=True))
    refused(server, "AccessDeniedException", lambda: bob.revoke_grant(KeyId=key, GrantId=grant["GrantId"],
                                                                      DryRun=True))
    refused(server, "AccessDeniedException", lambda: bob.retire_grant(GrantToken=grant["GrantToken"],
                                                                      DryRun=True))
    refused(server, "DisabledException",
            lambda: kms.generate_data_key_without_plaintext(KeyId=off, KeySpec="AES_256", DryRun=True))
    refused(server, "NotFoundException", lambda: kms.create_grant(
        KeyId="1234abcd-12ab-34cd-56ef-1234567890ab", GranteePrincipal=server.access["bob"].principal,
        Operations=["Encrypt"], DryRun=True))
    refused(server, "InvalidCiphertextException", lambda: kms.decrypt(CiphertextBlob=b"garbage" * 4, DryRun=True))
    refused(server, "InvalidCiphertextException", lambda: kms.re_encrypt(
        CiphertextBlob=b"garbage" * 4, DestinationKeyId=key, DryRun=True))
    assert len(kms.list_grants(KeyId=key)["Grants"]) == 1


def test_ignore_ciphertext_decrypt(server: Server, kms: Any) -> None:
    bob_arn = server.access["bob"].principal
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*",
         "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": bob_arn}, "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "t1"}}}]})
    key = kms.create_key(Policy=policy)["KeyMetadata"]["KeyId"]
    bob = server.client("bob")
    before = server.head()
    for blob in ({}, {"CiphertextBlob": b"garbage"}):
        refused(server, "DryRunOperationException", lambda: kms.decrypt(
            KeyId=key, DryRun=True, DryRunModifiers=IGNORE, **blob))
        refused(server, "DryRunOperationException", lambda: bob.decrypt(
            KeyId=key, EncryptionContext={"tenant": "t1"}, DryRun=True, DryRunModifiers=IGNORE, **blob))
        refused(server, "AccessDeniedException", lambda: bob.decrypt(
            KeyId=key, EncryptionContext={"tenant": "t2"}, DryRun=True, DryRunModifiers=IGNORE, **blob))
        error = refused(server, "ValidationException", lambda: kms.decrypt(
            DryRun=True, DryRunModifiers=IGNORE, **blob))
        assert error["Error"]["Message"] == MISSING.format("keyId")
    no_effects(server, before)
    other = kms.create_key()["KeyMetadata"]["KeyId"]  # bob has nothing on it
    refused(server, "AccessDeniedException", lambda: bob.decrypt(KeyId=other, DryRun=True, DryRunModifiers=IGNORE))


def test_ignore_ciphertext_re_encrypt(server: Server, kms: Any) -> None:
    src = kms.create_key()["KeyMetadata"]["KeyId"]
    dst = kms.create_key()["KeyMetadata"]["KeyId"]
    before = server.head()
    refused(server, "DryRunOperationException", lambda: kms.re_encrypt(
        SourceKeyId=src, DestinationKeyId=dst, DryRun=True, DryRunModifiers=IGNORE))
    refused(server, "DryRunOperationException", lambda: kms.re_encrypt(
        CiphertextBlob=b"garbage", SourceKeyId=src, DestinationKeyId=dst, DryRun=True, DryRunModifiers=IGNORE))
    error = refused(server, "ValidationException", lambda: kms.re_encrypt(
        DestinationKeyId=dst, DryRun=True, DryRunModifiers=IGNORE))
    assert error["Error"]["Message"] == MISSING.format("sourceKeyId")
    refused(server, "AccessDeniedException", lambda: server.client("bob").re_encrypt(
        SourceKeyId=src, DestinationKeyId=dst, DryRun=True, DryRunModifiers=IGNORE))
    no_effects(server, before)


def test_modifiers_without_dry_run_and_a_missing_ciphertext(server: Server, kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, DryRunModifiers=IGNORE)["Plaintext"] == b"x"
    assert kms.decrypt(CiphertextBlob=blob, DryRun=False, DryRunModifiers=IGNORE)["Plaintext"] == b"x"
    for call in [lambda: kms.decrypt(KeyId=key),
                 lambda: kms.decrypt(KeyId=key, DryRunModifiers=IGNORE),
                 lambda: kms.decrypt(KeyId=key, DryRun=True),
                 lambda: kms.re_encrypt(DestinationKeyId=key, SourceKeyId=key, DryRunModifiers=IGNORE)]:
        error = refused(server, "ValidationException", call)
        assert error["Error"]["Message"] == MISSING.format("ciphertextBlob")
    status, _, body = server.raw("TrentService.Decrypt", "{}")
    assert (status, body) == (400, {"__type": "ValidationException", "message": MISSING.format("ciphertextBlob")})
    status, _, body = server.raw("TrentService.Decrypt", json.dumps(
        {"KeyId": key, "DryRun": True, "DryRunModifiers": ["IGNORE_KEY"]}))
    assert (status, body["__type"]) == (400, "ValidationException")
    assert body["message"] == ("1 validation error detected: Value 'IGNORE_KEY' at 'dryRunModifiers.1.member' "
                               "failed to satisfy constraint: Member must satisfy enum value set: "
                               "[IGNORE_CIPHERTEXT]")
    status, _, body = server.raw("TrentService.Decrypt", json.dumps({"KeyId": key, "DryRunModifiers": "x"}))
    assert (status, body["__type"]) == (400, "SerializationException")
