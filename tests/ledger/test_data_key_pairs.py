"""GenerateDataKeyPair(WithoutPlaintext): every pair spec AWS lists that
keyledger serves; the private key is PKCS#8 DER matching the public key and
sealed under the symmetric key with the encryption context, so keyledger's
Decrypt gives it back; the rest are refused clearly."""

from __future__ import annotations

import keyledger
import pytest
from cryptography.hazmat.primitives import serialization
from keyledger import events as ev
from keyledger.errors import (
    DryRunOperationException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    UnsupportedOperationException,
)

PAIRS = ["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1"]


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path_factory.mktemp("pairs"), create=True, durability="relaxed")
    yield ledger
    ledger.close()


@pytest.fixture(scope="module")
def key(kms: keyledger.KeyLedger) -> str:
    return kms.create_key().key_metadata.key_id


def der_public(private_der: bytes) -> bytes:
    private = serialization.load_der_private_key(private_der, None)
    return private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("spec", PAIRS)
def test_pairs_open_with_decrypt(kms: keyledger.KeyLedger, key: str, spec: str) -> None:
    context = {"purpose": "device-cert", "spec": spec}
    out = kms.generate_data_key_pair(key, spec, encryption_context=context)
    assert out.key_pair_spec == spec and out.key_id.endswith(key)
    assert der_public(out.private_key_plaintext) == out.public_key
    assert kms.decrypt(out.private_key_ciphertext_blob, encryption_context=context).plaintext \
        == out.private_key_plaintext
    with pytest.raises(InvalidCiphertextException):
        kms.decrypt(out.private_key_ciphertext_blob)
    assert "redacted" in repr(out)
    bare = kms.generate_data_key_pair_without_plaintext(key, spec, encryption_context=context)
    assert not hasattr(bare, "private_key_plaintext")
    private = kms.decrypt(bare.private_key_ciphertext_blob, encryption_context=context).plaintext
    assert der_public(private) == bare.public_key


def test_records_and_refusals(kms: keyledger.KeyLedger, key: str) -> None:
    out = kms.generate_data_key_pair(key, "ECC_NIST_P256")
    record = [r for r in kms.store.records() if isinstance(r.event, ev.DataKeyPairGenerated)][-1].event
    assert record.key_pair_spec == "ECC_NIST_P256" and record.plaintext_returned and record.key_id == key
    log = b"".join(ev.canonical(r) for r in kms.store.records())
    assert out.private_key_plaintext not in log
    for spec in ("SM2", "ML_KEM_512"):
        with pytest.raises(UnsupportedOperationException, match=spec):
            kms.generate_data_key_pair(key, spec)
    rsa = kms.create_key(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT").key_metadata
    with pytest.raises(InvalidKeyUsageException) as info:
        kms.generate_data_key_pair(rsa.key_id, "ECC_NIST_P256")
    assert info.value.message == f"{rsa.arn} key spec is RSA_2048 which is not valid for GenerateDataKeyPair."
    with pytest.raises(DryRunOperationException):
        kms.generate_data_key_pair_without_plaintext(key, "ECC_NIST_P256", dry_run=True)
    with pytest.raises(UnsupportedOperationException, match="Recipient"):
        kms.generate_data_key_pair(key, "ECC_NIST_P256", recipient={"AttestationDocument": b"x"})
