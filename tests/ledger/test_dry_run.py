"""DryRun (and DryRunModifiers) wherever AWS KMS has them, on a real ledger.

- GenerateDataKey, GenerateDataKeyWithoutPlaintext, ReEncrypt, CreateGrant,
  RetireGrant and RevokeGrant (as Encrypt, Decrypt and Sign already did): an
  allowed dry run is refused with DryRunOperationException after every
  check, the log gets exactly one RequestDenied with that code and nothing
  else happens (no data key sealed, no ReEncrypted, the grants unchanged: a
  grant "retired" or "revoked" in a dry run still works).
- A dry run of a call that would fail fails as the call would: the real
  error, not DryRunOperationException.
- DryRunModifiers=[IGNORE_CIPHERTEXT] with DryRun: only the authorization
  is tested, against the KeyId (Decrypt) or SourceKeyId (ReEncrypt) the
  request names, with the given encryption context; the ciphertext may be
  absent or garbage. Without DryRun the modifiers are ignored, and
  CiphertextBlob is required in AWS's words. Decrypt is checked over every
  combination of (DryRun, modifiers, blob, KeyId, caller) against a table.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import keyledger
import pytest
from keyledger import events as ev
from keyledger.errors import (
    AccessDeniedException,
    DisabledException,
    DryRunOperationException,
    IncorrectKeyException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    KMSError,
    NotFoundException,
    ValidationException,
)

IGNORE = ["IGNORE_CIPHERTEXT"]
DRY = "The request would have succeeded, but the DryRun option is set."
MISSING = "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null"
ABSENT_KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": "*", **extra}


def user(kms: keyledger.KeyLedger, name: str, *statements: dict[str, Any]) -> keyledger.KeyLedger:
    arn = kms.create_user(name).arn
    if statements:
        kms.put_principal_policy(arn, "p", doc(*statements))
    return kms.as_caller(arn)


def refused(kms: keyledger.KeyLedger, error: type[KMSError], call: Callable[[], Any], operation: str,
            key_id: str | None = None) -> KMSError:
    """`call` raises `error`, and the log gains exactly one record: its RequestDenied."""
    head = kms.store.head().seq
    with pytest.raises(error) as info:
        call()
    new = list(kms.store.records(head))
    assert [type(r.event) for r in new] == [ev.RequestDenied], new
    denied = new[0].event
    assert (denied.operation, denied.error_code) == (operation, error.__name__)
    if key_id is not None:
        assert denied.key_id == key_id
    if error is DryRunOperationException:
        assert info.value.message == DRY
    return info.value


def grant_ids(kms: keyledger.KeyLedger, key: str) -> list[str]:
    return [g.grant_id for g in kms.list_grants(key).grants]


# -- the six operations: an allowed dry run has no effect ------------------------------


def test_generate_data_key_dry_runs(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key().key_metadata.key_id
    for operation, call in [
        ("GenerateDataKey", lambda: kms.generate_data_key(key, key_spec="AES_256", dry_run=True)),
        ("GenerateDataKey", lambda: kms.generate_data_key(key, number_of_bytes=16, encryption_context={"a": "b"},
                                                          dry_run=True)),
        ("GenerateDataKeyWithoutPlaintext",
         lambda: kms.generate_data_key_without_plaintext(key, key_spec="AES_128", dry_run=True)),
    ]:
        refused(kms, DryRunOperationException, call, operation, key)
    # False and None are ordinary calls
    assert len(kms.generate_data_key(key, key_spec="AES_256", dry_run=False).plaintext) == 32
    kms.generate_data_key_without_plaintext(key, key_spec="AES_256", dry_run=None)
    assert sum(isinstance(r.event, ev.DataKeyGenerated) for r in kms.store.records()) == 2


def test_re_encrypt_dry_run_opens_but_seals_nothing(kms: keyledger.KeyLedger) -> None:
    src = kms.create_key().key_metadata.key_id
    dst = kms.create_key().key_metadata.key_id
    blob = kms.encrypt(src, b"payload", encryption_context={"a": "b"}).ciphertext_blob
    refused(kms, DryRunOperationException, lambda: kms.re_encrypt(
        blob, dst, source_encryption_context={"a": "b"}, destination_encryption_context={"c": "d"},
        dry_run=True), "ReEncrypt")
    refused(kms, DryRunOperationException, lambda: kms.re_encrypt(  # modifiers without IGNORE_CIPHERTEXT
        blob, dst, source_encryption_context={"a": "b"}, dry_run=True, dry_run_modifiers=[]), "ReEncrypt")
    assert not any(isinstance(r.event, ev.ReEncrypted) for r in kms.store.records())
    out = kms.re_encrypt(blob, dst, source_encryption_context={"a": "b"}, dry_run=False)
    assert kms.decrypt(out.ciphertext_blob).plaintext == b"payload"


def test_grant_dry_runs_leave_the_grants_alone(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key().key_metadata.key_id
    bob_arn = kms.create_user("bob").arn
    bob = kms.as_caller(bob_arn)
    refused(kms, DryRunOperationException,
            lambda: kms.create_grant(key, bob_arn, ["Encrypt"], name="g", dry_run=True), "CreateGrant", key)
    assert grant_ids(kms, key) == []
    with pytest.raises(AccessDeniedException):
        bob.encrypt(key, b"x")

    grant = kms.create_grant(key, bob_arn, ["Encrypt", "RetireGrant"], retiring_principal=bob_arn)
    refused(kms, DryRunOperationException,  # the same name and grant again: still a dry run
            lambda: kms.create_grant(key, bob_arn, ["Encrypt", "RetireGrant"], retiring_principal=bob_arn,
                                     dry_run=True), "CreateGrant", key)
    refused(kms, DryRunOperationException,
            lambda: bob.retire_grant(grant_token=grant.grant_token, dry_run=True), "RetireGrant", key)
    refused(kms, DryRunOperationException,
            lambda: bob.retire_grant(key_id=key, grant_id=grant.grant_id, dry_run=True), "RetireGrant", key)
    refused(kms, DryRunOperationException,
            lambda: kms.revoke_grant(key, grant.grant_id, dry_run=True), "RevokeGrant", key)
    assert grant_ids(kms, key) == [grant.grant_id]
    bob.encrypt(key, b"still granted")

    kms.revoke_grant(key, grant.grant_id, dry_run=False)
    assert grant_ids(kms, key) == []
    grant_events = [type(r.event) for r in kms.store.records()
                    if isinstance(r.event, (ev.GrantCreated, ev.GrantRetired, ev.GrantRevoked))]
    assert grant_events == [ev.GrantCreated, ev.GrantRevoked]


def test_decrypt_and_encrypt_dry_runs_are_unchanged(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key().key_metadata.key_id
    refused(kms, DryRunOperationException, lambda: kms.encrypt(key, b"x", dry_run=True), "Encrypt", key)
    blob = kms.encrypt(key, b"x").ciphertext_blob
    refused(kms, DryRunOperationException, lambda: kms.decrypt(blob, dry_run=True), "Decrypt", key)
    assert not any(isinstance(r.event, ev.Decrypted) for r in kms.store.records())


# -- a dry run of a call that would fail fails as the call ------------------------------


def test_a_dry_run_that_would_fail_gets_the_real_error(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key().key_metadata.key_id
    other = kms.create_key().key_metadata.key_id
    off = kms.create_key().key_metadata.key_id
    blob = kms.encrypt(key, b"x").ciphertext_blob
    off_blob = kms.encrypt(off, b"x").ciphertext_blob
    grant = kms.create_grant(key, kms.create_user("carol").arn, ["Decrypt"])
    kms.disable_key(off)
    bob = user(kms, "bob")
    bob_arn = bob.caller
    cases: list[tuple[type[KMSError], str, Callable[[], Any]]] = [
        (AccessDeniedException, "GenerateDataKey", lambda: bob.generate_data_key(key, key_spec="AES_256",
                                                                                 dry_run=True)),
        (AccessDeniedException, "GenerateDataKeyWithoutPlaintext",
         lambda: bob.generate_data_key_without_plaintext(key, key_spec="AES_256", dry_run=True)),
        (AccessDeniedException, "ReEncrypt", lambda: bob.re_encrypt(blob, other, dry_run=True)),
        (AccessDeniedException, "CreateGrant", lambda: bob.create_grant(key, bob_arn, ["Encrypt"], dry_run=True)),
        (AccessDeniedException, "RetireGrant", lambda: bob.retire_grant(grant_token=grant.grant_token,
                                                                        dry_run=True)),
        (AccessDeniedException, "RevokeGrant", lambda: bob.revoke_grant(key, grant.grant_id, dry_run=True)),
        (DisabledException, "GenerateDataKey", lambda: kms.generate_data_key(off, key_spec="AES_256",
                                                                             dry_run=True)),
        (DisabledException, "ReEncrypt", lambda: kms.re_encrypt(blob, off, dry_run=True)),
        (DisabledException, "ReEncrypt", lambda: kms.re_encrypt(off_blob, key, dry_run=True)),
        (DisabledException, "Decrypt", lambda: kms.decrypt(off_blob, dry_run=True)),
        (NotFoundException, "GenerateDataKey", lambda: kms.generate_data_key(ABSENT_KEY, key_spec="AES_256",
                                                                             dry_run=True)),
        (NotFoundException, "ReEncrypt", lambda: kms.re_encrypt(blob, ABSENT_KEY, dry_run=True)),
        (NotFoundException, "CreateGrant", lambda: kms.create_grant(ABSENT_KEY, bob_arn, ["Encrypt"],
                                                                    dry_run=True)),
        (NotFoundException, "RevokeGrant", lambda: kms.revoke_grant(key, "0" * 64, dry_run=True)),
        (NotFoundException, "RetireGrant", lambda: kms.retire_grant(key_id=key, grant_id="0" * 64,
                                                                    dry_run=True)),
        (InvalidCiphertextException, "Decrypt", lambda: kms.decrypt(b"garbage" * 4, dry_run=True)),
        (InvalidCiphertextException, "ReEncrypt", lambda: kms.re_encrypt(b"garbage" * 4, key, dry_run=True)),
        (InvalidCiphertextException, "ReEncrypt", lambda: kms.re_encrypt(  # DryRunModifiers without the one
            b"garbage" * 4, key, dry_run=True, dry_run_modifiers=[])),
        (IncorrectKeyException, "ReEncrypt", lambda: kms.re_encrypt(blob, key, source_key_id=other,
                                                                    dry_run=True)),
        (ValidationException, "GenerateDataKey", lambda: kms.generate_data_key(key, dry_run=True)),  # no size
        (ValidationException, "CreateGrant", lambda: kms.create_grant(key, bob_arn, ["Frobnicate"],
                                                                      dry_run=True)),
    ]
    for error, operation, call in cases:
        refused(kms, error, call, operation)
    assert grant_ids(kms, key) == [grant.grant_id]


# -- IGNORE_CIPHERTEXT ----------------------------------------------------------------


def test_ignore_ciphertext_decrypt_tests_the_authorization_only(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key().key_metadata.key_id
    kms.create_alias("alias/app", key)
    sales = user(kms, "sales", allow("kms:Decrypt", Condition={
        "StringEquals": {"kms:EncryptionContext:dept": "sales"}}))
    nobody = user(kms, "nobody")
    for blob in (None, b"garbage", b"\x01" * 6144):
        refused(kms, DryRunOperationException,
                lambda: kms.decrypt(blob, key_id=key, dry_run=True, dry_run_modifiers=IGNORE), "Decrypt", key)
        refused(kms, DryRunOperationException,
                lambda: sales.decrypt(blob, key_id=key, encryption_context={"dept": "sales"}, dry_run=True,
                                      dry_run_modifiers=IGNORE), "Decrypt", key)
        refused(kms, AccessDeniedException,
                lambda: sales.decrypt(blob, key_id=key, encryption_context={"dept": "hr"}, dry_run=True,
                                      dry_run_modifiers=IGNORE), "Decrypt", key)
        refused(kms, AccessDeniedException,
                lambda: nobody.decrypt(blob, key_id=key, dry_run=True, dry_run_modifiers=IGNORE), "Decrypt", key)
    refused(kms, DryRunOperationException,  # by alias, as Decrypt's KeyId may be
            lambda: kms.decrypt(key_id="alias/app", dry_run=True, dry_run_modifiers=IGNORE), "Decrypt", key)
    error = refused(kms, ValidationException,
                    lambda: kms.decrypt(b"garbage", dry_run=True, dry_run_modifiers=IGNORE), "Decrypt")
    assert error.message == MISSING.format("keyId")
    refused(kms, NotFoundException,
            lambda: kms.decrypt(key_id=ABSENT_KEY, dry_run=True, dry_run_modifiers=IGNORE), "Decrypt")
    kms.disable_key(key)
    refused(kms, DisabledException,
            lambda: kms.decrypt(key_id=key, dry_run=True, dry_run_modifiers=IGNORE), "Decrypt", key)
    refused(kms, AccessDeniedException,  # authorization first, as a real call
            lambda: nobody.decrypt(key_id=key, dry_run=True, dry_run_modifiers=IGNORE), "Decrypt", key)


def test_ignore_ciphertext_decrypt_by_a_key_policy_and_a_key_usage(kms: keyledger.KeyLedger) -> None:
    dave_arn = kms.create_user("dave").arn
    root = f"arn:aws:iam::{keyledger.DEFAULT_ACCOUNT}:root"
    policy = doc({"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
                 {"Effect": "Allow", "Principal": {"AWS": dave_arn}, "Action": "kms:Decrypt", "Resource": "*",
                  "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "t1"}}})
    key = kms.create_key(policy=policy).key_metadata.key_id
    dave = kms.as_caller(dave_arn)
    refused(kms, DryRunOperationException, lambda: dave.decrypt(
        key_id=key, encryption_context={"tenant": "t1"}, dry_run=True, dry_run_modifiers=IGNORE), "Decrypt", key)
    refused(kms, AccessDeniedException, lambda: dave.decrypt(
        key_id=key, encryption_context={"tenant": "t2"}, dry_run=True, dry_run_modifiers=IGNORE), "Decrypt", key)
    mac = kms.create_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC").key_metadata.key_id
    refused(kms, InvalidKeyUsageException,  # a key that cannot decrypt says so, as a real call would
            lambda: kms.decrypt(key_id=mac, dry_run=True, dry_run_modifiers=IGNORE), "Decrypt", mac)


def test_ignore_ciphertext_decrypt_with_an_rsa_key(kms: keyledger.KeyLedger) -> None:
    rsa = kms.create_key(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT").key_metadata.key_id
    refused(kms, DryRunOperationException, lambda: kms.decrypt(
        key_id=rsa, encryption_algorithm="RSAES_OAEP_SHA_256", dry_run=True, dry_run_modifiers=IGNORE), "Decrypt")
    refused(kms, InvalidKeyUsageException, lambda: kms.decrypt(  # SYMMETRIC_DEFAULT with an RSA key
        key_id=rsa, dry_run=True, dry_run_modifiers=IGNORE), "Decrypt")


def test_ignore_ciphertext_re_encrypt(kms: keyledger.KeyLedger) -> None:
    src = kms.create_key().key_metadata.key_id
    dst = kms.create_key().key_metadata.key_id
    off = kms.create_key().key_metadata.key_id
    kms.disable_key(off)
    from_only = user(kms, "from", allow("kms:ReEncryptFrom"))
    to_only = user(kms, "to", allow("kms:ReEncryptTo"))
    both = user(kms, "both", allow(["kms:ReEncryptFrom", "kms:ReEncryptTo"], Condition={
        "StringEquals": {"kms:EncryptionContext:a": "b"}}))
    for blob in (None, b"garbage"):
        refused(kms, DryRunOperationException, lambda: kms.re_encrypt(
            blob, dst, source_key_id=src, dry_run=True, dry_run_modifiers=IGNORE), "ReEncrypt")
        refused(kms, DryRunOperationException, lambda: both.re_encrypt(
            blob, dst, source_key_id=src, source_encryption_context={"a": "b"},
            destination_encryption_context={"a": "b"}, dry_run=True, dry_run_modifiers=IGNORE), "ReEncrypt")
        refused(kms, AccessDeniedException, lambda: both.re_encrypt(  # the source context decides ReEncryptFrom
            blob, dst, source_key_id=src, destination_encryption_context={"a": "b"}, dry_run=True,
            dry_run_modifiers=IGNORE), "ReEncrypt", src)
        refused(kms, AccessDeniedException, lambda: from_only.re_encrypt(
            blob, dst, source_key_id=src, dry_run=True, dry_run_modifiers=IGNORE), "ReEncrypt", dst)
        refused(kms, AccessDeniedException, lambda: to_only.re_encrypt(
            blob, dst, source_key_id=src, dry_run=True, dry_run_modifiers=IGNORE), "ReEncrypt", src)
        error = refused(kms, ValidationException, lambda: kms.re_encrypt(
            blob, dst, dry_run=True, dry_run_modifiers=IGNORE), "ReEncrypt")
        assert error.message == MISSING.format("sourceKeyId")
        refused(kms, DisabledException, lambda: kms.re_encrypt(
            blob, off, source_key_id=src, dry_run=True, dry_run_modifiers=IGNORE), "ReEncrypt", off)
        refused(kms, DisabledException, lambda: kms.re_encrypt(
            blob, dst, source_key_id=off, dry_run=True, dry_run_modifiers=IGNORE), "ReEncrypt")
        refused(kms, NotFoundException, lambda: kms.re_encrypt(
            blob, dst, source_key_id=ABSENT_KEY, dry_run=True, dry_run_modifiers=IGNORE), "ReEncrypt")
    assert not any(isinstance(r.event, ev.ReEncrypted) for r in kms.store.records())


def test_modifiers_without_dry_run_are_ignored_and_the_ciphertext_is_required(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key().key_metadata.key_id
    blob = kms.encrypt(key, b"x").ciphertext_blob
    for dry_run in (None, False):
        assert kms.decrypt(blob, key_id=key, dry_run=dry_run, dry_run_modifiers=IGNORE).plaintext == b"x"
        kms.re_encrypt(blob, key, source_key_id=key, dry_run=dry_run, dry_run_modifiers=IGNORE)
        refused(kms, InvalidCiphertextException,
                lambda: kms.decrypt(b"garbage", key_id=key, dry_run=dry_run, dry_run_modifiers=IGNORE), "Decrypt")
        for call, operation in [
            (lambda: kms.decrypt(key_id=key, dry_run=dry_run, dry_run_modifiers=IGNORE), "Decrypt"),
            (lambda: kms.decrypt(), "Decrypt"),
            (lambda: kms.re_encrypt(None, key, source_key_id=key, dry_run=dry_run, dry_run_modifiers=IGNORE),
             "ReEncrypt"),
            (lambda: kms.re_encrypt(destination_key_id=key), "ReEncrypt"),
        ]:
            assert refused(kms, ValidationException, call, operation).message == MISSING.format("ciphertextBlob")
    assert refused(kms, ValidationException, lambda: kms.re_encrypt(blob), "ReEncrypt").message == \
        MISSING.format("destinationKeyId")


def test_an_unknown_modifier_is_the_models_enum_refusal(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key().key_metadata.key_id
    error = refused(kms, ValidationException, lambda: kms.decrypt(
        key_id=key, dry_run=True, dry_run_modifiers=["IGNORE_CIPHERTEXT", "IGNORE_KEY"]), "Decrypt")
    assert error.message == ("1 validation error detected: Value 'IGNORE_KEY' at 'dryRunModifiers.2.member' "
                             "failed to satisfy constraint: Member must satisfy enum value set: [IGNORE_CIPHERTEXT]")
    refused(kms, ValidationException, lambda: kms.re_encrypt(
        b"x", key, dry_run=False, dry_run_modifiers=["ignore_ciphertext"]), "ReEncrypt")


def test_decrypt_over_every_combination(kms: keyledger.KeyLedger) -> None:
    """Decrypt's answer to each (DryRun, DryRunModifiers, CiphertextBlob,
    KeyId, caller) is the table's, and it is one record: Decrypted exactly
    when the plaintext came back, else RequestDenied with the error's code."""
    key = kms.create_key().key_metadata.key_id
    other = kms.create_key().key_metadata.key_id
    blob = kms.encrypt(key, b"secret").ciphertext_blob
    callers = {"allowed": kms, "denied": user(kms, "denied")}
    blobs = {"absent": None, "garbage": b"\x00garbage" * 3, "valid": blob}
    key_ids = {"absent": None, "its key": key, "another key": other}

    def expected(dry_run: bool | None, modifiers: list[str] | None, blob_kind: str, key_kind: str,
                 caller: str) -> type[KMSError] | None:
        if dry_run and modifiers and "IGNORE_CIPHERTEXT" in modifiers:
            if key_kind == "absent":
                return ValidationException
            return AccessDeniedException if caller == "denied" else DryRunOperationException
        if blob_kind == "absent":
            return ValidationException
        if blob_kind == "garbage":
            return InvalidCiphertextException
        if key_kind == "another key":
            return IncorrectKeyException
        if caller == "denied":
            return AccessDeniedException
        return DryRunOperationException if dry_run else None

    for dry_run, modifiers, blob_kind, key_kind, caller in itertools.product(
            (None, False, True), (None, [], IGNORE), blobs, key_ids, callers):
        service = callers[caller]
        head = kms.store.head().seq
        want = expected(dry_run, modifiers, blob_kind, key_kind, caller)
        case = (dry_run, modifiers, blob_kind, key_kind, caller)
        try:
            got = service.decrypt(blobs[blob_kind], key_id=key_ids[key_kind], dry_run=dry_run,
                                  dry_run_modifiers=modifiers)
        except KMSError as error:
            assert type(error) is want, (case, error)
            new = [r.event for r in kms.store.records(head)]
            assert len(new) == 1 and isinstance(new[0], ev.RequestDenied), (case, new)
            assert new[0].error_code == want.__name__
        else:
            assert want is None and got.plaintext == b"secret", case
            new = [r.event for r in kms.store.records(head)]
            assert len(new) == 1 and isinstance(new[0], ev.Decrypted), (case, new)
