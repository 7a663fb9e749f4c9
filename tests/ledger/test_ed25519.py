"""ECC_NIST_EDWARDS25519 keys: ED25519_SHA_512 (pure Ed25519, RFC 8032, RAW
messages as AWS requires) signs and verifies, and its signatures verify
outside keyledger with `cryptography` and `openssl` from GetPublicKey's key;
ED25519_PH_SHA_512 (Ed25519ph, DIGEST messages of 64 bytes only) reproduces
RFC 8032's test vector and agrees with a plain-integer transcription of the
RFC on any seed and digest; data key pairs; the log keeps digests only and
the files no private key."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import keyledger
import pytest
from cryptography.hazmat.primitives import serialization
from asymkit import ed25519ph_reference_sign, ed25519ph_reference_verify
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st
from keyledger import crypto
from keyledger import events as ev
from keyledger.errors import InvalidKeyUsageException, KMSInvalidSignatureException, ValidationException

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


def test_message_types(kms: keyledger.KeyLedger, key: str) -> None:
    digest = hashlib.sha512(b"m").digest()
    with pytest.raises(ValidationException, match="Message type DIGEST is incompatible with signing algorithm "
                                                  "ED25519_SHA_512"):
        kms.sign(key, digest, "ED25519_SHA_512", message_type="DIGEST")
    with pytest.raises(ValidationException, match="Message type RAW is incompatible with signing algorithm "
                                                  "ED25519_PH_SHA_512"):
        kms.sign(key, b"m", "ED25519_PH_SHA_512")
    with pytest.raises(InvalidKeyUsageException):
        kms.sign(key, b"m", "ECDSA_SHA_256")
    assert len(kms.sign(key, b"x" * 4096, "ED25519_SHA_512").signature) == 64
    with pytest.raises(ValidationException):
        kms.sign(key, b"x" * 4097, "ED25519_SHA_512")


# RFC 8032 section 7.3, the Ed25519ph vector ("abc")
RFC_SEED = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
RFC_PUBLIC = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
RFC_SIGNATURE = bytes.fromhex("98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
                              "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406")


def test_ed25519ph_reproduces_the_rfc_vector() -> None:
    digest = hashlib.sha512(b"abc").digest()
    assert crypto.ed25519ph_sign(RFC_SEED, digest) == RFC_SIGNATURE
    assert ed25519ph_reference_sign(RFC_SEED, digest) == RFC_SIGNATURE  # the transcription below is right too
    assert crypto.ed25519ph_verify(RFC_PUBLIC, digest, RFC_SIGNATURE)
    assert not crypto.ed25519ph_verify(RFC_PUBLIC, hashlib.sha512(b"abd").digest(), RFC_SIGNATURE)
    # Ed25519ph is not pure Ed25519 over the digest: dom2 is part of both hashes
    pure = ed25519.Ed25519PrivateKey.from_private_bytes(RFC_SEED).sign(digest)
    assert pure != RFC_SIGNATURE and not crypto.ed25519ph_verify(RFC_PUBLIC, digest, pure)


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), digest=st.binary(min_size=64, max_size=64),
       flip=st.integers(0, 64 * 8 - 1), which=st.sampled_from(["digest", "signature", "key"]))
def test_ed25519ph_agrees_with_the_rfc_transcription(seed: bytes, digest: bytes, flip: int, which: str) -> None:
    signature = crypto.ed25519ph_sign(seed, digest)
    assert signature == ed25519ph_reference_sign(seed, digest)
    public = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    assert crypto.ed25519ph_verify(public, digest, signature)
    assert ed25519ph_reference_verify(public, digest, signature)

    def flipped(data: bytes) -> bytes:
        i = flip % (len(data) * 8)
        return bytes(b ^ (1 << i % 8) if n == i // 8 else b for n, b in enumerate(data))
    args = {"digest": (public, flipped(digest), signature), "signature": (public, digest, flipped(signature)),
            "key": (flipped(public), digest, signature)}[which]
    assert not crypto.ed25519ph_verify(*args)
    assert not ed25519ph_reference_verify(*args)


def test_ed25519ph_through_the_ledger(kms: keyledger.KeyLedger, key: str) -> None:
    digest = hashlib.sha512(b"release 1.2.3").digest()
    out = kms.sign(key, digest, "ED25519_PH_SHA_512", message_type="DIGEST")
    assert len(out.signature) == 64 and out.signing_algorithm == "ED25519_PH_SHA_512"
    public = serialization.load_der_public_key(kms.get_public_key(key).public_key).public_bytes_raw()
    assert ed25519ph_reference_verify(public, digest, out.signature)  # checked outside the library's code
    assert kms.verify(key, digest, out.signature, "ED25519_PH_SHA_512", message_type="DIGEST").signature_valid
    assert kms.sign(key, digest, "ED25519_PH_SHA_512", message_type="DIGEST").signature == out.signature
    forged = out.signature[:32] + bytes(32)
    with pytest.raises(KMSInvalidSignatureException):
        kms.verify(key, digest, forged, "ED25519_PH_SHA_512", message_type="DIGEST")
    # the pure algorithm's signature of the same bytes is not an Ed25519ph signature
    with pytest.raises(KMSInvalidSignatureException):
        kms.verify(key, digest, kms.sign(key, digest, "ED25519_SHA_512").signature, "ED25519_PH_SHA_512",
                   message_type="DIGEST")
    for short in (b"not a sha-512 digest", hashlib.sha256(b"m").digest(), digest + b"\0"):
        with pytest.raises(ValidationException, match="Digest is invalid length for algorithm "
                                                      "ED25519_PH_SHA_512[.]$"):
            kms.sign(key, short, "ED25519_PH_SHA_512", message_type="DIGEST")
        with pytest.raises(ValidationException, match="Digest is invalid length for algorithm "
                                                      "ED25519_PH_SHA_512[.]$"):
            kms.verify(key, short, out.signature, "ED25519_PH_SHA_512", message_type="DIGEST")


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
