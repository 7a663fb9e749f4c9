"""GetKeyLastUsage: the key's last successful cryptographic use, read from
the log. Every tracked operation is named as AWS names it, refused and failed
calls are not uses, the answer agrees with a scan of the whole log over random
histories, regions track apart, and the call itself is a record."""

from __future__ import annotations

from datetime import timedelta

import keyledger
import pytest
from clockkit import Clock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyledger import events as ev
from keyledger.errors import (
    AccessDeniedException,
    DryRunOperationException,
    InvalidCiphertextException,
    KMSInvalidSignatureException,
    NotFoundException,
)
from keyledger.projections import cloudtrail
from keyledger.projections.usage import tracked_operation

CONTEXT = {"purpose": "test"}


def records(kms: keyledger.KeyLedger) -> list[ev.Record]:
    return list(kms.store.records())


def expected(kms: keyledger.KeyLedger, key_id: str) -> tuple[str, ev.Record] | None:
    """The brute-force answer: the newest record, of the whole log, that
    used the key successfully."""
    for record in reversed(records(kms)):
        name = tracked_operation(record.event, key_id)
        if name is not None and record.scope == "":
            return name, record
    return None


def assert_matches_log(kms: keyledger.KeyLedger, key_id: str) -> None:
    answer = kms.get_key_last_usage(key_id)
    want = expected(kms, key_id)
    if want is None:
        assert answer.key_last_usage is None
        return
    name, record = want
    origin = kms.store.meta()["origin"].decode()
    last = answer.key_last_usage
    assert last is not None
    assert (last.operation, last.kms_request_id) == (name, record.request_id)
    assert last.timestamp == ev.from_us(record.time)
    assert last.cloud_trail_event_id == cloudtrail.render(record, region=kms.region, account=kms.account,
                                                          origin=origin)["eventID"]


def test_a_new_key_has_no_last_use_and_tracking_starts_at_its_creation(kms, clock: Clock) -> None:
    meta = kms.create_key().key_metadata
    clock.advance(timedelta(days=3))
    out = kms.get_key_last_usage(meta.key_id)
    assert out.key_id == meta.key_id  # the key id, not the ARN
    assert out.key_last_usage is None
    assert out.key_creation_date == out.tracking_start_date == meta.creation_date


def test_each_symmetric_use_is_named_as_aws_names_it(kms, clock: Clock) -> None:
    key = kms.create_key().key_metadata.key_id
    other = kms.create_key().key_metadata.key_id
    blob = kms.encrypt(key, b"secret", encryption_context=CONTEXT).ciphertext_blob
    steps = [
        ("Encrypt", lambda: kms.encrypt(key, b"x")),
        ("Decrypt", lambda: kms.decrypt(blob, encryption_context=CONTEXT)),
        ("GenerateDataKey", lambda: kms.generate_data_key(key, key_spec="AES_256")),
        ("GenerateDataKeyWithoutPlaintext", lambda: kms.generate_data_key_without_plaintext(key, number_of_bytes=16)),
        ("ReEncrypt", lambda: kms.re_encrypt(blob, other, source_encryption_context=CONTEXT)),
    ]
    for name, call in steps:
        clock.advance(timedelta(seconds=1))
        call()
        kms.describe_key(key)  # reads after a use are not uses
        last = kms.get_key_last_usage(key).key_last_usage
        assert (last.operation, last.timestamp) == (name, clock.now)
        assert_matches_log(kms, key)
    # ReEncrypt used both keys: each tracks it
    assert kms.get_key_last_usage(other).key_last_usage.operation == "ReEncrypt"


def test_asymmetric_and_hmac_uses(kms) -> None:
    signer = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
    mac = kms.create_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC").key_metadata.key_id
    sym = kms.create_key().key_metadata.key_id
    signature = kms.sign(signer, b"m", "ECDSA_SHA_256").signature
    assert kms.get_key_last_usage(signer).key_last_usage.operation == "Sign"
    kms.verify(signer, b"m", signature, "ECDSA_SHA_256")
    assert kms.get_key_last_usage(signer).key_last_usage.operation == "Verify"
    kms.get_public_key(signer)  # not a cryptographic use in AWS's list
    assert kms.get_key_last_usage(signer).key_last_usage.operation == "Verify"
    tag = kms.generate_mac(mac, b"m", "HMAC_SHA_256").mac
    assert kms.get_key_last_usage(mac).key_last_usage.operation == "GenerateMac"
    kms.verify_mac(mac, b"m", "HMAC_SHA_256", tag)
    assert kms.get_key_last_usage(mac).key_last_usage.operation == "VerifyMac"
    kms.generate_data_key_pair_without_plaintext(sym, "ECC_NIST_P256")
    assert kms.get_key_last_usage(sym).key_last_usage.operation == "GenerateDataKeyPairWithoutPlaintext"
    kms.generate_data_key_pair(sym, "ECC_NIST_P256")
    assert kms.get_key_last_usage(sym).key_last_usage.operation == "GenerateDataKeyPair"
    kem = kms.create_key(key_spec="ML_KEM_768", key_usage="ENCAPSULATE_DECAPSULATE").key_metadata.key_id
    blob = kms.encapsulate(kem, "ML_KEM").shared_secret_ciphertext_blob
    assert kms.get_key_last_usage(kem).key_last_usage.operation == "Encapsulate"
    kms.decapsulate(kem, blob, "ML_KEM")
    assert kms.get_key_last_usage(kem).key_last_usage.operation == "Decapsulate"
    for key in (signer, mac, sym, kem):
        assert_matches_log(kms, key)


def test_refused_failed_and_dry_run_calls_are_not_uses(kms, clock: Clock) -> None:
    key = kms.create_key().key_metadata.key_id
    signer = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
    blob = kms.encrypt(key, b"x", encryption_context=CONTEXT).ciphertext_blob
    first = kms.get_key_last_usage(key).key_last_usage
    clock.advance(timedelta(minutes=1))
    with pytest.raises(InvalidCiphertextException):
        kms.decrypt(blob, encryption_context={"purpose": "other"})
    with pytest.raises(DryRunOperationException):
        kms.encrypt(key, b"x", dry_run=True)
    kms.disable_key(key)
    with pytest.raises(keyledger.KMSError):
        kms.encrypt(key, b"x")
    assert kms.get_key_last_usage(key).key_last_usage == first
    with pytest.raises(KMSInvalidSignatureException):
        kms.verify(signer, b"m", b"\x30\x06\x02\x01\x01\x02\x01\x01", "ECDSA_SHA_256")
    assert kms.get_key_last_usage(signer).key_last_usage is None


def test_key_id_or_arn_only_and_authorized(kms, tmp_path) -> None:
    key = kms.create_key().key_metadata
    kms.create_alias("alias/used", key.key_id)
    kms.encrypt(key.key_id, b"x")
    assert kms.get_key_last_usage(key.arn).key_id == key.key_id
    with pytest.raises(NotFoundException):
        kms.get_key_last_usage("alias/used")
    with pytest.raises(NotFoundException):
        kms.get_key_last_usage("1234abcd-12ab-34cd-56ef-1234567890ab")
    arn = kms.create_user("carol").arn
    carol = kms.as_caller(arn)
    with pytest.raises(AccessDeniedException, match="kms:GetKeyLastUsage"):
        carol.get_key_last_usage(key.key_id)
    log = records(kms)
    denied = [r for r in log if isinstance(r.event, ev.RequestDenied)]
    assert (denied[-1].operation, denied[-1].principal) == ("GetKeyLastUsage", arn)
    reads = [r for r in log if isinstance(r.event, ev.MetadataRead) and r.event.operation == "GetKeyLastUsage"]
    assert {r.event.key_id for r in reads} == {key.key_id}


def test_regions_track_apart(kms) -> None:
    eu = kms.in_region("eu-west-1")
    key = kms.create_key(multi_region=True).key_metadata.key_id
    kms.replicate_key(key, "eu-west-1")
    blob = kms.encrypt(key, b"x").ciphertext_blob
    assert eu.get_key_last_usage(key).key_last_usage is None
    eu.decrypt(blob)
    assert eu.get_key_last_usage(key).key_last_usage.operation == "Decrypt"
    assert kms.get_key_last_usage(key).key_last_usage.operation == "Encrypt"


def test_the_answer_survives_reopening(tmp_path) -> None:
    with keyledger.open(tmp_path / "l", create=True, durability="relaxed") as kms:
        key = kms.create_key().key_metadata.key_id
        kms.generate_data_key(key, number_of_bytes=32)
        before = kms.get_key_last_usage(key)
    with keyledger.open(tmp_path / "l") as kms:
        after = kms.get_key_last_usage(key)
        assert after.key_last_usage == before.key_last_usage
        assert_matches_log(kms, key)


OPS = st.lists(st.tuples(st.sampled_from(["encrypt", "decrypt", "describe", "gdk", "reencrypt", "rotate",
                                          "bad_decrypt", "tick", "disable", "enable"]),
                         st.integers(0, 1)), max_size=30)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_the_answer_is_the_newest_use_in_the_whole_log(tmp_path_factory, ops) -> None:
    """Over random histories with a clock that often stands still (many
    records in one microsecond), the bounded search agrees with a scan of
    the whole log, for both keys, after every step."""
    clock = Clock()
    with keyledger.open(tmp_path_factory.mktemp("h"), create=True, durability="relaxed", clock=clock) as kms:
        keys = [kms.create_key().key_metadata.key_id for _ in range(2)]
        blobs = {k: kms.encrypt(k, b"x").ciphertext_blob for k in keys}
        for op, i in ops:
            key = keys[i]
            try:
                if op == "encrypt":
                    blobs[key] = kms.encrypt(key, b"x").ciphertext_blob
                elif op == "decrypt":
                    kms.decrypt(blobs[key])
                elif op == "describe":
                    kms.describe_key(key)
                elif op == "gdk":
                    kms.generate_data_key_without_plaintext(key, number_of_bytes=16)
                elif op == "reencrypt":
                    blobs[keys[1 - i]] = kms.re_encrypt(blobs[key], keys[1 - i]).ciphertext_blob
                elif op == "rotate":
                    kms.rotate_key_on_demand(key)
                elif op == "bad_decrypt":
                    kms.decrypt(blobs[key], encryption_context={"no": "such"})
                elif op == "tick":
                    clock.advance(timedelta(microseconds=1))
                elif op == "disable":
                    kms.disable_key(key)
                else:
                    kms.enable_key(key)
            except keyledger.KMSError:
                pass  # refused (disabled key, rotation limit, wrong context): still a record, not a use
            for k in keys:
                assert_matches_log(kms, k)
