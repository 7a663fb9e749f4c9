"""Helpers for the asymmetric and HMAC key tests: the test-only hook that
unwraps a version's material with the root key (as an auditor holding the
root key could; the library exposes no such call), and an openssl check."""

from __future__ import annotations

import subprocess
from pathlib import Path

import keyledger
from keyledger import crypto
from keyledger.projections import key_row
from keyledger.secret import Secret


def unwrap_material(kms: keyledger.KeyLedger, key_id: str, version: int = 1) -> bytes:
    """The plaintext material of one key version (PKCS#8 DER for a key pair,
    the raw key for HMAC), unwrapped by hand under the ledger's root key file."""
    root = Secret((Path(kms.store.path) / "root.key").read_bytes())
    kek = crypto.unwrap_kek(root, key_id, kms.store.kek(key_id))
    info = kms.store.get("keys", key_row(key_id)).version(version)
    material = crypto.unwrap_material(kek, key_id, version, info.wrapped)
    assert crypto.kcv_matches(material, info.kcv)
    return material.reveal()


def openssl_verify(tmp: Path, public_der: bytes, message: bytes, signature: bytes, digest: str,
                   pss: bool = False) -> bool:
    """`openssl dgst -verify` with the DER public key from GetPublicKey."""
    pub, msg, sig = tmp / "pub.der", tmp / "msg.bin", tmp / "sig.bin"
    pub.write_bytes(public_der)
    msg.write_bytes(message)
    sig.write_bytes(signature)
    pem = tmp / "pub.pem"
    subprocess.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", str(pub), "-out", str(pem)],
                   check=True, capture_output=True)
    args = ["openssl", "dgst", f"-{digest}", "-verify", str(pem), "-signature", str(sig)]
    if pss:
        args[3:3] = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
    args.append(str(msg))
    done = subprocess.run(args, check=False, capture_output=True, text=True)
    return done.returncode == 0 and "Verified OK" in done.stdout
