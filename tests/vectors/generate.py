"""Generate tests/vectors/ciphertext.json: known-answer vectors for the
ciphertext format, the canonical encryption context, key wrapping and KCVs.

This is a second implementation of DESIGN.md section 6, written from the
format's description and deliberately *not* importing `ledger`: the header
is packed with `struct`, the message key comes from `cryptography`'s HKDF
class, the body from its AESGCM, and the context encoding is spelled out
below. `tests/ledger/test_crypto.py` then checks `ledger.crypto` against the
file, so a change to either side shows up as a mismatch.

Run once (`python tests/vectors/generate.py`) and commit the output; rerun
only for a deliberate format change (which also needs a new format byte).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

OUT = Path(__file__).with_name("ciphertext.json")

# The format, as DESIGN.md section 6 and the ledger.crypto docstring state it.
MAGIC = b"KL"
FORMAT = 0x01
MESSAGE_INFO = b"keyledger/v1/message-key"
MATERIAL_AAD = b"keyledger/v1/material"
KEK_AAD = b"keyledger/v1/kek"
KCV_LABEL = b"keyledger/v1/kcv"
ROOT_CHECK_LABEL = b"keyledger/v1/root-check"


def fixed(label: str, n: int) -> bytes:
    """Deterministic test bytes: SHA-256 in counter mode over a label."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


def canonical(context: dict[str, str]) -> bytes:
    # u16 pair count; pairs sorted by the UTF-8 bytes of the key; each key and
    # value as u16 byte length || UTF-8 bytes.
    encoded = [(k.encode("utf-8"), v.encode("utf-8")) for k, v in context.items()]
    encoded.sort(key=lambda kv: kv[0])
    out = len(encoded).to_bytes(2, "big")
    for k, v in encoded:
        out += len(k).to_bytes(2, "big") + k + len(v).to_bytes(2, "big") + v
    return out


def message_key(material: bytes, key_id: str, version: int, salt: bytes) -> bytes:
    info = MESSAGE_INFO + uuid.UUID(key_id).bytes + version.to_bytes(4, "big")
    return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(material)


def header(key_id: str, version: int, salt: bytes, nonce: bytes) -> bytes:
    return struct.pack(">2sB16sI16s12s", MAGIC, FORMAT, uuid.UUID(key_id).bytes, version, salt, nonce)


def ciphertext_case(name: str, *, material: bytes, key_id: str, version: int, salt: bytes,
                    nonce: bytes, context: dict[str, str], plaintext: bytes) -> dict:
    ctx = canonical(context)
    hdr = header(key_id, version, salt, nonce)
    mkey = message_key(material, key_id, version, salt)
    body = AESGCM(mkey).encrypt(nonce, plaintext, hdr + ctx)
    return {
        "name": name,
        "material": material.hex(),
        "key_id": key_id,
        "version": version,
        "salt": salt.hex(),
        "nonce": nonce.hex(),
        "context": context,
        "plaintext": plaintext.hex(),
        "canonical_context": ctx.hex(),
        "header": hdr.hex(),
        "message_key": mkey.hex(),
        "blob": (hdr + body).hex(),
    }


def main() -> None:
    material = fixed("material", 32)
    key_a = str(uuid.UUID(bytes=fixed("key-a", 16), version=4))
    key_b = str(uuid.UUID(bytes=fixed("key-b", 16), version=4))
    salt, nonce = fixed("salt", 16), fixed("nonce", 12)
    common = dict(material=material, key_id=key_a, salt=salt, nonce=nonce)

    cases = [
        ciphertext_case("empty context, 1-byte plaintext, version 1", version=1,
                        context={}, plaintext=b"\x00", **common),
        ciphertext_case("one pair, short plaintext, version 2", version=2,
                        context={"purpose": "test"}, plaintext=b"hello, world", **common),
        # Given out of order: the canonical form sorts by key.
        ciphertext_case("several pairs given unsorted", version=3,
                        context={"zeta": "26", "alpha": "1", "mid": "", "Alpha": "cap"},
                        plaintext=b"order must not matter", **common),
        # UTF-8 byte order (= code point order) differs from UTF-16 order for
        # U+FFFF vs U+1F600, and multi-byte lengths are counted in bytes.
        ciphertext_case("unicode keys and values", version=1,
                        context={"\U0001F600": "smile", "\uffff": "last-bmp", "caf\u00e9": "cr\u00e8me",
                                 "\u65e5\u672c": "\u6771\u4eac", "z": "\u00fc"},
                        plaintext="ünïcødé plaintext ✓".encode(), **common),
        ciphertext_case("pair a=bc", version=1, context={"a": "bc"}, plaintext=b"same", **common),
        ciphertext_case("pair ab=c", version=1, context={"ab": "c"}, plaintext=b"same", **common),
        ciphertext_case("4096-byte plaintext, largest version", version=0xFFFFFFFF,
                        context={"size": "max"}, plaintext=fixed("plaintext", 4096), **common),
        ciphertext_case("another key, other salt and nonce", version=7, material=fixed("material-2", 32),
                        key_id=key_b, salt=fixed("salt-2", 16), nonce=fixed("nonce-2", 12),
                        context={"tenant": "acme", "table": "orders"}, plaintext=b"\xff" * 33),
    ]

    # Blobs every opener must refuse, before or at the header.
    good = bytes.fromhex(cases[1]["blob"])
    invalid = [
        {"name": "bad magic", "blob": (b"KM" + good[2:]).hex()},
        {"name": "unknown format byte", "blob": (good[:2] + b"\x02" + good[3:]).hex()},
        {"name": "version zero", "blob": (good[:19] + b"\x00\x00\x00\x00" + good[23:]).hex()},
        {"name": "one byte shorter than header + tag", "blob": good[:51 + 16 - 1].hex()},
        {"name": "empty", "blob": ""},
    ]

    kek = fixed("kek", 32)
    root = fixed("root", 32)
    wrap_nonce = fixed("wrap-nonce", 12)
    wrap_material = []
    for version in (1, 2, 0xFFFFFFFF):
        aad = MATERIAL_AAD + uuid.UUID(key_a).bytes + version.to_bytes(4, "big")
        wrap_material.append({
            "kek": kek.hex(), "key_id": key_a, "version": version, "material": material.hex(),
            "nonce": wrap_nonce.hex(), "aad": aad.hex(),
            "wrapped": (wrap_nonce + AESGCM(kek).encrypt(wrap_nonce, material, aad)).hex(),
        })
    wrap_kek = []
    for key_id in (key_a, key_b):
        aad = KEK_AAD + uuid.UUID(key_id).bytes
        wrap_kek.append({
            "root": root.hex(), "key_id": key_id, "kek": kek.hex(), "nonce": wrap_nonce.hex(),
            "aad": aad.hex(), "wrapped": (wrap_nonce + AESGCM(root).encrypt(wrap_nonce, kek, aad)).hex(),
        })

    kcv = [{"material": m.hex(), "kcv": hmac.new(m, KCV_LABEL, "sha256").digest()[:16].hex()}
           for m in (material, fixed("material-2", 32), bytes(32))]
    root_check = [{"root": root.hex(), "check": hmac.new(root, ROOT_CHECK_LABEL, "sha256").digest()[:16].hex()}]

    doc = {
        "description": "keyledger ciphertext format v1 known-answer vectors; generated by "
                       "tests/vectors/generate.py independently of ledger.crypto. All bytes are hex.",
        "layout": "magic 'KL' | format 0x01 | key id (16) | version u32be | salt (16) | nonce (12) | "
                  "AES-256-GCM(ciphertext || tag); AAD = header || canonical context; "
                  "message key = HKDF-SHA256(material, salt, 'keyledger/v1/message-key' || key id || version)",
        "ciphertext": cases,
        "invalid": invalid,
        "wrap_material": wrap_material,
        "wrap_kek": wrap_kek,
        "kcv": kcv,
        "root_check": root_check,
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(cases)} ciphertext cases)")


if __name__ == "__main__":
    main()
