"""Signed checkpoints: C2SP tlog-checkpoint notes signed with Ed25519.

A checkpoint commits to the first `size` records of the log through their
RFC 6962 Merkle root. The note (C2SP signed-note) is

    <origin>\\n<size>\\n<base64 root>\\n\\n\\u2014 <name> <base64(key hash || signature)>\\n

where the signature covers the text before the blank line (with its final
newline) and key hash = SHA-256(name || "\\n" || 0x01 || public key)[:4].
A checkpoint may carry C2SP extension lines between the root hash and the
blank line; standard verifiers ignore them. Ours adds one,

    keyledger-state/v2 <base64 digest of the projection state>

(`projections.digest`): the signer commits to the state it serves from as
well as to the log. Notes without it (older checkpoints) still parse and
verify; they simply commit to no state. Unknown extension lines are kept
in the signed text and otherwise ignored. The label's version is the
digest's (`projections.digest.DIGEST_VERSIONS`): notes signed with
`keyledger-state/v1` (before the parameter store's table) still parse and
are checked against a v1 digest.
The signing key is separate from the root key: holding it lets one sign
checkpoints, never read a key. An auditor needs only the verifier key,
`<name>+<hex key hash>+<base64(0x01 || public key)>`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from keyledger import crypto
from keyledger.secret import Secret

_DASH = "\u2014"
_ED25519 = b"\x01"


class CheckpointError(ValueError):
    """A note that does not parse or does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: bytes  # the whole signed note, as stored and exported
    state: bytes | None = None  # projection-state digest, if the note carries one
    state_version: int = 2  # the digest version its state line names


def key_hash(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    return f"{name}+{key_hash(name, public_key).hex()}+{base64.b64encode(_ED25519 + public_key).decode()}"


def parse_verifier_key(vkey: str) -> tuple[str, bytes]:
    """(name, Ed25519 public key) from a verifier key string."""
    try:
        name, hash_hex, b64 = vkey.strip().split("+", 2)  # names hold no "+"; base64 may
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        raise CheckpointError("not a verifier key") from None
    if raw[:1] != _ED25519 or len(raw) != 33:
        raise CheckpointError("not an Ed25519 verifier key")
    if key_hash(name, raw[1:]).hex() != hash_hex:
        raise CheckpointError("verifier key hash does not match its key")
    return name, raw[1:]


STATE_VERSION = 2
STATE_LINE = f"keyledger-state/v{STATE_VERSION}"
#: every state line label a note may carry -> its digest version
STATE_LINES = {f"keyledger-state/v{v}": v for v in range(1, STATE_VERSION + 1)}


def body(origin: str, size: int, root: bytes, state: bytes | None = None,
         state_version: int = STATE_VERSION) -> bytes:
    text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    if state is not None:
        text += f"keyledger-state/v{state_version} {base64.b64encode(state).decode()}\n"
    return text.encode()


def sign(origin: str, size: int, root: bytes, seed: Secret, state: bytes | None = None,
         state_version: int = STATE_VERSION) -> Checkpoint:
    """Sign the note for a tree of `size` records with Merkle `root` and,
    if given, the projection-state digest `state` (of `state_version`)."""
    text = body(origin, size, root, state, state_version)
    sig = crypto.ed25519_sign(seed, text)
    public = crypto.ed25519_public_key(seed)
    line = f"{_DASH} {origin} {base64.b64encode(key_hash(origin, public) + sig).decode()}\n"
    return Checkpoint(origin, size, root, text + b"\n" + line.encode(), state, state_version)


def parse(note: bytes) -> tuple[Checkpoint, list[tuple[str, bytes, bytes]]]:
    """The checkpoint and its signature lines (name, key hash, signature),
    without checking any signature."""
    try:
        text, sigs = note.decode().split("\n\n", 1)
        lines = text.split("\n")
        origin, size_s, root_b64 = lines[0], lines[1], lines[2]
        size = int(size_s)
        if size < 0 or str(size) != size_s:
            raise ValueError
        root = base64.b64decode(root_b64, validate=True)
        if len(root) != 32 or not origin:
            raise ValueError
        state, state_version = None, STATE_VERSION
        for extension in lines[3:]:
            if not extension:
                raise ValueError  # C2SP: extension lines are non-empty
            label, _, value = extension.partition(" ")
            if label in STATE_LINES:
                if state is not None:
                    raise ValueError
                state_version = STATE_LINES[label]
                state = base64.b64decode(value, validate=True)
                if len(state) != 32:
                    raise ValueError
        signatures = []
        for line in sigs.split("\n"):
            if not line:
                continue
            dash, name, b64 = line.split(" ")
            raw = base64.b64decode(b64, validate=True)
            if dash != _DASH or len(raw) < 5:
                raise ValueError
            signatures.append((name, raw[:4], raw[4:]))
    except (ValueError, IndexError, UnicodeDecodeError):
        raise CheckpointError("the checkpoint note does not parse") from None
    return Checkpoint(origin, size, root, note, state, state_version), signatures


def verify(note: bytes, name: str, public_key: bytes) -> Checkpoint:
    """Parse and check the note's signature by (name, public key)."""
    checkpoint, signatures = parse(note)
    text = note.decode().split("\n\n", 1)[0] + "\n"
    want = key_hash(name, public_key)
    for sig_name, khash, sig in signatures:
        if sig_name == name and khash == want and crypto.ed25519_verify(public_key, text.encode(), sig):
            return checkpoint
    raise CheckpointError(f"no valid signature by {name} on the checkpoint of size {checkpoint.size}")
