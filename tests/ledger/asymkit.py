"""Helpers for the asymmetric and HMAC key tests: the test-only hook that
unwraps a version's material with the root key (as an auditor holding the
root key could; the library exposes no such call), an openssl check, and
Ed25519ph written out over plain integers from RFC 8032 section 5.1 (the
installed openssl, 3.0, has no Ed25519ph to check against)."""

from __future__ import annotations

import hashlib
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


# -- Ed25519ph over plain integers: RFC 8032 section 5.1, slow and not constant
# time, for checking keyledger's libsodium-based implementation only ---------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, -1, _P) % _P
_DOM2_PH = b"SigEd25519 no Ed25519 collisions" + bytes([1, 0])
Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T): x = X/Z, y = Y/Z, xy = T/Z


def _add(a: Point, b: Point) -> Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    e, h = (y1 - x1) * (y2 - x2) % _P, (y1 + x1) * (y2 + x2) % _P
    c, d = 2 * t1 * t2 * _D % _P, 2 * z1 * z2 % _P
    e, f, g, h = h - e, d - c, d + c, h + e
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _times(n: int, point: Point) -> Point:
    out: Point = (0, 1, 1, 0)
    while n:
        if n & 1:
            out = _add(out, point)
        point, n = _add(point, point), n >> 1
    return out


def _x_of(y: int, odd: int) -> int | None:
    xx = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    if (x * x - xx) % _P or (x == 0 and odd):
        return None
    return _P - x if x & 1 != odd else x


def _encode(point: Point) -> bytes:
    zi = pow(point[2], -1, _P)
    x, y = point[0] * zi % _P, point[1] * zi % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _decode(raw: bytes) -> Point | None:
    n = int.from_bytes(raw, "little")
    y, odd = n & ((1 << 255) - 1), n >> 255
    x = _x_of(y, odd) if y < _P else None
    return None if x is None else (x, y, 1, x * y % _P)


_BASE_Y = 4 * pow(5, -1, _P) % _P
_BASE: Point = (_x_of(_BASE_Y, 0) or 0, _BASE_Y, 1, (_x_of(_BASE_Y, 0) or 0) * _BASE_Y % _P)


def _h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def ed25519ph_reference_sign(seed: bytes, digest: bytes) -> bytes:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little") & ((1 << 254) - 8) | (1 << 254)
    public = _encode(_times(a, _BASE))
    r = _h(_DOM2_PH, h[32:], digest) % _L
    big_r = _encode(_times(r, _BASE))
    k = _h(_DOM2_PH, big_r, public, digest) % _L
    return big_r + ((r + k * a) % _L).to_bytes(32, "little")


def ed25519ph_reference_verify(public: bytes, digest: bytes, signature: bytes) -> bool:
    a, big_r = _decode(public), _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or big_r is None or s >= _L or len(signature) != 64:
        return False
    k = _h(_DOM2_PH, signature[:32], public, digest) % _L
    return _encode(_times(s, _BASE)) == _encode(_add(big_r, _times(k, a)))
