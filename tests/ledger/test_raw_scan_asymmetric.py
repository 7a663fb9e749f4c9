"""The raw LMDB files hold no private key material: after a workload on
RSA, EC, ML-DSA, HMAC and key-agreement keys and data key pairs, none of
the private parts (RSA d, p, q; EC scalars; ML-DSA seeds; HMAC keys), the
data key pairs' private keys, the shared secrets, the signed messages or the
RSA plaintexts appear in data.mdb or lock.mdb, not even as a 16-byte piece.
Public keys may be there (they are public). Replay agrees with the tables."""

from __future__ import annotations

import os
from pathlib import Path

import keyledger
from asymkit import unwrap_material
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from keyledger.projections import replay
from test_raw_scan import assert_absent


def private_parts(der: bytes) -> dict[str, bytes]:
    """The secret numbers of a PKCS#8 private key (not its public half)."""
    key = serialization.load_der_private_key(der, None)
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.private_numbers()
        return {name: v.to_bytes((v.bit_length() + 7) // 8, "big")
                for name, v in (("d", n.d), ("p", n.p), ("q", n.q), ("dmp1", n.dmp1), ("dmq1", n.dmq1))}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        v = key.private_numbers().private_value
        return {"scalar": v.to_bytes((key.curve.key_size + 7) // 8, "big")}
    return {"seed": key.private_bytes_raw()}  # ML-DSA: the 32-byte seed is the private key


def test_no_private_material_in_the_raw_files(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    kms = keyledger.open(home, create=True)
    secrets: dict[str, bytes] = {}
    specs = [("RSA_2048", "SIGN_VERIFY"), ("RSA_3072", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY"),
             ("ECC_SECG_P256K1", "SIGN_VERIFY"), ("ECC_NIST_P384", "KEY_AGREEMENT"), ("ML_DSA_44", "SIGN_VERIFY"),
             ("HMAC_256", "GENERATE_VERIFY_MAC"), ("HMAC_512", "GENERATE_VERIFY_MAC")]
    keys = {spec: kms.create_key(key_spec=spec, key_usage=usage).key_metadata.key_id for spec, usage in specs}
    sym = kms.create_key().key_metadata.key_id
    for spec, key in keys.items():
        material = unwrap_material(kms, key)
        if spec.startswith("HMAC"):
            secrets[f"HMAC key {spec}"] = material
        else:
            secrets.update({f"{name} of {spec}": v for name, v in private_parts(material).items()})
    for i in range(4):
        message = b"SIGNED-MESSAGE-" + os.urandom(48)
        secrets[f"message {i}"] = message
        for spec, algorithm in (("RSA_2048", "RSASSA_PSS_SHA_256"), ("ECC_NIST_P256", "ECDSA_SHA_256"),
                                ("ECC_SECG_P256K1", "ECDSA_SHA_256"), ("ML_DSA_44", "ML_DSA_SHAKE_256")):
            kms.verify(keys[spec], message, kms.sign(keys[spec], message, algorithm).signature, algorithm)
        for spec, algorithm in (("HMAC_256", "HMAC_SHA_256"), ("HMAC_512", "HMAC_SHA_512")):
            mac = kms.generate_mac(keys[spec], message, algorithm).mac
            kms.verify_mac(keys[spec], message, algorithm, mac)
            secrets[f"{spec} MAC {i}"] = mac  # a MAC of a secret message is only ever returned
        plaintext = b"RSA-PLAINTEXT-" + os.urandom(100)
        secrets[f"RSA plaintext {i}"] = plaintext
        blob = kms.encrypt(keys["RSA_3072"], plaintext, encryption_algorithm="RSAES_OAEP_SHA_256").ciphertext_blob
        assert kms.decrypt(blob, key_id=keys["RSA_3072"], encryption_algorithm="RSAES_OAEP_SHA_256").plaintext \
            == plaintext
        peer = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        secrets[f"shared secret {i}"] = kms.derive_shared_secret(keys["ECC_NIST_P384"], "ECDH", peer).shared_secret
        pair = kms.generate_data_key_pair(sym, ("RSA_2048", "ECC_NIST_P256", "ECC_NIST_P521", "RSA_4096")[i])
        secrets.update({f"{name} of data key pair {i}": v
                        for name, v in private_parts(pair.private_key_plaintext).items()})
    data_path = Path(kms.store.file_path())
    with kms.store.snapshot() as snap:
        assert replay.check(snap).ok
    kms.close()
    data, lock = data_path.read_bytes(), data_path.with_name("lock.mdb").read_bytes()
    assert len(secrets) > 40
    assert_absent(data, secrets, "data.mdb")
    assert_absent(lock, secrets, "lock.mdb")
