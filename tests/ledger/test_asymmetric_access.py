"""Authorization of the asymmetric and HMAC operations: grants list them,
IAM policies use their condition keys (kms:SigningAlgorithm,
kms:MessageType, kms:KeySpec, kms:KeyUsage, kms:MacAlgorithm,
kms:KeyAgreementAlgorithm, kms:DataKeyPairSpec), and every refusal is a record."""

from __future__ import annotations

import json
from pathlib import Path

import keyledger
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from keyledger import events as ev
from keyledger.errors import AccessDeniedException


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str, **conditions: dict) -> dict:
    out = {"Effect": "Allow", "Action": action, "Resource": "*"}
    if conditions:
        out["Condition"] = conditions
    return out


@pytest.fixture
def kms(tmp_path: Path) -> keyledger.KeyLedger:
    ledger = keyledger.open(tmp_path, create=True, durability="relaxed")
    yield ledger
    ledger.close()


def user(kms: keyledger.KeyLedger, name: str, *statements: dict) -> keyledger.KeyLedger:
    arn = kms.create_user(name).arn
    if statements:
        kms.put_principal_policy(arn, "p", policy(*statements))
    return kms.as_caller(arn)


def test_grants_cover_the_new_operations(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
    mac = kms.create_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC").key_metadata.key_id
    bob = user(kms, "bob")
    kms.create_grant(key, bob.caller, ["Sign", "GetPublicKey"])
    kms.create_grant(mac, bob.caller, ["GenerateMac"])
    signature = bob.sign(key, b"m", "ECDSA_SHA_256").signature
    bob.get_public_key(key)
    tag = bob.generate_mac(mac, b"m", "HMAC_SHA_256").mac
    with pytest.raises(AccessDeniedException, match="kms:Verify"):
        bob.verify(key, b"m", signature, "ECDSA_SHA_256")
    with pytest.raises(AccessDeniedException, match="kms:VerifyMac"):
        bob.verify_mac(mac, b"m", "HMAC_SHA_256", tag)
    denied = [r for r in kms.store.records() if isinstance(r.event, ev.RequestDenied)]
    assert [(r.operation, r.principal) for r in denied[-2:]] == [("Verify", bob.caller), ("VerifyMac", bob.caller)]


def test_condition_keys_of_signing(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key(key_spec="RSA_2048", key_usage="SIGN_VERIFY").key_metadata.key_id
    carol = user(kms, "carol", allow("kms:Sign", StringEquals={"kms:SigningAlgorithm": "RSASSA_PSS_SHA_256",
                                                              "kms:MessageType": "RAW"}),
                 allow("kms:GetPublicKey", StringEquals={"kms:KeySpec": "RSA_2048", "kms:KeyUsage": "SIGN_VERIFY"}))
    carol.sign(key, b"m", "RSASSA_PSS_SHA_256")
    carol.get_public_key(key)
    with pytest.raises(AccessDeniedException):
        carol.sign(key, b"m", "RSASSA_PKCS1_V1_5_SHA_256")
    with pytest.raises(AccessDeniedException):
        carol.sign(key, b"d" * 32, "RSASSA_PSS_SHA_256", message_type="DIGEST")
    other = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
    with pytest.raises(AccessDeniedException):
        carol.get_public_key(other)  # kms:KeySpec is ECC_NIST_P256 there


def test_condition_keys_of_macs_agreement_and_pairs(kms: keyledger.KeyLedger) -> None:
    mac = kms.create_key(key_spec="HMAC_384", key_usage="GENERATE_VERIFY_MAC").key_metadata.key_id
    agree = kms.create_key(key_spec="ECC_NIST_P256", key_usage="KEY_AGREEMENT").key_metadata.key_id
    sym = kms.create_key().key_metadata.key_id
    dave = user(kms, "dave", allow("kms:GenerateMac", StringEquals={"kms:MacAlgorithm": "HMAC_SHA_384"}),
                allow("kms:DeriveSharedSecret", StringEquals={"kms:KeyAgreementAlgorithm": "ECDH"}),
                allow("kms:GenerateDataKeyPair", StringEquals={"kms:DataKeyPairSpec": "ECC_NIST_P256"}))
    dave.generate_mac(mac, b"m", "HMAC_SHA_384")
    peer = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    dave.derive_shared_secret(agree, "ECDH", peer)
    dave.generate_data_key_pair(sym, "ECC_NIST_P256")
    with pytest.raises(AccessDeniedException):
        dave.generate_data_key_pair(sym, "ECC_NIST_P384")
    with pytest.raises(AccessDeniedException):
        dave.generate_data_key_pair_without_plaintext(sym, "ECC_NIST_P256")
    deny = user(kms, "erin", allow("kms:*"),
                {"Effect": "Deny", "Action": "kms:GenerateMac", "Resource": "*",
                 "Condition": {"StringEquals": {"kms:KeyUsage": "GENERATE_VERIFY_MAC"}}})
    with pytest.raises(AccessDeniedException):
        deny.generate_mac(mac, b"m", "HMAC_SHA_384")
