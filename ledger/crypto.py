"""The hazmat layer: the only module that touches `cryptography.hazmat`
(and libsodium, through PyNaCl, for the one primitive cryptography lacks:
Ed25519ph).

It owns the ciphertext format (DESIGN.md section 6), the canonical
encryption-context encoding, key wrapping (root key -> KEK -> version
material), key check values, and the recipes behind the key-spec table
(`keyledger.keyspecs`): how each family's material is generated and used
to sign, verify, MAC, encrypt with RSA-OAEP, agree on ECDH secrets and
encapsulate ML-KEM secrets. Everything here is a pure function of its
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
import hashlib
import hmac
import os
import struct
import uuid
from collections.abc import Callable
from hashlib import sha256 as _sha256
from typing import Any, Protocol, cast

from cryptography.exceptions import InvalidSignature as _InvalidSignature
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes as _hashes
from cryptography.hazmat.primitives import serialization as _ser
from cryptography.hazmat.primitives.asymmetric import ec as _ec
from cryptography.hazmat.primitives.asymmetric import ed25519 as _ed25519
from cryptography.hazmat.primitives.asymmetric import padding as _padding
from cryptography.hazmat.primitives.asymmetric import rsa as _rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed as _Prehashed
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings as _sodium
from nacl.exceptions import CryptoError as _SodiumError

from keyledger import keyspecs as _ks
from keyledger.errors import InvalidCiphertextException, KeyMaterialError, LedgerError
from keyledger.errors import ValidationException as _ValidationException
from keyledger.secret import Secret

try:  # ML-DSA arrived in cryptography 47; without it ML_DSA_* keys are refused
    from cryptography.hazmat.primitives.asymmetric import mldsa as _mldsa
    _MLDSA_CLASSES: dict[int, Any] = {44: _mldsa.MLDSA44PrivateKey, 65: _mldsa.MLDSA65PrivateKey,
                                      87: _mldsa.MLDSA87PrivateKey}
except ImportError:  # pragma: no cover - depends on the installed cryptography
    _MLDSA_CLASSES = {}
try:  # ML-KEM: cryptography 47 has ML-KEM-768 and -1024 (no -512 yet); a missing class refuses its spec
    from cryptography.hazmat.primitives.asymmetric import mlkem as _mlkem
    _MLKEM_CLASSES: dict[int, Any] = {n: c for n in (512, 768, 1024)
                                      if (c := getattr(_mlkem, f"MLKEM{n}PrivateKey", None)) is not None}
except ImportError:  # pragma: no cover - depends on the installed cryptography
    _MLKEM_CLASSES = {}
MLKEM_SEED_BYTES = 64  # FIPS 203's (d, z): the whole private key in seed form

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
_ACCESS_KEY_AAD = b"keyledger/v1/access-key-secret"
_KCV_LABEL = b"keyledger/v1/kcv"
_ROOT_KCV_LABEL = b"keyledger/v1/root-check"
_OPAQUE = "The ciphertext is invalid."


# -- encryption context -----------------------------------------------------

_U16 = struct.Struct(">H").pack
_EMPTY_CONTEXT = _U16(0)
_CONTEXTS: dict[tuple[tuple[str, str], ...], bytes] = {}  # recent encodings (contexts are not secret)


def canonical_context(context: dict[str, str]) -> bytes:
    """u16 count, then for each pair sorted by UTF-8 key bytes:
    u16 len(key) || key || u16 len(value) || value. Length prefixes keep
    {"a": "bc"} and {"ab": "c"} apart; sorting makes order irrelevant.

    A request encodes its context twice (the size check, then the AAD) and
    services repeat the same few contexts, so recent encodings are kept,
    keyed by the exact (key, value) pairs in the dict's order."""
    if not context:
        return _EMPTY_CONTEXT
    items = tuple(context.items())
    found = _CONTEXTS.get(items)
    if found is None:
        pairs = sorted((k.encode(), v.encode()) for k, v in items)
        parts = [_U16(len(pairs))]
        for k, v in pairs:
            parts += (_U16(len(k)), k, _U16(len(v)), v)
        found = b"".join(parts)
        if len(_CONTEXTS) >= 4096:
            _CONTEXTS.clear()
        _CONTEXTS[items] = found
    return found


# -- message keys -----------------------------------------------------------

_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    """RFC 2104 HMAC-SHA256 on hashlib: a third cheaper than `hmac.digest`,
    whose OpenSSL 3 path looks the algorithm up on every call (the message
    key is two of these per request). Same bytes: tests/ledger/test_crypto.py
    checks it against `hmac.digest` and the derivation against
    cryptography's HKDF."""
    if len(key) > 64:
        key = _sha256(key).digest()
    padded = key.ljust(64, b"\0")
    return _sha256(padded.translate(_OPAD) + _sha256(padded.translate(_IPAD) + message).digest()).digest()


def _hkdf_sha256_32(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    # RFC 5869 with L = 32: one expand block. Checked against cryptography's
    # HKDF in tests/ledger/test_crypto.py.
    prk = _hmac_sha256(salt, ikm)
    return _hmac_sha256(prk, info + b"\x01")


def _message_key(material: Secret, key_uuid: bytes, version: int, salt: bytes) -> bytes:
    return _hkdf_sha256_32(material.reveal(), salt, _MESSAGE_INFO + key_uuid + struct.pack(">I", version))


@functools.lru_cache(maxsize=65536)
def key_uuid_bytes(key_id: str) -> bytes:
    """The 16 bytes of a key id: a UUID, or the 32 hex digits of a
    multi-Region key's `mrk-` id."""
    if key_id.startswith(MRK_PREFIX):
        raw = bytes.fromhex(key_id[len(MRK_PREFIX):])
        if len(raw) != 16:
            raise ValueError(f"not a multi-Region key id: {key_id!r}")
        return raw
    return uuid.UUID(key_id).bytes


# A multi-Region key's ciphertexts say so in the format byte's high bit
# (0x81: format 1, key id mrk- + the 16 bytes as hex); the layout and the
# message key derivation are format 1's, and neither names a region, so
# every replica of the key opens them.
MRK_PREFIX = "mrk-"
MRK_FORMAT = 0x80 | FORMAT


def seal(material: Secret, key_id: str, version: int, plaintext: bytes,
         context: bytes, *, salt: bytes, nonce: bytes) -> bytes:
    """Encrypt under one key version. `context` is canonical_context(...)."""
    if len(salt) != SALT_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError("salt must be 16 bytes and nonce 12 bytes")
    key_uuid = key_uuid_bytes(key_id)
    fmt = MRK_FORMAT if key_id.startswith(MRK_PREFIX) else FORMAT
    header = _HEADER.pack(MAGIC, fmt, key_uuid, version, salt, nonce)
    body = AESGCM(_message_key(material, key_uuid, version, salt)).encrypt(nonce, plaintext, header + context)
    return header + body


def parse_header(blob: bytes) -> tuple[str, int]:
    """(key id, key version) named by a ciphertext, or InvalidCiphertextException."""
    if not isinstance(blob, (bytes, bytearray)) or len(blob) < MIN_CIPHERTEXT_BYTES:
        raise InvalidCiphertextException(_OPAQUE)
    magic, fmt, key_uuid, version, _salt, _nonce = _HEADER.unpack_from(blob)
    if magic != MAGIC or fmt not in (FORMAT, MRK_FORMAT) or version == 0:
        raise InvalidCiphertextException(_OPAQUE)
    if fmt == MRK_FORMAT:
        return MRK_PREFIX + key_uuid.hex(), version
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


def wrap_access_secret(root: Secret, access_key_id: str, secret: Secret, *, nonce: bytes) -> bytes:
    """An IAM access key's secret (the text SigV4 signs with) wrapped under
    the root key, bound to its access key id."""
    return _wrap(root, secret.reveal(), _ACCESS_KEY_AAD + access_key_id.encode(), nonce)


def unwrap_access_secret(root: Secret, access_key_id: str, wrapped: bytes) -> Secret:
    return _unwrap(root, wrapped, _ACCESS_KEY_AAD + access_key_id.encode(),
                   f"the secret of access key {access_key_id}")


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


class StoredVersion(Protocol):
    """What a key version keeps of its material (projections' VersionInfo,
    the events' WrappedMaterial): the wrapped bytes and their KCV."""

    @property
    def wrapped(self) -> bytes: ...

    @property
    def kcv(self) -> bytes: ...


def material_for(kek: Secret, key_id: str, version: int, stored: StoredVersion) -> Secret:
    """A version's material, unwrapped under its key's KEK and checked
    against the version's KCV. The one way from a stored version to usable
    material: the request path and the decryptability proof both take it,
    so what the proof accepts is exactly what a Decrypt would use. Raises
    KeyMaterialError saying which step failed."""
    try:
        material = unwrap_material(kek, key_id, version, stored.wrapped)
    except LedgerError as exc:
        raise KeyMaterialError(str(exc)) from None
    if not kcv_matches(material, stored.kcv):
        raise KeyMaterialError(f"version {version} of key {key_id} fails its key check value")
    return material


def material_or_reason(kek: Secret, key_id: str, version: int,
                       stored: StoredVersion) -> tuple[Secret | None, str]:
    """`material_for` for a report: (material, "") or (None, why not)."""
    try:
        return material_for(kek, key_id, version, stored), ""
    except KeyMaterialError as exc:
        return None, str(exc)


# -- checkpoint signatures (Ed25519) -------------------------------------------

def ed25519_public_key(seed: Secret) -> bytes:
    return _ed25519.Ed25519PrivateKey.from_private_bytes(seed.reveal()).public_key().public_bytes(
        _ser.Encoding.Raw, _ser.PublicFormat.Raw)


def ed25519_sign(seed: Secret, message: bytes) -> bytes:
    return _ed25519.Ed25519PrivateKey.from_private_bytes(seed.reveal()).sign(message)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        _ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (_InvalidSignature, ValueError):
        return False


# -- key specs: how each family's material is made and used ----------------------
#
# keyspecs.py names every spec and what it allows; this is the "how", one
# recipe per family. Private keys are PKCS#8 DER and HMAC keys raw bytes,
# both carried in a `Secret` and wrapped under the key's KEK exactly like
# symmetric material (wrap_material, with a KCV); public keys are DER
# SubjectPublicKeyInfo, which may be stored in clear.

_HASHES: dict[str, Callable[[], _hashes.HashAlgorithm]] = {
    "sha1": _hashes.SHA1, "sha224": _hashes.SHA224, "sha256": _hashes.SHA256, "sha384": _hashes.SHA384,
    "sha512": _hashes.SHA512}
_CURVES: dict[str, Callable[[], _ec.EllipticCurve]] = {
    "secp256r1": _ec.SECP256R1, "secp384r1": _ec.SECP384R1, "secp521r1": _ec.SECP521R1,
    "secp256k1": _ec.SECP256K1}
_PKCS8 = (_ser.Encoding.DER, _ser.PrivateFormat.PKCS8, _ser.NoEncryption())
_SPKI = (_ser.Encoding.DER, _ser.PublicFormat.SubjectPublicKeyInfo)


def unavailable_families() -> dict[str, str | None]:
    """Families (or single specs of a family) the installed cryptography
    cannot serve, with the reason."""
    out: dict[str, str | None] = {}
    if not _MLDSA_CLASSES:
        out["ML_DSA"] = "the installed cryptography does not provide ML-DSA"
    if not _MLKEM_CLASSES:
        out["ML_KEM"] = "the installed cryptography does not provide ML-KEM"
    for n in (512, 768, 1024):
        if _MLKEM_CLASSES and n not in _MLKEM_CLASSES:
            out[f"ML_KEM_{n}"] = f"the installed cryptography does not provide ML-KEM-{n}"
    return out


def _public_der(private: Any) -> bytes:
    return private.public_key().public_bytes(*_SPKI)


def generate_key_material(spec: _ks.KeySpec, rng: Callable[[int], bytes]) -> tuple[Secret, bytes]:
    """Fresh material for one version of a key of `spec`: (secret material,
    public key DER or b""). Symmetric and HMAC material and ML-DSA and ML-KEM
    seeds come from `rng`; RSA and EC keys from the library's generator."""
    family = spec.family
    if family == "SYMMETRIC":
        return Secret(rng(MATERIAL_BYTES)), b""
    if family == "HMAC":
        return Secret(rng(spec.size)), b""
    if family == "RSA":
        private: Any = _rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
    elif family == "EC":
        private = _ec.generate_private_key(_CURVES[spec.curve]())  # type: ignore[index]
    elif family == "ML_DSA" and spec.size in _MLDSA_CLASSES:
        private = _MLDSA_CLASSES[spec.size].from_seed_bytes(rng(32))
    elif family == "ML_KEM" and spec.size in _MLKEM_CLASSES:  # PKCS#8 of the seed, as AWS's data key pairs
        private = _MLKEM_CLASSES[spec.size].from_seed_bytes(rng(MLKEM_SEED_BYTES))
    elif family == "ED25519":  # RFC 8032: the 32-byte private key is the seed
        private = _ed25519.Ed25519PrivateKey.from_private_bytes(rng(32))
    else:
        raise ValueError(f"no recipe for key spec {spec.name}")
    return Secret(private.private_bytes(*_PKCS8)), _public_der(private)


class PrivateKey:
    """A loaded private key (or HMAC key): usable, never shown, never pickled."""

    __slots__ = ("_key", "spec")

    def __init__(self, key: Any, spec: _ks.KeySpec) -> None:
        self._key, self.spec = key, spec

    def __repr__(self) -> str:
        return f"PrivateKey({self.spec.name}, <redacted>)"

    def __reduce__(self) -> Any:
        raise TypeError("a PrivateKey cannot be pickled or copied")


def load_private_key(spec: _ks.KeySpec, material: Secret) -> PrivateKey:
    """The usable key behind unwrapped material (checked against its KCV by
    the caller, so RSA's slow consistency check can be skipped)."""
    if spec.family == "HMAC":
        return PrivateKey(material, spec)
    return PrivateKey(_ser.load_der_private_key(material.reveal(), None, unsafe_skip_rsa_key_validation=True), spec)


@functools.lru_cache(maxsize=4096)
def load_public_key(der: bytes) -> Any:
    return _ser.load_der_public_key(der)


def _signature_hash(algorithm: _ks.SigningAlgorithm, message_type: str) -> Any:
    h = _HASHES[algorithm.hash]()  # type: ignore[index]
    return _Prehashed(h) if message_type == "DIGEST" else h


def _rsa_signature_padding(algorithm: _ks.SigningAlgorithm) -> Any:
    if algorithm.scheme == "PSS":  # AWS: salt as long as the digest, MGF1 with the same hash
        return _padding.PSS(mgf=_padding.MGF1(_HASHES[algorithm.hash]()),  # type: ignore[index]
                            salt_length=_padding.PSS.DIGEST_LENGTH)
    return _padding.PKCS1v15()


# -- Ed25519ph (RFC 8032 section 5.1, HashEdDSA with an empty context) -----------
#
# cryptography has pure Ed25519 only, and a pure signature cannot carry the
# dom2 prefix that Ed25519ph hashes in before the nonce and the challenge. So
# the two RFC steps are written out here over libsodium's edwards25519
# arithmetic, which is constant time: the clamped secret scalar and the nonce
# only ever reach libsodium's scalar and point functions, never Python ints.
# tests/ledger/test_ed25519.py pins the RFC's test vector and checks every
# signature against a plain-integer transcription of the RFC.

_DOM2_PH = b"SigEd25519 no Ed25519 collisions" + bytes([1, 0])  # dom2(phflag=1, context="")
_ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493


def _sha512(*parts: bytes) -> bytes:
    return hashlib.sha512(b"".join(parts)).digest()


def _scalar(wide: bytes) -> bytes:
    return _sodium.crypto_core_ed25519_scalar_reduce(wide.ljust(64, b"\0"))


def ed25519ph_sign(seed: bytes, digest: bytes) -> bytes:
    """The Ed25519ph signature (R || S) of PH(M) = `digest`, the SHA-512 of
    the message, under the key whose RFC 8032 private key is `seed`."""
    h = _sha512(seed)
    clamped = bytearray(h[:32])
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    secret = _scalar(bytes(clamped))
    public = _sodium.crypto_scalarmult_ed25519_base_noclamp(secret)
    r = _scalar(_sha512(_DOM2_PH, h[32:], digest))
    big_r = _sodium.crypto_scalarmult_ed25519_base_noclamp(r)
    k = _scalar(_sha512(_DOM2_PH, big_r, public, digest))
    s = _sodium.crypto_core_ed25519_scalar_add(r, _sodium.crypto_core_ed25519_scalar_mul(k, secret))
    return big_r + s


def ed25519ph_verify(public: bytes, digest: bytes, signature: bytes) -> bool:
    """RFC 8032's check of an Ed25519ph signature, as OpenSSL makes it: S
    below the group order, and R equal to the encoding of [S]B - [k]A."""
    if len(signature) != 64 or len(public) != 32:
        return False
    big_r, s = signature[:32], signature[32:]
    if int.from_bytes(s, "little") >= _ED25519_ORDER:
        return False
    k = _scalar(_sha512(_DOM2_PH, big_r, public, digest))
    try:
        expected = _sodium.crypto_core_ed25519_sub(_sodium.crypto_scalarmult_ed25519_base_noclamp(s),
                                                  _sodium.crypto_scalarmult_ed25519_noclamp(k, public))
    except _SodiumError:  # A not a valid point of the prime-order group, or S or k zero
        return False
    return hmac.compare_digest(expected, big_r)


def sign(key: PrivateKey, algorithm: _ks.SigningAlgorithm, message_type: str, message: bytes) -> bytes:
    """A signature in AWS's encoding: RSA as is, ECDSA DER (r, s), ML-DSA and
    Ed25519 (RFC 8032, 64 bytes) raw."""
    private = key._key
    if algorithm.scheme == "ED25519":
        return private.sign(message)
    if algorithm.scheme == "ED25519_PH":
        return ed25519ph_sign(private.private_bytes_raw(), message)
    if algorithm.scheme == "ML_DSA":
        return private.sign_mu(message) if message_type == "EXTERNAL_MU" else private.sign(message)
    if algorithm.scheme == "ECDSA":
        return private.sign(message, _ec.ECDSA(_signature_hash(algorithm, message_type)))
    return private.sign(message, _rsa_signature_padding(algorithm), _signature_hash(algorithm, message_type))


def verify(public_der: bytes, algorithm: _ks.SigningAlgorithm, message_type: str, message: bytes,
           signature: bytes) -> bool:
    public = load_public_key(public_der)
    try:
        if algorithm.scheme == "ED25519":
            public.verify(signature, message)
        elif algorithm.scheme == "ED25519_PH":
            return ed25519ph_verify(public.public_bytes_raw(), message, signature)
        elif algorithm.scheme == "ML_DSA":
            if message_type == "EXTERNAL_MU":
                public.verify_mu(signature, message)
            else:
                public.verify(signature, message)
        elif algorithm.scheme == "ECDSA":
            public.verify(signature, message, _ec.ECDSA(_signature_hash(algorithm, message_type)))
        else:
            public.verify(signature, message, _rsa_signature_padding(algorithm),
                          _signature_hash(algorithm, message_type))
    except (_InvalidSignature, ValueError):
        return False
    return True


def mac(key: PrivateKey, algorithm: _ks.MacAlgorithm, message: bytes) -> bytes:
    return hmac.digest(key._key.reveal(), message, algorithm.hash)


def mac_matches(key: PrivateKey, algorithm: _ks.MacAlgorithm, message: bytes, tag: bytes) -> bool:
    return hmac.compare_digest(mac(key, algorithm, message), tag)


def _oaep(algorithm: _ks.EncryptionAlgorithm) -> Any:
    h = _HASHES[algorithm.hash]  # type: ignore[index]
    return _padding.OAEP(mgf=_padding.MGF1(h()), algorithm=h(), label=None)


def public_encrypt(public_der: bytes, algorithm: _ks.EncryptionAlgorithm, plaintext: bytes) -> bytes:
    """RSAES-OAEP under a public key: what anyone holding it produces offline."""
    return load_public_key(public_der).encrypt(plaintext, _oaep(algorithm))


def private_decrypt(key: PrivateKey, algorithm: _ks.EncryptionAlgorithm, ciphertext: bytes) -> bytes:
    try:
        return key._key.decrypt(ciphertext, _oaep(algorithm))
    except ValueError:
        raise InvalidCiphertextException("") from None


def derive_shared_secret(key: PrivateKey, peer_public_der: bytes) -> Secret:
    """Raw ECDH (the x coordinate, as AWS returns it) with a peer's DER
    SubjectPublicKeyInfo on the key's own curve; anything else is refused."""
    try:
        peer = _ser.load_der_public_key(peer_public_der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _ValidationException("") from None
    if not isinstance(peer, _ec.EllipticCurvePublicKey) or peer.curve.name != key._key.curve.name:
        raise _ValidationException("")
    return Secret(key._key.exchange(_ec.ECDH(), peer))


def encapsulate(public_der: bytes) -> tuple[Secret, bytes]:
    """ML-KEM encapsulation under a key's public key: (the 32-byte shared
    secret, its ciphertext). Anyone holding the public key can do the same
    offline; the randomness is the library's (FIPS 203 draws it inside)."""
    secret, ciphertext = load_public_key(public_der).encapsulate()
    return Secret(secret), ciphertext


def decapsulate(key: PrivateKey, ciphertext: bytes) -> Secret:
    """ML-KEM decapsulation: the shared secret of a ciphertext of the key's
    spec's length (the service checks it first, `keyspecs.check_kem_ciphertext`;
    cryptography refuses any other: InvalidCiphertextException, no reason).
    A ciphertext of the right length that no one made for this key yields a
    pseudo-random secret, never an error (FIPS 203's implicit rejection), so
    the answer is no oracle."""
    try:
        return Secret(key._key.decapsulate(bytes(ciphertext)))
    except ValueError:
        raise InvalidCiphertextException("") from None


def generate_data_key_pair(spec: _ks.KeySpec) -> tuple[Secret, bytes]:
    """A data key pair: (PKCS#8 DER private key, DER SubjectPublicKeyInfo)."""
    return generate_key_material(spec, os.urandom)


def pregenerate(key_spec: str | None) -> tuple[Secret, bytes] | None:
    """A key pair for a CreateKey of an RSA or EC spec, made before its
    write transaction (a refused request just drops it); None otherwise."""
    spec = _ks.SPECS.get(key_spec) if isinstance(key_spec, str) else None
    if spec is None or spec.family not in ("RSA", "EC") or spec.unsupported is not None:
        return None
    return generate_key_material(spec, os.urandom)


# -- imported key material (GetParametersForImport, ImportKeyMaterial) ----------
#
# The wrapping key is a one-time RSA key pair per GetParametersForImport; its
# private half is kept only wrapped under the key's KEK (AAD binds the key id
# and the token id). The import token is an AES-GCM blob sealed under a
# subkey of the same KEK (AAD binds the key id), so only this ledger can have
# made it, and only for this key. The caller wraps its material the way AWS
# documents: RSAES_OAEP_SHA_* directly with OAEP (MGF1 with the same hash,
# no label), RSA_AES_KEY_WRAP_SHA_* as OAEP(ephemeral AES key) followed by
# the material under RFC 5649 AES key wrap with padding.

WRAPPING_KEY_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
WRAPPING_ALGORITHMS = {"RSAES_OAEP_SHA_1": "sha1", "RSAES_OAEP_SHA_256": "sha256",
                       "RSA_AES_KEY_WRAP_SHA_1": "sha1", "RSA_AES_KEY_WRAP_SHA_256": "sha256"}
_IMPORT_TOKEN_MAGIC = b"KLIT\x01"
_IMPORT_TOKEN_AAD = b"keyledger/v1/import-token"
_IMPORT_TOKEN_KEY_INFO = b"keyledger/v1/import-token-key"
_WRAPPING_KEY_AAD = b"keyledger/v1/wrapping-key"
#: AWS's HMAC key material lengths (bytes): at least the spec's, at most one hash block
HMAC_IMPORT_BYTES = {28: (28, 64), 32: (32, 64), 48: (48, 128), 64: (64, 128)}


def generate_wrapping_key(wrapping_key_spec: str) -> tuple[Secret, bytes]:
    """A one-time RSA wrapping key pair: (PKCS#8 DER private key, DER SubjectPublicKeyInfo)."""
    private = _rsa.generate_private_key(public_exponent=65537, key_size=WRAPPING_KEY_BITS[wrapping_key_spec])
    return Secret(private.private_bytes(*_PKCS8)), _public_der(private)


def _wrapping_key_aad(key_id: str, token_id: bytes) -> bytes:
    return _WRAPPING_KEY_AAD + key_uuid_bytes(key_id) + token_id


def wrap_wrapping_key(kek: Secret, key_id: str, token_id: bytes, private: Secret, *, nonce: bytes) -> bytes:
    return _wrap(kek, private.reveal(), _wrapping_key_aad(key_id, token_id), nonce)


def unwrap_wrapping_key(kek: Secret, key_id: str, token_id: bytes, wrapped: bytes) -> Secret:
    return _unwrap(kek, wrapped, _wrapping_key_aad(key_id, token_id), f"a wrapping key of key {key_id}")


def _import_token_key(kek: Secret) -> Secret:
    return Secret(_hkdf_sha256_32(kek.reveal(), b"\x00" * 32, _IMPORT_TOKEN_KEY_INFO))


def seal_import_token(kek: Secret, key_id: str, payload: bytes, *, nonce: bytes) -> bytes:
    """An import token: `payload` sealed for this key under its KEK."""
    return _IMPORT_TOKEN_MAGIC + _wrap(_import_token_key(kek), payload, _IMPORT_TOKEN_AAD + key_uuid_bytes(key_id),
                                       nonce)


def _open_token(key: Secret, magic: bytes, token: bytes, aad: bytes) -> bytes | None:
    """What a token sealed as `magic || _wrap(key, payload, aad)` holds; None for any other bytes."""
    if not isinstance(token, (bytes, bytearray)) or not token.startswith(magic) \
            or len(token) < len(magic) + NONCE_BYTES + TAG_BYTES:
        return None
    body = bytes(token[len(magic):])
    try:
        return AESGCM(key.reveal()).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        return None


def open_import_token(kek: Secret, key_id: str, token: bytes) -> bytes | None:
    """The payload of a token this ledger sealed for this key; None for any other token."""
    return _open_token(_import_token_key(kek), _IMPORT_TOKEN_MAGIC, token,
                       _IMPORT_TOKEN_AAD + key_uuid_bytes(key_id))


# -- STS session tokens -----------------------------------------------------------

_SESSION_TOKEN_MAGIC = b"KLST\x01"
_SESSION_TOKEN_AAD = b"keyledger/v1/session-token"
_SESSION_TOKEN_KEY_INFO = b"keyledger/v1/session-token-key"


def _session_token_key(root: Secret) -> Secret:
    return Secret(_hkdf_sha256_32(root.reveal(), b"\x00" * 32, _SESSION_TOKEN_KEY_INFO))


def seal_session_token(root: Secret, claims: bytes, *, nonce: bytes) -> bytes:
    """A session token (STS AssumeRole): the session's claims, its secret
    among them, sealed under a key derived from the root key, so the token
    is all a node needs to authenticate the session and nothing secret is
    stored. A new root key (rotate-root-key) ends every session."""
    return _SESSION_TOKEN_MAGIC + _wrap(_session_token_key(root), claims, _SESSION_TOKEN_AAD, nonce)


def open_session_token(root: Secret, token: bytes) -> bytes | None:
    """The claims of a session token this ledger's root key sealed; None for any other bytes."""
    return _open_token(_session_token_key(root), _SESSION_TOKEN_MAGIC, token, _SESSION_TOKEN_AAD)


def unwrap_imported_material(wrapping_private: Secret, wrapping_algorithm: str, blob: bytes) -> Secret:
    """The key material a caller wrapped under the public wrapping key, or
    InvalidCiphertextException (no reason given) for anything else."""
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding
    h = _HASHES[WRAPPING_ALGORITHMS[wrapping_algorithm]]
    oaep = _padding.OAEP(mgf=_padding.MGF1(h()), algorithm=h(), label=None)
    private = cast(_rsa.RSAPrivateKey,  # the wrapping key is ours, always RSA
                   _ser.load_der_private_key(wrapping_private.reveal(), None, unsafe_skip_rsa_key_validation=True))
    try:
        if wrapping_algorithm.startswith("RSAES_OAEP"):
            return Secret(private.decrypt(bytes(blob), oaep))
        k = private.key_size // 8
        if len(blob) <= k:
            raise ValueError
        aes_key = private.decrypt(bytes(blob[:k]), oaep)
        if len(aes_key) not in (16, 24, 32):
            raise ValueError
        return Secret(aes_key_unwrap_with_padding(aes_key, bytes(blob[k:])))
    except (ValueError, InvalidUnwrap):
        raise InvalidCiphertextException(_OPAQUE) from None


def imported_material(spec: _ks.KeySpec, material: Secret) -> tuple[Secret, bytes] | None:
    """Imported material as keyledger keeps material of `spec` (raw symmetric
    or HMAC bytes, or a canonical PKCS#8 DER re-encoding, so that a
    re-import of the same private key compares equal however it was
    encoded) and its public key; None if it is not a key of that spec."""
    raw = material.reveal()
    if spec.family == "SYMMETRIC":
        return (material, b"") if len(raw) == MATERIAL_BYTES else None
    if spec.family == "HMAC":
        low, high = HMAC_IMPORT_BYTES.get(spec.size, (spec.size, spec.size))
        return (material, b"") if low <= len(raw) <= high else None
    try:
        private: Any = _ser.load_der_private_key(raw, None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if spec.family == "RSA":
        if not isinstance(private, _rsa.RSAPrivateKey) or private.key_size != spec.size:
            return None
    elif spec.family == "EC":
        if not isinstance(private, _ec.EllipticCurvePrivateKey) or private.curve.name != spec.curve:
            return None
    else:  # ML-DSA, ML-KEM and the rest: keyledger takes no imported material for them (yet)
        return None
    return Secret(private.private_bytes(*_PKCS8)), _public_der(private)
