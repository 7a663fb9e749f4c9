"""HMAC keys: GenerateMac matches the standard library's `hmac` computed
with the same material (unwrapped by the test-only hook, never by the
library), VerifyMac accepts exactly that MAC, and the refusals are AWS's."""

from __future__ import annotations

import hashlib
import hmac

import keyledger
import pytest
from asymkit import unwrap_material
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyledger import events as ev
from keyledger.errors import (
    DryRunOperationException,
    InvalidKeyUsageException,
    KMSInvalidMacException,
    ValidationException,
)

SPECS = {"HMAC_224": ("HMAC_SHA_224", "sha224", 28), "HMAC_256": ("HMAC_SHA_256", "sha256", 32),
         "HMAC_384": ("HMAC_SHA_384", "sha384", 48), "HMAC_512": ("HMAC_SHA_512", "sha512", 64)}


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path_factory.mktemp("hmac"), create=True, durability="relaxed")
    yield ledger
    ledger.close()


@pytest.fixture(scope="module")
def keys(kms: keyledger.KeyLedger) -> dict[str, str]:
    return {spec: kms.create_key(key_spec=spec, key_usage="GENERATE_VERIFY_MAC").key_metadata.key_id
            for spec in SPECS}


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_macs_match_the_standard_library(kms: keyledger.KeyLedger, keys: dict[str, str], spec: str) -> None:
    algorithm, name, size = SPECS[spec]
    material = unwrap_material(kms, keys[spec])
    assert len(material) == size  # a key as long as the hash, as AWS generates
    for message in (b"x", b"token:alice:2031-06-01", bytes(range(256)) * 16):
        out = kms.generate_mac(keys[spec], message, algorithm)
        assert out.mac == hmac.digest(material, message, name) and out.mac_algorithm == algorithm
        assert out.key_id.endswith(keys[spec])
        assert kms.verify_mac(keys[spec], message, algorithm, out.mac).mac_valid


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.binary(min_size=1, max_size=200), flip=st.integers(min_value=0, max_value=1000),
       which=st.sampled_from(["message", "mac"]))
def test_verify_mac_rejects_any_change(kms: keyledger.KeyLedger, keys: dict[str, str], message: bytes, flip: int,
                                       which: str) -> None:
    key = keys["HMAC_256"]
    tag = kms.generate_mac(key, message, "HMAC_SHA_256").mac
    if which == "message":
        changed = bytearray(message)
        changed[flip % len(changed)] ^= 1 << (flip % 8)
        message = bytes(changed)
    else:
        changed = bytearray(tag)
        changed[flip % len(changed)] ^= 1 << (flip % 8)
        tag = bytes(changed)
    with pytest.raises(KMSInvalidMacException) as info:
        kms.verify_mac(key, message, "HMAC_SHA_256", tag)
    assert info.value.message == ""


def test_refusals(kms: keyledger.KeyLedger, keys: dict[str, str]) -> None:
    key = keys["HMAC_224"]
    with pytest.raises(InvalidKeyUsageException) as info:
        kms.generate_mac(key, b"m", "HMAC_SHA_256")
    assert info.value.message == "Algorithm HMAC_SHA_256 is incompatible with key spec HMAC_224."
    with pytest.raises(ValidationException, match="less than or equal to 4096"):
        kms.generate_mac(key, b"m" * 4097, "HMAC_SHA_224")
    with pytest.raises(ValidationException) as refused:
        kms.generate_mac(key, b"m", "HMAC_MD5")
    # in AWS's order, not the model's (as recorded against AWS)
    assert refused.value.message == (
        "1 validation error detected: Value 'HMAC_MD5' at 'macAlgorithm' failed to satisfy constraint: "
        "Member must satisfy enum value set: [HMAC_SHA_384, HMAC_SHA_256, HMAC_SHA_224, HMAC_SHA_512]")
    with pytest.raises(DryRunOperationException):
        kms.generate_mac(key, b"m", "HMAC_SHA_224", dry_run=True)
    with pytest.raises(InvalidKeyUsageException):  # not a key that encrypts
        kms.encrypt(key, b"m")


def test_records_hold_digests(kms: keyledger.KeyLedger, keys: dict[str, str]) -> None:
    key = keys["HMAC_512"]
    message = b"the message itself stays out of the log"
    tag = kms.generate_mac(key, message, "HMAC_SHA_512").mac
    kms.verify_mac(key, message, "HMAC_SHA_512", tag)
    records = [r for r in kms.store.records() if key in ev.key_ids_of(r.event)]
    made = [r.event for r in records if isinstance(r.event, ev.MacGenerated)][-1]
    checked = [r.event for r in records if isinstance(r.event, ev.MacVerified)][-1]
    assert made.message_digest == checked.message_digest == hashlib.sha256(message).digest()
    assert made.mac_digest == hashlib.sha256(tag).digest()
    blob = b"".join(ev.canonical(r) for r in records)
    assert message not in blob and tag not in blob
    assert unwrap_material(kms, key) not in blob


def test_a_recorded_enum_order_is_used_only_while_it_lists_the_models_values() -> None:
    from keyledger import constraints
    model = ["HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512"]
    assert constraints.enum_listed("MacAlgorithmSpec", model) == constraints.AWS_ENUM_ORDER["MacAlgorithmSpec"]
    grown = [*model, "HMAC_SHA3_256"]  # a value AWS adds later is never left out
    assert constraints.enum_listed("MacAlgorithmSpec", grown) == grown
    assert constraints.enum_listed("DataKeySpec", ["AES_256", "AES_128"]) == ["AES_256", "AES_128"]
