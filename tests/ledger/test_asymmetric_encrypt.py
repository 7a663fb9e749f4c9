"""RSA Encrypt/Decrypt: data encrypted offline with the public key from
GetPublicKey decrypts in keyledger, keyledger's ciphertext is plain
RSAES-OAEP, the plaintext limits are AWS's per spec and algorithm, and an
encryption context is refused as AWS refuses it for asymmetric keys."""

from __future__ import annotations

import keyledger
import pytest
from asymkit import unwrap_material
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from keyledger import events as ev
from keyledger.errors import (
    DryRunOperationException,
    InvalidCiphertextException,
    ValidationException,
)

LIMITS = {("RSA_2048", "RSAES_OAEP_SHA_1"): 214, ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
          ("RSA_3072", "RSAES_OAEP_SHA_1"): 342, ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
          ("RSA_4096", "RSAES_OAEP_SHA_1"): 470, ("RSA_4096", "RSAES_OAEP_SHA_256"): 446}
OAEP = {"RSAES_OAEP_SHA_1": hashes.SHA1, "RSAES_OAEP_SHA_256": hashes.SHA256}


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path_factory.mktemp("rsa"), create=True, durability="relaxed")
    yield ledger
    ledger.close()


@pytest.fixture(scope="module")
def keys(kms: keyledger.KeyLedger) -> dict[str, str]:
    return {spec: kms.create_key(key_spec=spec, key_usage="ENCRYPT_DECRYPT").key_metadata.key_id
            for spec in ("RSA_2048", "RSA_3072", "RSA_4096")}


def oaep(algorithm: str) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(OAEP[algorithm]()), algorithm=OAEP[algorithm](), label=None)


@pytest.mark.parametrize("spec, algorithm", sorted(LIMITS))
def test_offline_encryption_decrypts_in_keyledger(kms: keyledger.KeyLedger, keys: dict[str, str], spec: str,
                                                  algorithm: str) -> None:
    key = keys[spec]
    public = kms.get_public_key(key)
    assert public.encryption_algorithms == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    limit = LIMITS[(spec, algorithm)]
    plaintext = bytes(range(256))[:limit] if limit <= 256 else (bytes(range(256)) * 2)[:limit]
    offline = serialization.load_der_public_key(public.public_key).encrypt(plaintext, oaep(algorithm))
    back = kms.decrypt(offline, key_id=key, encryption_algorithm=algorithm)
    assert back.plaintext == plaintext and back.encryption_algorithm == algorithm and back.key_id.endswith(key)
    mine = kms.encrypt(key, plaintext, encryption_algorithm=algorithm)
    assert mine.encryption_algorithm == algorithm and len(mine.ciphertext_blob) == int(spec[4:]) // 8
    private = serialization.load_der_private_key(unwrap_material(kms, key), None)  # the test-only hook
    assert private.decrypt(mine.ciphertext_blob, oaep(algorithm)) == plaintext  # plain RSAES-OAEP
    with pytest.raises(ValidationException) as info:
        kms.encrypt(key, plaintext + b"!", encryption_algorithm=algorithm)
    assert info.value.message == (f"Algorithm {algorithm} and key spec {spec} cannot encrypt data larger "
                                  f"than {limit} bytes.")


def test_failures_to_open_are_all_the_same(kms: keyledger.KeyLedger, keys: dict[str, str]) -> None:
    key = keys["RSA_2048"]
    blob = kms.encrypt(key, b"secret", encryption_algorithm="RSAES_OAEP_SHA_256").ciphertext_blob
    tampered = bytes([blob[0] ^ 1]) + blob[1:]
    for call in (lambda: kms.decrypt(tampered, key_id=key, encryption_algorithm="RSAES_OAEP_SHA_256"),
                 lambda: kms.decrypt(blob, key_id=key, encryption_algorithm="RSAES_OAEP_SHA_1"),
                 lambda: kms.decrypt(blob, encryption_algorithm="RSAES_OAEP_SHA_256"),  # no KeyId
                 lambda: kms.decrypt(blob, key_id=key)):  # SYMMETRIC_DEFAULT
        with pytest.raises(InvalidCiphertextException) as info:
            call()
        assert info.value.message == ""


def test_no_encryption_context_and_dry_run(kms: keyledger.KeyLedger, keys: dict[str, str]) -> None:
    key = keys["RSA_3072"]
    with pytest.raises(ValidationException, match="EncryptionContext is not supported"):
        kms.encrypt(key, b"x", encryption_algorithm="RSAES_OAEP_SHA_1", encryption_context={"a": "b"})
    blob = kms.encrypt(key, b"x", encryption_algorithm="RSAES_OAEP_SHA_1").ciphertext_blob
    with pytest.raises(DryRunOperationException):
        kms.decrypt(blob, key_id=key, encryption_algorithm="RSAES_OAEP_SHA_1", dry_run=True)
    with pytest.raises(DryRunOperationException):
        kms.encrypt(key, b"x", encryption_algorithm="RSAES_OAEP_SHA_1", dry_run=True)
    records = [r.event for r in kms.store.records() if isinstance(r.event, (ev.Encrypted, ev.Decrypted))
               and r.event.key_id == key]
    assert records[-1] == ev.Encrypted(key, 1, {}, records[-1].ciphertext_digest, "RSAES_OAEP_SHA_1")
    assert {e.encryption_algorithm for e in records} <= {"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}
