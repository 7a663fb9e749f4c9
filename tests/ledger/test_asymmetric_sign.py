"""Sign, Verify and GetPublicKey against outside implementations: every
signature verifies with `cryptography` from GetPublicKey alone and with
`openssl dgst -verify`; DIGEST messages are the hash of the RAW ones;
Verify rejects any changed message or signature (hypothesis); the log
keeps digests only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import keyledger
import pytest
from asymkit import openssl_verify
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, padding, utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyledger import events as ev
from keyledger.errors import (
    DisabledException,
    DryRunOperationException,
    KMSInvalidSignatureException,
    ValidationException,
)

HASHES = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}
SIGNERS = [("RSA_2048", a) for a in ("RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384",
                                     "RSASSA_PKCS1_V1_5_SHA_512", "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384",
                                     "RSASSA_PSS_SHA_512")] + [
    ("RSA_3072", "RSASSA_PSS_SHA_256"), ("RSA_4096", "RSASSA_PKCS1_V1_5_SHA_512"),
    ("ECC_NIST_P256", "ECDSA_SHA_256"), ("ECC_NIST_P384", "ECDSA_SHA_384"), ("ECC_NIST_P521", "ECDSA_SHA_512"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256")]
MESSAGE = b"release-1.2.3.tar.gz contents " * 40


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path_factory.mktemp("sign"), create=True, durability="relaxed")
    yield ledger
    ledger.close()


_keys: dict[str, str] = {}


def signing_key(kms: keyledger.KeyLedger, spec: str) -> str:
    if spec not in _keys:
        _keys[spec] = kms.create_key(key_spec=spec, key_usage="SIGN_VERIFY").key_metadata.key_id
    return _keys[spec]


def local_verify(public_der: bytes, algorithm: str, message: bytes, signature: bytes, prehashed: bool) -> None:
    public = serialization.load_der_public_key(public_der)
    h = HASHES[algorithm[-7:]]()
    chosen = utils.Prehashed(h) if prehashed else h
    if algorithm.startswith("ECDSA"):
        public.verify(signature, message, ec.ECDSA(chosen))
    elif "PSS" in algorithm:
        public.verify(signature, message, padding.PSS(padding.MGF1(h), padding.PSS.DIGEST_LENGTH), chosen)
    else:
        public.verify(signature, message, padding.PKCS1v15(), chosen)


@pytest.mark.parametrize("spec, algorithm", SIGNERS)
def test_signatures_verify_outside_keyledger(kms: keyledger.KeyLedger, tmp_path: Path, spec: str,
                                             algorithm: str) -> None:
    key = signing_key(kms, spec)
    public = kms.get_public_key(key)
    assert public.key_spec == spec and public.key_usage == "SIGN_VERIFY" and algorithm in public.signing_algorithms
    raw = kms.sign(key, MESSAGE, algorithm)
    assert raw.key_id.endswith(key) and raw.signing_algorithm == algorithm
    local_verify(public.public_key, algorithm, MESSAGE, raw.signature, prehashed=False)
    digest_name = "sha" + algorithm[-3:]
    assert openssl_verify(tmp_path, public.public_key, MESSAGE, raw.signature, digest_name, pss="PSS" in algorithm)
    # DIGEST: the caller hashes; the signature is over the same digest
    digest = hashlib.new(digest_name, MESSAGE).digest()
    pre = kms.sign(key, digest, algorithm, message_type="DIGEST")
    local_verify(public.public_key, algorithm, MESSAGE, pre.signature, prehashed=False)
    assert openssl_verify(tmp_path, public.public_key, MESSAGE, pre.signature, digest_name, pss="PSS" in algorithm)
    assert kms.verify(key, digest, raw.signature, algorithm, message_type="DIGEST").signature_valid
    assert kms.verify(key, MESSAGE, pre.signature, algorithm).signature_valid
    if algorithm.startswith("ECDSA"):  # DER-encoded (r, s), as AWS returns
        utils.decode_dss_signature(raw.signature)


@pytest.mark.parametrize("spec", ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"])
def test_ml_dsa(kms: keyledger.KeyLedger, spec: str) -> None:
    key = signing_key(kms, spec)
    public = serialization.load_der_public_key(kms.get_public_key(key).public_key)
    signature = kms.sign(key, MESSAGE, "ML_DSA_SHAKE_256").signature
    public.verify(signature, MESSAGE)
    mu = mldsa.MLDSAMuHasher(public)
    mu.update(MESSAGE)
    external = mu.finalize()
    mu_signature = kms.sign(key, external, "ML_DSA_SHAKE_256", message_type="EXTERNAL_MU").signature
    public.verify(mu_signature, MESSAGE)  # signing mu is signing the message
    assert kms.verify(key, MESSAGE, mu_signature, "ML_DSA_SHAKE_256").signature_valid
    with pytest.raises(ValidationException) as info:
        kms.sign(key, hashlib.sha256(MESSAGE).digest(), "ML_DSA_SHAKE_256", message_type="DIGEST")
    assert info.value.message == f"Message type DIGEST is incompatible with key spec {spec}."


@pytest.mark.parametrize("spec, algorithm, size", [("ECC_NIST_P256", "ECDSA_SHA_256", 31),
                                                   ("RSA_2048", "RSASSA_PSS_SHA_384", 32),
                                                   ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512", 65)])
def test_a_digest_of_the_wrong_length(kms: keyledger.KeyLedger, spec: str, algorithm: str, size: int) -> None:
    with pytest.raises(ValidationException) as info:
        kms.sign(signing_key(kms, spec), b"d" * size, algorithm, message_type="DIGEST")
    assert info.value.message == f"Digest is invalid length for algorithm {algorithm}."


def test_message_limits_and_external_mu_for_classic_keys(kms: keyledger.KeyLedger) -> None:
    key = signing_key(kms, "ECC_NIST_P256")
    kms.sign(key, b"m" * 4096, "ECDSA_SHA_256")
    with pytest.raises(ValidationException, match="less than or equal to 4096"):
        kms.sign(key, b"m" * 4097, "ECDSA_SHA_256")
    with pytest.raises(ValidationException) as info:
        kms.sign(key, b"m" * 64, "ECDSA_SHA_256", message_type="EXTERNAL_MU")
    assert info.value.message == "Message type EXTERNAL_MU is incompatible with key spec ECC_NIST_P256."


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.binary(min_size=1, max_size=300), flip=st.integers(min_value=0, max_value=10_000),
       which=st.sampled_from(["message", "signature"]), spec=st.sampled_from(["ECC_NIST_P256", "RSA_2048"]))
def test_verify_rejects_any_change(kms: keyledger.KeyLedger, message: bytes, flip: int, which: str,
                                   spec: str) -> None:
    key = signing_key(kms, spec)
    algorithm = "ECDSA_SHA_256" if spec.startswith("ECC") else "RSASSA_PSS_SHA_256"
    signature = kms.sign(key, message, algorithm).signature
    assert kms.verify(key, message, signature, algorithm).signature_valid
    if which == "message":
        changed = bytearray(message)
        changed[flip % len(changed)] ^= 1 << (flip % 8)
        args = (bytes(changed), signature)
    else:
        changed = bytearray(signature)
        changed[flip % len(changed)] ^= 1 << (flip % 8)
        args = (message, bytes(changed))
    with pytest.raises(KMSInvalidSignatureException) as info:
        kms.verify(key, args[0], args[1], algorithm)
    assert info.value.message == ""
    public = serialization.load_der_public_key(kms.get_public_key(key).public_key)
    with pytest.raises(InvalidSignature):  # and the outside world agrees
        if spec.startswith("ECC"):
            public.verify(args[1], args[0], ec.ECDSA(hashes.SHA256()))
        else:
            public.verify(args[1], args[0], padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


def test_the_log_keeps_digests_only(kms: keyledger.KeyLedger) -> None:
    key = signing_key(kms, "ECC_NIST_P384")
    message = b"a message that must never be in the log, not even once"
    signature = kms.sign(key, message, "ECDSA_SHA_384").signature
    kms.verify(key, message, signature, "ECDSA_SHA_384")
    with pytest.raises(KMSInvalidSignatureException):
        kms.verify(key, message + b"!", signature, "ECDSA_SHA_384")
    records = [r for r in kms.store.records() if key in ev.key_ids_of(r.event)]
    signed = [r.event for r in records if isinstance(r.event, ev.Signed)][-1]
    verified = [r.event for r in records if isinstance(r.event, ev.SignatureVerified)][-1]
    denied = [r.event for r in records if isinstance(r.event, ev.RequestDenied)][-1]
    assert signed.message_digest == verified.message_digest == hashlib.sha256(message).digest()
    assert signed.signature_digest == hashlib.sha256(signature).digest()
    assert (signed.signing_algorithm, signed.message_type, signed.key_version) == ("ECDSA_SHA_384", "RAW", 1)
    assert denied.error_code == "KMSInvalidSignatureException" and denied.key_id == key
    blob = b"".join(ev.canonical(r) for r in records)
    assert message not in blob and signature not in blob


def test_state_dry_run_and_public_key_only_permission(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
    with pytest.raises(DryRunOperationException) as info:
        kms.sign(key, b"m", "ECDSA_SHA_256", dry_run=True)
    assert info.value.message == "The request would have succeeded, but the DryRun option is set."
    assert not [r for r in kms.store.records() if isinstance(r.event, ev.Signed) and r.event.key_id == key]
    signature = kms.sign(key, b"m", "ECDSA_SHA_256").signature
    with pytest.raises(DryRunOperationException):
        kms.verify(key, b"m", signature, "ECDSA_SHA_256", dry_run=True)
    kms.disable_key(key)
    with pytest.raises(DisabledException):
        kms.sign(key, b"m", "ECDSA_SHA_256")
    with pytest.raises(DisabledException):
        kms.get_public_key(key)
