"""ECC_NIST_EDWARDS25519 keys: ED25519_SHA_512 (pure Ed25519, RFC 8032, RAW
messages as AWS requires) signs and verifies, and its signatures verify
outside keyledger with `cryptography` and `openssl` from GetPublicKey's key;
ED25519_PH_SHA_512 (Ed25519ph, DIGEST only) is listed as AWS lists it but
refused with the reason (the installed cryptography has no Ed25519ph); data
key pairs; the log keeps digests only and the files no private key."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import keyledger
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st
from keyledger import events as ev
from keyledger.errors import (
    InvalidKeyUsageException,
    KMSInvalidSignatureException,
    UnsupportedOperationException,
    ValidationException,
)

SPEC = "ECC_NIST_EDWARDS25519"


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path_factory.mktemp("ed25519"), create=True, durability="relaxed")
    yield ledger
    ledger.close()


@pytest.fixture(scope="module")
def key(kms: keyledger.KeyLedger) -> str:
    return kms.create_key(key_spec=SPEC, key_usage="SIGN_VERIFY").key_metadata.key_id


def test_described_as_aws_describes_it(kms: keyledger.KeyLedger, key: str) -> None:
    meta = kms.describe_key(key).key_metadata
    assert (meta.key_spec, meta.key_usage) == (SPEC, "SIGN_VERIFY")
    assert meta.signing_algorithms == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
    public = kms.get_public_key(key)
    assert public.signing_algorithms == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
    assert isinstance(serialization.load_der_public_key(public.public_key), ed25519.Ed25519PublicKey)
    with pytest.raises(ValidationException, match="KeyUsage ENCRYPT_DECRYPT is not compatible"):
        kms.create_key(key_spec=SPEC, key_usage="ENCRYPT_DECRYPT")


def test_signatures_verify_outside_keyledger(kms: keyledger.KeyLedger, key: str, tmp_path: Path) -> None:
    message = b"release 1.2.3"
    out = kms.sign(key, message, "ED25519_SHA_512")
    assert len(out.signature) == 64 and out.signing_algorithm == "ED25519_SHA_512"
    public_der = kms.get_public_key(key).public_key
    serialization.load_der_public_key(public_der).verify(out.signature, message)  # raises if not
    assert kms.verify(key, message, out.signature, "ED25519_SHA_512").signature_valid
    (tmp_path / "pub.der").write_bytes(public_der)
    (tmp_path / "msg.bin").write_bytes(message)
    (tmp_path / "sig.bin").write_bytes(out.signature)
    done = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey",
                           str(tmp_path / "pub.der"), "-rawin", "-in", str(tmp_path / "msg.bin"),
                           "-sigfile", str(tmp_path / "sig.bin")], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done.stderr
    # Ed25519 is deterministic: the same message, the same signature
    assert kms.sign(key, message, "ED25519_SHA_512").signature == out.signature


def test_message_types_and_ed25519ph(kms: keyledger.KeyLedger, key: str) -> None:
    digest = hashlib.sha512(b"m").digest()
    with pytest.raises(ValidationException, match="Message type DIGEST is incompatible with signing algorithm "
                                                  "ED25519_SHA_512"):
        kms.sign(key, digest, "ED25519_SHA_512", message_type="DIGEST")
    with pytest.raises(ValidationException, match="Message type RAW is incompatible with signing algorithm "
                                                  "ED25519_PH_SHA_512"):
        kms.sign(key, b"m", "ED25519_PH_SHA_512")
    before = kms.store.head().seq
    with pytest.raises(UnsupportedOperationException, match="Ed25519ph"):
        kms.sign(key, digest, "ED25519_PH_SHA_512", message_type="DIGEST")
    with pytest.raises(UnsupportedOperationException, match="Ed25519ph"):
        kms.verify(key, digest, b"\0" * 64, "ED25519_PH_SHA_512", message_type="DIGEST")
    refused = [r.event for r in kms.store.records(before)]
    assert [e.error_code for e in refused] == ["UnsupportedOperationException"] * 2
    with pytest.raises(InvalidKeyUsageException):
        kms.sign(key, b"m", "ECDSA_SHA_256")
    assert len(kms.sign(key, b"x" * 4096, "ED25519_SHA_512").signature) == 64
    with pytest.raises(ValidationException):
        kms.sign(key, b"x" * 4097, "ED25519_SHA_512")


@settings(max_examples=40, deadline=None)
@given(message=st.binary(min_size=1, max_size=64), flip=st.integers(0, 63), which=st.sampled_from(["m", "s"]))
def test_verify_rejects_any_change(kms: keyledger.KeyLedger, key: str, message: bytes, flip: int,
                                   which: str) -> None:
    signature = kms.sign(key, message, "ED25519_SHA_512").signature
    if which == "m":
        message = bytes(b ^ 1 if i == flip % len(message) else b for i, b in enumerate(message))
    else:
        signature = bytes(b ^ 1 if i == flip else b for i, b in enumerate(signature))
    with pytest.raises(KMSInvalidSignatureException):
        kms.verify(key, message, signature, "ED25519_SHA_512")


def test_data_key_pairs(kms: keyledger.KeyLedger) -> None:
    wrapping = kms.create_key().key_metadata.key_id
    out = kms.generate_data_key_pair(wrapping, SPEC, encryption_context={"use": "ssh"})
    private = serialization.load_der_private_key(out.private_key_plaintext, None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    assert private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo) == out.public_key
    opened = kms.decrypt(out.private_key_ciphertext_blob, encryption_context={"use": "ssh"}).plaintext
    assert opened == out.private_key_plaintext
    assert kms.generate_data_key_pair_without_plaintext(wrapping, SPEC).key_pair_spec == SPEC


def test_the_log_and_the_files_keep_no_private_key(tmp_path: Path) -> None:
    seeds: list[bytes] = []

    def rng(n: int) -> bytes:
        out = hashlib.sha256(len(seeds).to_bytes(4, "big")).digest()[:n].ljust(n, b"\1")
        seeds.append(out)
        return out

    with keyledger.open(tmp_path / "l", create=True, rng=rng) as kms:
        key = kms.create_key(key_spec=SPEC, key_usage="SIGN_VERIFY").key_metadata.key_id
        kms.sign(key, b"m", "ED25519_SHA_512")
        signed = [r.event for r in kms.store.records() if isinstance(r.event, ev.Signed)]
        assert signed and signed[0].message_digest == hashlib.sha256(b"m").digest()
    data = (tmp_path / "l" / "data.mdb").read_bytes()
    assert seeds and not any(len(seed) == 32 and seed in data for seed in seeds)
