"""DeriveSharedSecret: the raw ECDH secret, the same one a local
`cryptography` exchange computes from GetPublicKey's public key; bad peer
keys and the Recipient parameter are refused; the secret is never logged."""

from __future__ import annotations

import keyledger
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from keyledger import events as ev
from keyledger.errors import (
    DryRunOperationException,
    UnsupportedOperationException,
    ValidationException,
)

CURVES = {"ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1, "ECC_NIST_P521": ec.SECP521R1}


def spki(private: object) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def kms(tmp_path_factory: pytest.TempPathFactory) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path_factory.mktemp("ecdh"), create=True, durability="relaxed")
    yield ledger
    ledger.close()


@pytest.mark.parametrize("spec", sorted(CURVES))
def test_secrets_match_a_local_exchange(kms: keyledger.KeyLedger, spec: str) -> None:
    key = kms.create_key(key_spec=spec, key_usage="KEY_AGREEMENT").key_metadata
    assert key.key_agreement_algorithms == ["ECDH"]
    theirs = serialization.load_der_public_key(kms.get_public_key(key.key_id).public_key)
    local = ec.generate_private_key(CURVES[spec]())
    out = kms.derive_shared_secret(key.key_id, "ECDH", spki(local))
    assert out.shared_secret == local.exchange(ec.ECDH(), theirs)
    assert (out.key_id, out.key_agreement_algorithm, out.key_origin) == (key.key_id, "ECDH", "AWS_KMS")
    assert "redacted" in repr(out) and repr(out.shared_secret) not in repr(out)
    records = [r for r in kms.store.records() if key.key_id in ev.key_ids_of(r.event)]
    derived = [r.event for r in records if isinstance(r.event, ev.SharedSecretDerived)]
    assert len(derived) == 1 and derived[0].key_agreement_algorithm == "ECDH"
    assert out.shared_secret not in b"".join(ev.canonical(r) for r in records)


def test_bad_peer_keys_and_recipients(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key(key_spec="ECC_NIST_P256", key_usage="KEY_AGREEMENT").key_metadata.key_id
    other_curve = spki(ec.generate_private_key(ec.SECP384R1()))
    not_ec = spki(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    for peer in (b"not a key", other_curve, not_ec):
        with pytest.raises(ValidationException) as info:
            kms.derive_shared_secret(key, "ECDH", peer)
        assert info.value.message == ""
    good = spki(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(UnsupportedOperationException, match="Recipient"):
        kms.derive_shared_secret(key, "ECDH", good, recipient={"AttestationDocument": b"doc"})
    with pytest.raises(ValidationException, match=r"Value 'X25519' at 'keyAgreementAlgorithm'"):
        kms.derive_shared_secret(key, "X25519", good)
    with pytest.raises(DryRunOperationException):
        kms.derive_shared_secret(key, "ECDH", good, dry_run=True)
