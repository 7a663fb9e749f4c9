"""The hazmat layer: the only module that touches `cryptography.hazmat`.

It owns the ciphertext format (DESIGN.md section 6), the canonical
encryption-context encoding, key wrapping (root key -> KEK -> version
material) and key check values. Everything here is a pure function of its
inputs: randomness (salts, nonces, fresh material) is passed in by the
caller, so known-answer vectors can pin every byte.

Ciphertext layout (all integers big-endian):

    magic "KL" (2) | format 0x01 (1) | key id UUID (16) | key version u32 (4)
    | salt (16) | nonce (12) | AES-256-GCM ciphertext || tag (16)

The message key is HKDF-SHA256(ikm=version material, salt=salt,
info="keyledger/v1/message-key" || key id || version), so every message has
its own AES key and no version nears GCM's random-nonce limit. The AAD is the
header followed by the canonical encryption context. Every way a blob can
fail to open raises the same `InvalidCiphertextException` with no reason.
"""

from __future__ import annotations

import functools
import hmac
import struct
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyledger.errors import InvalidCiphertextException, LedgerError
from keyledger.secret import Secret

MAGIC = b"KL"
FORMAT = 1
SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
MATERIAL_BYTES = 32
_HEADER = struct.Struct(">2sB16sI16s12s")
HEADER_BYTES = _HEADER.size  # 51
MIN_CIPHERTEXT_BYTES = HEADER_BYTES + TAG_BYTES
MAX_CONTEXT_BYTES = 8192

_MESSAGE_INFO = b"keyledger/v1/message-key"
_MATERIAL_AAD = b"keyledger/v1/material"
_KEK_AAD = b"keyledger/v1/kek"
_KCV_LABEL = b"keyledger/v1/kcv"
_ROOT_KCV_LABEL = b"keyledger/v1/root-check"
_OPAQUE = "The ciphertext is invalid."


# -- encryption context -----------------------------------------------------

def canonical_context(context: dict[str, str]) -> bytes:
    """u16 count, then for each pair sorted by UTF-8 key bytes:
    u16 len(key) || key || u16 len(value) || value. Length prefixes keep
    {"a": "bc"} and {"ab": "c"} apart; sorting makes order irrelevant."""
    pairs = sorted((k.encode(), v.encode()) for k, v in context.items())
    out = bytearray(struct.pack(">H", len(pairs)))
    for k, v in pairs:
        out += struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v
    return bytes(out)


# -- message keys -----------------------------------------------------------

def _hkdf_sha256_32(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    # RFC 5869 with L = 32: one expand block. Checked against cryptography's
    # HKDF in tests/ledger/test_crypto.py.
    prk = hmac.digest(salt, ikm, "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")


def _message_key(material: Secret, key_uuid: bytes, version: int, salt: bytes) -> bytes:
    return _hkdf_sha256_32(material.reveal(), salt, _MESSAGE_INFO + key_uuid + struct.pack(">I", version))


@functools.lru_cache(maxsize=65536)
def key_uuid_bytes(key_id: str) -> bytes:
    return uuid.UUID(key_id).bytes


def seal(material: Secret, key_id: str, version: int, plaintext: bytes,
         context: bytes, *, salt: bytes, nonce: bytes) -> bytes:
    """Encrypt under one key version. `context` is canonical_context(...)."""
    if len(salt) != SALT_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError("salt must be 16 bytes and nonce 12 bytes")
    key_uuid = key_uuid_bytes(key_id)
    header = _HEADER.pack(MAGIC, FORMAT, key_uuid, version, salt, nonce)
    body = AESGCM(_message_key(material, key_uuid, version, salt)).encrypt(nonce, plaintext, header + context)
    return header + body


def parse_header(blob: bytes) -> tuple[str, int]:
    """(key id, key version) named by a ciphertext, or InvalidCiphertextException."""
    if not isinstance(blob, (bytes, bytearray)) or len(blob) < MIN_CIPHERTEXT_BYTES:
        raise InvalidCiphertextException(_OPAQUE)
    magic, fmt, key_uuid, version, _salt, _nonce = _HEADER.unpack_from(blob)
    if magic != MAGIC or fmt != FORMAT or version == 0:
        raise InvalidCiphertextException(_OPAQUE)
    return str(uuid.UUID(bytes=key_uuid)), version


def open_(material: Secret, blob: bytes, context: bytes) -> bytes:
    """Decrypt a blob whose header parse_header() accepted."""
    if len(blob) < MIN_CIPHERTEXT_BYTES:
        raise InvalidCiphertextException(_OPAQUE)
    _magic, _fmt, key_uuid, version, salt, nonce = _HEADER.unpack_from(blob)
    try:
        return AESGCM(_message_key(material, key_uuid, version, salt)).decrypt(
            nonce, bytes(blob[HEADER_BYTES:]), bytes(blob[:HEADER_BYTES]) + context)
    except InvalidTag:
        raise InvalidCiphertextException(_OPAQUE) from None


# -- wrapping ---------------------------------------------------------------

def _wrap(key: Secret, plaintext: bytes, aad: bytes, nonce: bytes) -> bytes:
    return nonce + AESGCM(key.reveal()).encrypt(nonce, plaintext, aad)


def _unwrap(key: Secret, wrapped: bytes, aad: bytes, what: str) -> Secret:
    try:
        return Secret(AESGCM(key.reveal()).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad))
    except (InvalidTag, ValueError):
        raise LedgerError(f"{what} does not unwrap: wrong root key or corrupted ledger") from None


def wrap_kek(root: Secret, key_id: str, kek: Secret, *, nonce: bytes) -> bytes:
    return _wrap(root, kek.reveal(), _KEK_AAD + key_uuid_bytes(key_id), nonce)


def unwrap_kek(root: Secret, key_id: str, wrapped: bytes) -> Secret:
    return _unwrap(root, wrapped, _KEK_AAD + key_uuid_bytes(key_id), f"the KEK of key {key_id}")


def _material_aad(key_id: str, version: int) -> bytes:
    return _MATERIAL_AAD + key_uuid_bytes(key_id) + struct.pack(">I", version)


def wrap_material(kek: Secret, key_id: str, version: int, material: Secret, *, nonce: bytes) -> bytes:
    return _wrap(kek, material.reveal(), _material_aad(key_id, version), nonce)


def unwrap_material(kek: Secret, key_id: str, version: int, wrapped: bytes) -> Secret:
    return _unwrap(kek, wrapped, _material_aad(key_id, version), f"version {version} of key {key_id}")


def kcv(material: Secret) -> bytes:
    """Key check value: a 16-byte MAC of a fixed label under the material."""
    return hmac.digest(material.reveal(), _KCV_LABEL, "sha256")[:16]


def root_check(root: Secret) -> bytes:
    return hmac.digest(root.reveal(), _ROOT_KCV_LABEL, "sha256")[:16]


def kcv_matches(material: Secret, expected: bytes) -> bool:
    return hmac.compare_digest(kcv(material), expected)


# -- checkpoint signatures (Ed25519) -------------------------------------------

def ed25519_public_key(seed: Secret) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    return Ed25519PrivateKey.from_private_bytes(seed.reveal()).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


def ed25519_sign(seed: Secret, message: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    return Ed25519PrivateKey.from_private_bytes(seed.reveal()).sign(message)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False
