"""ReEncrypt from and to RSA ENCRYPT_DECRYPT keys, as AWS allows it:
symmetric -> RSA, RSA -> symmetric (including a ciphertext made offline with
the public key), RSA -> RSA; the refusals (SourceKeyId required for an RSA
source, no encryption context on an RSA side, the destination's OAEP limit,
algorithms that do not fit the key); the ReEncrypted record with its digests
and algorithms; replay, the CloudTrail view, forensics and IAM conditions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keyledger
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyledger import events as ev
from keyledger import forensics
from keyledger.errors import (
    AccessDeniedException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    ValidationException,
)
from keyledger.projections import cloudtrail, replay
from keyledger.secret import Secret

OAEP = {"RSAES_OAEP_SHA_1": hashes.SHA1, "RSAES_OAEP_SHA_256": hashes.SHA256}
CONTEXT = {"purpose": "reencrypt-test"}


def oaep(algorithm: str) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(OAEP[algorithm]()), algorithm=OAEP[algorithm](), label=None)


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path_factory.mktemp("reencrypt"), create=True, durability="relaxed")
    yield ledger
    ledger.close()


@pytest.fixture(scope="module")
def keys(kms: keyledger.KeyLedger) -> dict[str, str]:
    out = {spec: kms.create_key(key_spec=spec, key_usage="ENCRYPT_DECRYPT").key_metadata.key_id
           for spec in ("RSA_2048", "RSA_4096")}
    out["sym"] = kms.create_key().key_metadata.key_id
    out["sym2"] = kms.create_key().key_metadata.key_id
    out["signer"] = kms.create_key(key_spec="RSA_2048", key_usage="SIGN_VERIFY").key_metadata.key_id
    return out


def arn(kms: keyledger.KeyLedger, key_id: str) -> str:
    return kms.describe_key(key_id).key_metadata.arn


def last_reencrypted(kms: keyledger.KeyLedger) -> ev.Record:
    return [r for r in kms.store.records() if isinstance(r.event, ev.ReEncrypted)][-1]


def last_denied(kms: keyledger.KeyLedger) -> ev.RequestDenied:
    event = list(kms.store.records())[-1].event
    assert isinstance(event, ev.RequestDenied)
    return event


@pytest.mark.parametrize("algorithm", sorted(OAEP))
def test_symmetric_to_rsa(kms: keyledger.KeyLedger, keys: dict[str, str], algorithm: str) -> None:
    rsa = keys["RSA_2048"]
    blob = kms.encrypt(keys["sym"], b"move me", encryption_context=CONTEXT).ciphertext_blob
    out = kms.re_encrypt(blob, rsa, source_encryption_context=CONTEXT, destination_encryption_algorithm=algorithm)
    assert (out.source_key_id, out.key_id) == (arn(kms, keys["sym"]), arn(kms, rsa))
    assert (out.source_encryption_algorithm, out.destination_encryption_algorithm) == ("SYMMETRIC_DEFAULT",
                                                                                       algorithm)
    assert len(out.ciphertext_blob) == 256  # plain RSAES-OAEP under the public key, no keyledger header
    back = kms.decrypt(out.ciphertext_blob, key_id=rsa, encryption_algorithm=algorithm)
    assert back.plaintext == b"move me" and back.encryption_algorithm == algorithm
    with pytest.raises(InvalidCiphertextException):  # the other OAEP hash does not open it
        other = "RSAES_OAEP_SHA_1" if algorithm == "RSAES_OAEP_SHA_256" else "RSAES_OAEP_SHA_256"
        kms.decrypt(out.ciphertext_blob, key_id=rsa, encryption_algorithm=other)
    record = last_reencrypted(kms).event
    assert record == ev.ReEncrypted(keys["sym"], 1, CONTEXT, hashlib.sha256(blob).digest(), rsa, 1, {},
                                    hashlib.sha256(out.ciphertext_blob).digest(), "SYMMETRIC_DEFAULT", algorithm)


@pytest.mark.parametrize("algorithm", sorted(OAEP))
def test_rsa_made_offline_to_symmetric(kms: keyledger.KeyLedger, keys: dict[str, str], algorithm: str) -> None:
    rsa = keys["RSA_4096"]
    public = serialization.load_der_public_key(kms.get_public_key(rsa).public_key)
    offline = public.encrypt(b"sealed outside", oaep(algorithm))
    out = kms.re_encrypt(offline, keys["sym"], source_key_id=rsa, source_encryption_algorithm=algorithm,
                         destination_encryption_context=CONTEXT)
    assert (out.source_key_id, out.key_id) == (arn(kms, rsa), arn(kms, keys["sym"]))
    assert (out.source_encryption_algorithm, out.destination_encryption_algorithm) == (algorithm,
                                                                                       "SYMMETRIC_DEFAULT")
    assert out.source_key_material_id is not None and out.destination_key_material_id is not None
    assert kms.decrypt(out.ciphertext_blob, encryption_context=CONTEXT).plaintext == b"sealed outside"
    record = last_reencrypted(kms).event
    assert (record.source_key_id, record.source_encryption_context, record.source_encryption_algorithm) == \
        (rsa, {}, algorithm)
    assert record.source_ciphertext_digest == hashlib.sha256(offline).digest()
    assert (record.key_id, record.encryption_context, record.destination_encryption_algorithm) == \
        (keys["sym"], CONTEXT, "SYMMETRIC_DEFAULT")


def test_rsa_to_rsa_and_aliases(kms: keyledger.KeyLedger, keys: dict[str, str]) -> None:
    kms.create_alias("alias/reencrypt-small", keys["RSA_2048"])
    blob = kms.encrypt(keys["RSA_4096"], b"k" * 100, encryption_algorithm="RSAES_OAEP_SHA_1").ciphertext_blob
    out = kms.re_encrypt(blob, "alias/reencrypt-small", source_key_id=keys["RSA_4096"],
                         source_encryption_algorithm="RSAES_OAEP_SHA_1",
                         destination_encryption_algorithm="RSAES_OAEP_SHA_256")
    assert out.key_id == arn(kms, keys["RSA_2048"]) and len(out.ciphertext_blob) == 256
    assert kms.decrypt(out.ciphertext_blob, key_id=keys["RSA_2048"],
                       encryption_algorithm="RSAES_OAEP_SHA_256").plaintext == b"k" * 100
    # and back, naming the source by its alias
    again = kms.re_encrypt(out.ciphertext_blob, keys["RSA_4096"], source_key_id="alias/reencrypt-small",
                           source_encryption_algorithm="RSAES_OAEP_SHA_256",
                           destination_encryption_algorithm="RSAES_OAEP_SHA_256")
    assert kms.decrypt(again.ciphertext_blob, key_id=keys["RSA_4096"],
                       encryption_algorithm="RSAES_OAEP_SHA_256").plaintext == b"k" * 100
    record = last_reencrypted(kms).event
    assert (record.source_encryption_algorithm, record.destination_encryption_algorithm) == \
        ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_256")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plaintext=st.binary(min_size=1, max_size=190), context=st.dictionaries(
    st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3))
def test_round_trip_through_rsa_keeps_the_plaintext(kms: keyledger.KeyLedger, keys: dict[str, str],
                                                    plaintext: bytes, context: dict[str, str]) -> None:
    """Any plaintext within the destination's limit survives sym -> RSA -> sym."""
    blob = kms.encrypt(keys["sym"], plaintext, encryption_context=context).ciphertext_blob
    to_rsa = kms.re_encrypt(blob, keys["RSA_2048"], source_encryption_context=context,
                            destination_encryption_algorithm="RSAES_OAEP_SHA_256").ciphertext_blob
    back = kms.re_encrypt(to_rsa, keys["sym2"], source_key_id=keys["RSA_2048"],
                          source_encryption_algorithm="RSAES_OAEP_SHA_256",
                          destination_encryption_context=context).ciphertext_blob
    assert kms.decrypt(back, encryption_context=context).plaintext == plaintext


def test_refusals(kms: keyledger.KeyLedger, keys: dict[str, str]) -> None:
    rsa, big, sym, signer = keys["RSA_2048"], keys["RSA_4096"], keys["sym"], keys["signer"]
    rsa_blob = kms.encrypt(rsa, b"x", encryption_algorithm="RSAES_OAEP_SHA_256").ciphertext_blob
    sym_blob = kms.encrypt(sym, b"y" * 300).ciphertext_blob  # too large for RSA_2048 / OAEP-SHA-256 (190)
    small_blob = kms.encrypt(sym, b"z").ciphertext_blob
    cases = [
        # an RSA ciphertext names no key: SourceKeyId is required (the same answer as Decrypt's)
        (lambda: kms.re_encrypt(rsa_blob, sym, source_encryption_algorithm="RSAES_OAEP_SHA_256"),
         InvalidCiphertextException, ""),
        # the wrong algorithm, the wrong RSA key, or SYMMETRIC_DEFAULT: it does not open
        (lambda: kms.re_encrypt(rsa_blob, sym, source_key_id=rsa, source_encryption_algorithm="RSAES_OAEP_SHA_1"),
         InvalidCiphertextException, ""),
        (lambda: kms.re_encrypt(rsa_blob, sym, source_key_id=big, source_encryption_algorithm="RSAES_OAEP_SHA_256"),
         InvalidCiphertextException, ""),
        (lambda: kms.re_encrypt(rsa_blob, sym, source_key_id=rsa), InvalidCiphertextException, ""),
        # no encryption context with an asymmetric key, on either side
        (lambda: kms.re_encrypt(rsa_blob, sym, source_key_id=rsa, source_encryption_algorithm="RSAES_OAEP_SHA_256",
                                source_encryption_context=CONTEXT),
         ValidationException, "EncryptionContext is not supported with asymmetric KMS keys."),
        (lambda: kms.re_encrypt(small_blob, rsa, destination_encryption_algorithm="RSAES_OAEP_SHA_1",
                                destination_encryption_context=CONTEXT),
         ValidationException, "EncryptionContext is not supported with asymmetric KMS keys."),
        # the destination's OAEP limit
        (lambda: kms.re_encrypt(sym_blob, rsa, destination_encryption_algorithm="RSAES_OAEP_SHA_256"),
         ValidationException,
         "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes."),
        # algorithms that do not fit the key
        (lambda: kms.re_encrypt(small_blob, rsa), InvalidKeyUsageException,
         "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048."),
        (lambda: kms.re_encrypt(small_blob, keys["sym2"], destination_encryption_algorithm="RSAES_OAEP_SHA_1"),
         InvalidKeyUsageException, "Algorithm RSAES_OAEP_SHA_1 is incompatible with key spec SYMMETRIC_DEFAULT."),
        (lambda: kms.re_encrypt(small_blob, keys["sym2"], source_key_id=sym,
                                source_encryption_algorithm="RSAES_OAEP_SHA_256"),
         InvalidKeyUsageException, "Algorithm RSAES_OAEP_SHA_256 is incompatible with key spec SYMMETRIC_DEFAULT."),
        (lambda: kms.re_encrypt(small_blob, signer, destination_encryption_algorithm="RSAES_OAEP_SHA_256"),
         InvalidKeyUsageException, f"{arn(kms, signer)} key usage is SIGN_VERIFY which is not valid for ReEncrypt."),
        (lambda: kms.re_encrypt(small_blob, sym, source_encryption_algorithm="RSA"), ValidationException,
         ("1 validation error detected: Value 'RSA' at 'sourceEncryptionAlgorithm' failed to satisfy constraint: "
         "Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]")),
        (lambda: kms.re_encrypt(small_blob, sym, destination_encryption_algorithm="RSA"), ValidationException,
         ("1 validation error detected: Value 'RSA' at 'destinationEncryptionAlgorithm' failed to satisfy "
         "constraint: Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, "
         "RSAES_OAEP_SHA_256, SM2PKE]")),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as info:
            call()
        assert info.value.message == message
        denied = last_denied(kms)  # every refusal is a record, with no plaintext in it
        assert (denied.operation, denied.error_code) == ("ReEncrypt", error.__name__)
    log = b"".join(ev.canonical(r) for r in kms.store.records())
    assert b"y" * 300 not in log


def test_record_replay_cloudtrail_and_forensics(tmp_path: Path) -> None:
    kms = keyledger.open(tmp_path, create=True, durability="relaxed")
    try:
        rsa = kms.create_key(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT").key_metadata.key_id
        sym = kms.create_key().key_metadata.key_id
        blob = kms.encrypt(sym, b"secret-plaintext", encryption_context=CONTEXT).ciphertext_blob
        moved = kms.re_encrypt(blob, rsa, source_encryption_context=CONTEXT,
                               destination_encryption_algorithm="RSAES_OAEP_SHA_1").ciphertext_blob
        back = kms.re_encrypt(moved, sym, source_key_id=rsa,
                              source_encryption_algorithm="RSAES_OAEP_SHA_1").ciphertext_blob
        records = [r for r in kms.store.records() if isinstance(r.event, ev.ReEncrypted)]
        trail = [cloudtrail.request_parameters(r.event, "us-east-1", "111122223333") for r in records]
        assert (trail[0]["sourceEncryptionAlgorithm"], trail[0]["destinationEncryptionAlgorithm"]) == \
            ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1")
        assert (trail[1]["sourceEncryptionAlgorithm"], trail[1]["destinationEncryptionAlgorithm"]) == \
            ("RSAES_OAEP_SHA_1", "SYMMETRIC_DEFAULT")
        assert "encryptionAlgorithm" not in trail[0]
        log = b"".join(ev.canonical(r) for r in kms.store.records())
        assert b"secret-plaintext" not in log
        root = Secret((Path(kms.store.path) / "root.key").read_bytes())
        with kms.store.snapshot() as snap:
            assert replay.check(snap).ok
            report = forensics.prove_decryptable(snap, root, corpus=[(moved, {}), (back, {})])
        assert (report.corpus_total, report.corpus_opened, report.corpus_failures) == (2, 2, [])
    finally:
        kms.close()


def test_symmetric_records_encode_as_before() -> None:
    """The algorithms are omitted when SYMMETRIC_DEFAULT, so a record written
    before they existed decodes to the same event and re-encodes to the same
    bytes (its hash still verifies)."""
    import msgspec

    class OldReEncrypted(msgspec.Struct, frozen=True, tag="ReEncrypted", tag_field="type"):
        source_key_id: str
        source_key_version: int
        source_encryption_context: dict[str, str]
        source_ciphertext_digest: bytes
        key_id: str
        key_version: int
        encryption_context: dict[str, str]
        ciphertext_digest: bytes

    fields = ("a", 1, {"k": "v"}, b"\x01" * 32, "b", 2, {}, b"\x02" * 32)
    old = msgspec.msgpack.encode(OldReEncrypted(*fields))
    new = ev.ReEncrypted(*fields)
    assert msgspec.msgpack.encode(new) == old
    assert msgspec.msgpack.decode(old, type=ev.ReEncrypted) == new


def test_iam_conditions_see_each_side_algorithm(tmp_path: Path) -> None:
    kms = keyledger.open(tmp_path, create=True, durability="relaxed")
    try:
        rsa = kms.create_key(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT").key_metadata.key_id
        sym = kms.create_key().key_metadata.key_id
        user = kms.create_user("mover").arn
        kms.put_principal_policy(user, "p", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kms:ReEncryptFrom", "Resource": "*"},
            {"Effect": "Allow", "Action": "kms:ReEncryptTo", "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}}}]}))
        mover = kms.as_caller(user)
        blob = kms.encrypt(sym, b"m").ciphertext_blob
        out = mover.re_encrypt(blob, rsa, destination_encryption_algorithm="RSAES_OAEP_SHA_256")
        with pytest.raises(AccessDeniedException, match="kms:ReEncryptTo"):
            mover.re_encrypt(blob, rsa, destination_encryption_algorithm="RSAES_OAEP_SHA_1")
        with pytest.raises(AccessDeniedException, match="kms:ReEncryptTo"):
            mover.re_encrypt(out.ciphertext_blob, sym, source_key_id=rsa,
                             source_encryption_algorithm="RSAES_OAEP_SHA_256")  # SYMMETRIC_DEFAULT to sym
        # and ReEncryptFrom is checked against the RSA source
        kms.put_principal_policy(user, "p", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kms:ReEncryptTo", "Resource": "*"}]}))
        with pytest.raises(AccessDeniedException, match="kms:ReEncryptFrom"):
            mover.re_encrypt(out.ciphertext_blob, sym, source_key_id=rsa,
                             source_encryption_algorithm="RSAES_OAEP_SHA_256")
    finally:
        kms.close()
