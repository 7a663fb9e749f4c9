"""The floor pipeline: what one audited Encrypt or Decrypt fundamentally costs.

Issue 13 measures keyledger's embedded Encrypt / Decrypt (32 B, relaxed,
1 thread) against this baseline, written lean on purpose, with nothing
keyledger adds beyond the work a request cannot avoid:

1. a per-message key by NIST SP 800-108 counter-mode KDF with HMAC-SHA256
   (one block: [i]_4 || label || 0x00 || context || [L]_4, what AWS KMS
   uses), computed from a precomputed HMAC state (`hmac.HMAC.copy()`), so
   the key schedule of the version's material is paid once;
2. AES-256-GCM with the 51-byte header (magic, format, key id, version,
   salt, nonce) and the canonical encryption context as AAD (u16 count,
   then u16-length-prefixed key and value, sorted);
3. one msgspec record of Encrypt's shape (keyledger's own `Record` with an
   `Encrypted` / `Decrypted` event, so the bytes are as long as the
   ledger's), its SHA-256 chain hash over prev_hash || body;
4. one LMDB write transaction with one `put(append=True)` of
   prev_hash || hash || body under the 8-byte big-endian seq, no sync.

One `os.urandom` call per request gives the salt, the nonce and the request
id. No validation, no authorization, no projections, no Merkle tree, no
audit indexes, no group commit: those are what keyledger adds, and the
ratio keyledger / floor says what they cost together.

Benchmarks are not the package: this module imports `lmdb` and
`cryptography` directly (tests/test_boundaries.py exempts benchmarks/).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
import uuid
from typing import Any, Self

import lmdb
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from keyledger import events as ev

MAGIC = b"KF"  # not keyledger's b"KL": a floor ciphertext is not a keyledger ciphertext
FORMAT = 2
HEADER = struct.Struct(">2sB16sI16s12s")  # the same 51 bytes as keyledger's header
LABEL = b"keyledger/floor/message-key"
_SEQ = struct.Struct(">Q")
_U16 = struct.Struct(">H")
_TAIL = struct.Struct(">I")  # key version
_ONE = (1).to_bytes(4, "big")  # counter i = 1 (one 256-bit block)
_BITS = (256).to_bytes(4, "big")  # [L]_4: the derived key's length in bits
PRINCIPAL = "arn:aws:iam::111122223333:role/app"


def canonical_context(context: dict[str, str]) -> bytes:
    """keyledger's encoding (crypto.canonical_context), written out here."""
    pairs = sorted((k.encode(), v.encode()) for k, v in context.items())
    parts = [_U16.pack(len(pairs))]
    for k, v in pairs:
        parts += (_U16.pack(len(k)), k, _U16.pack(len(v)), v)
    return b"".join(parts)


class Floor:
    """One key version, one LMDB log; `encrypt` and `decrypt` each append
    one record in one write transaction. Single-threaded."""

    def __init__(self, path: str, *, material: bytes | None = None, key_id: str | None = None,
                 version: int = 1) -> None:
        self.env = lmdb.open(path, map_size=1 << 30, sync=False, metasync=False, max_dbs=0)
        self.key_id = key_id or str(uuid.uuid4())
        self.key_uuid = uuid.UUID(self.key_id).bytes
        self.version = version
        self._prf = hmac.HMAC(material or os.urandom(32), digestmod=hashlib.sha256)
        self._fixed = LABEL + b"\x00" + self.key_uuid + _TAIL.pack(version)  # label || 0x00 || context head
        self.seq = 0
        self.prev = bytes(32)

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _message_key(self, salt: bytes) -> bytes:
        prf = self._prf.copy()
        prf.update(_ONE + self._fixed + salt + _BITS)
        return prf.digest()

    def _append(self, event: Any, operation: str, request_id: str) -> None:
        seq = self.seq
        body = ev.canonical(ev.Record(seq, time.time_ns() // 1000, request_id, PRINCIPAL, operation, event))
        digest = hashlib.sha256(self.prev + body).digest()
        with self.env.begin(write=True) as txn:
            if not txn.put(_SEQ.pack(seq), self.prev + digest + body, append=True):
                raise RuntimeError(f"out-of-order append at seq {seq}")
        self.seq, self.prev = seq + 1, digest

    def encrypt(self, plaintext: bytes, context: dict[str, str]) -> bytes:
        fresh = os.urandom(44)
        salt, nonce = fresh[:16], fresh[16:28]
        header = HEADER.pack(MAGIC, FORMAT, self.key_uuid, self.version, salt, nonce)
        blob = header + AESGCM(self._message_key(salt)).encrypt(nonce, plaintext,
                                                                 header + canonical_context(context))
        self._append(ev.Encrypted(self.key_id, self.version, context, hashlib.sha256(blob).digest()), "Encrypt",
                     fresh[28:].hex())
        return blob

    def decrypt(self, blob: bytes, context: dict[str, str]) -> bytes:
        magic, fmt, key_uuid, version, salt, nonce = HEADER.unpack_from(blob)
        if magic != MAGIC or fmt != FORMAT or key_uuid != self.key_uuid or version != self.version:
            raise ValueError("not this floor's ciphertext")
        header = blob[:HEADER.size]
        plaintext = AESGCM(self._message_key(salt)).decrypt(nonce, blob[HEADER.size:],
                                                           header + canonical_context(context))
        self._append(ev.Decrypted(self.key_id, version, context, hashlib.sha256(blob).digest()), "Decrypt",
                     os.urandom(16).hex())
        return plaintext

    def record_value_bytes(self) -> int:
        """Stored bytes of the last record (prev_hash, hash, body)."""
        with self.env.begin() as txn:
            return len(txn.get(_SEQ.pack(self.seq - 1)))
