"""Imported key material (keys with Origin EXTERNAL): the pure rules.

Like `commands.py`, no IO and no clock: the service (`service/imports.py`)
passes the key's state, `now` and the unwrapped material in, and these
functions return the events or raise AWS's errors.

The model, as AWS documents it (ImportKeyMaterial, RotationsListEntry,
"Importing key material" in the developer guide):

- A key created with Origin EXTERNAL has no material and is `PendingImport`.
- The first material imported becomes version 1, current and permanently
  associated with the key. Symmetric encryption keys may later import
  NEW_KEY_MATERIAL: it waits as PENDING_ROTATION (not associated yet, it can
  be deleted and replaced) until RotateKeyOnDemand makes it the next
  version. HMAC and asymmetric keys have exactly one material.
- A re-import (EXISTING_KEY_MATERIAL, the default once anything was
  imported) must bring material the key already has: it is compared with
  the version's key check value, never with stored plaintext.
- Each import sets whether the material expires (KEY_MATERIAL_EXPIRES with a
  ValidTo at most 365 days ahead, or KEY_MATERIAL_DOES_NOT_EXPIRE). Expiry
  and DeleteImportedKeyMaterial make the material PENDING_IMPORT; the key is
  usable only while every associated material is IMPORTED.

KeyMaterialId: AWS derives it from the key id and the material; keyledger
derives it from the key id and the material's version
(`commands.key_material_id`), which the material fixes for a key: a
re-import of the same material names the same id, other material cannot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from keyledger import commands as cmd
from keyledger import crypto
from keyledger import events as ev
from keyledger import keyspecs
from keyledger.errors import (
    ExpiredImportTokenException,
    IncorrectKeyMaterialException,
    InvalidImportTokenException,
    KMSInvalidStateException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from keyledger.projections.state import DAY_US, KeyState
from keyledger.secret import Secret

EXTERNAL = "EXTERNAL"
WRAPPING_ALGORITHMS = ("RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1",
                       "RSA_AES_KEY_WRAP_SHA_256", "SM2PKE")  # the model's AlgorithmSpec
WRAPPING_KEY_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096", "SM2")  # the model's WrappingKeySpec
EXPIRES, DOES_NOT_EXPIRE = "KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"
NEW, EXISTING = "NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"
IMPORTED, PENDING_IMPORT = "IMPORTED", "PENDING_IMPORT"
PARAMETERS_VALID_US = DAY_US  # a public key and its token are good for 24 hours
MAX_VALID_TO_US = 365 * DAY_US


class TokenPayload(msgspec.Struct, frozen=True, array_like=True):
    """What an import token seals (under the key's KEK; see crypto.seal_import_token)."""

    token_id: bytes
    key_id: str
    valid_to: int
    wrapping_algorithm: str
    wrapping_key_spec: str
    wrapped_private_key: bytes


_token_encoder = msgspec.msgpack.Encoder()
_token_decoder = msgspec.msgpack.Decoder(TokenPayload)

_INVALID_TOKEN = "Import token is invalid or does not belong to this KMS key."
_EXPIRED_TOKEN = "Import token is expired. Use GetParametersForImport to get a new import token and public key."


def encode_token(payload: TokenPayload) -> bytes:
    return _token_encoder.encode(payload)


def decode_token(sealed_payload: bytes | None, key_id: str) -> TokenPayload:
    """The payload of an opened token (None: it did not open for this key)."""
    if sealed_payload is None:
        raise InvalidImportTokenException(_INVALID_TOKEN)
    try:
        payload = _token_decoder.decode(sealed_payload)
    except msgspec.DecodeError:
        raise InvalidImportTokenException(_INVALID_TOKEN) from None
    if payload.key_id != key_id:
        raise InvalidImportTokenException(_INVALID_TOKEN)
    return payload


def check_token_fresh(payload: TokenPayload, now: int) -> None:
    if now >= payload.valid_to:
        raise ExpiredImportTokenException(_EXPIRED_TOKEN)


# -- checks -----------------------------------------------------------------------

def require_external(state: KeyState, arn: str) -> None:
    if state.origin != EXTERNAL:
        raise UnsupportedOperationException(f"{arn} origin is {state.origin} which is not valid for this operation.")


def check_parameters(state: KeyState, arn: str, wrapping_algorithm: str, wrapping_key_spec: str) -> None:
    """GetParametersForImport's rules beyond the model's enums."""
    require_external(state, arn)
    cmd.require_not_pending(state, arn)
    if wrapping_key_spec == "SM2" or wrapping_algorithm == "SM2PKE":
        raise UnsupportedOperationException("SM2 wrapping is supported only in China Regions.")
    if wrapping_algorithm == "RSAES_PKCS1_V1_5":
        raise ValidationException("The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported; "
                                  "use RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256.")
    family = keyspecs.spec(state.key_spec).family
    if family == "RSA" and not wrapping_algorithm.startswith("RSA_AES"):
        raise ValidationException(f"To import {state.key_spec} key material you must use an RSA_AES wrapping "
                                  "algorithm (RSA_AES_KEY_WRAP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256).")
    if family not in ("SYMMETRIC", "HMAC", "RSA", "EC"):
        raise UnsupportedOperationException(f"keyledger does not import key material for {state.key_spec} keys.")
    if state.key_spec == "ECC_NIST_P521" and wrapping_key_spec == "RSA_2048" and \
            wrapping_algorithm.startswith("RSAES_OAEP"):  # the private key is longer than OAEP can wrap
        raise ValidationException(f"You cannot use the {wrapping_algorithm} wrapping algorithm with the RSA_2048 "
                                  "wrapping key spec to wrap ECC_NIST_P521 key material.")


def parse_valid_to(valid_to: Any) -> int | None:
    """ValidTo as microseconds: a timezone-aware datetime, or seconds since
    the epoch (how the wire and the CLI send it)."""
    if valid_to is None:
        return None
    if isinstance(valid_to, datetime):
        if valid_to.tzinfo is None:
            raise ValidationException("ValidTo must be a timezone-aware date and time.")
        return ev.to_us(valid_to)
    if isinstance(valid_to, (int, float)) and not isinstance(valid_to, bool):
        return int(round(valid_to * 1_000_000))
    raise ValidationException("ValidTo must be a date and time.")


def check_expiration(expiration_model: str | None, valid_to: int | None, now: int) -> tuple[str, int | None]:
    model = expiration_model or EXPIRES
    cmd.check_enum("expirationModel", model, (EXPIRES, DOES_NOT_EXPIRE))
    if model == EXPIRES:
        if valid_to is None:
            raise ValidationException("A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES")
        if valid_to <= now:
            raise ValidationException("ValidTo must be in the future.")
        if valid_to > now + MAX_VALID_TO_US:
            raise ValidationException("ValidTo must be at most 365 days from now.")
    elif valid_to is not None:
        raise ValidationException("A validTo date must not be set if the ExpirationModel is "
                                  "KEY_MATERIAL_DOES_NOT_EXPIRE")
    return model, valid_to


# -- deciding an import --------------------------------------------------------------

def _materials(state: KeyState) -> list[tuple[int, bytes]]:
    """(version, KCV) of every material associated with the key or pending rotation."""
    found = [(v.version, v.kcv) for v in state.versions]
    if state.pending_rotation is not None:
        found.append((state.pending_rotation.version, state.pending_rotation.kcv))
    return found


def import_material(state: KeyState, arn: str, material: Secret, *, import_type: str | None,
                    key_material_id: str | None, description: str | None, expiration_model: str,
                    valid_to: int | None, token_id: bytes,
                    wrap: Any) -> list[ev.KeyMaterialImported]:
    """The KeyMaterialImported event of an ImportKeyMaterial, after AWS's
    checks. `material` is already in keyledger's form for the key's spec;
    `wrap(version)` wraps it as that version's material (called only for
    new material)."""
    symmetric = state.key_spec == keyspecs.SYMMETRIC_DEFAULT
    if not symmetric and (import_type is not None or key_material_id is not None or description is not None):
        raise ValidationException("ImportType, KeyMaterialId and KeyMaterialDescription are only valid for "
                                  "symmetric encryption keys.")
    if import_type is not None:
        cmd.check_enum("importType", import_type, (NEW, EXISTING))
    anything = bool(state.versions)
    kind = import_type or (EXISTING if anything else NEW)
    if kind == NEW and key_material_id is not None:
        raise ValidationException("You cannot specify a key material ID with ImportType set to NEW_KEY_MATERIAL.")
    same = [version for version, kcv in _materials(state) if crypto.kcv_matches(material, kcv)]
    if kind == EXISTING:
        if not same:
            raise IncorrectKeyMaterialException(
                "The key material being imported is not the key material previously imported into this KMS key.")
        version = same[0]
        if key_material_id is not None and key_material_id != cmd.key_material_id(state.key_id, version):
            raise IncorrectKeyMaterialException(
                "The key material being imported does not match the specified key material ID.")
        pending = state.pending_rotation is not None and version == state.pending_rotation.version
        return [ev.KeyMaterialImported(state.key_id, version, kind, expiration_model, valid_to, description or "",
                                       token_id, None, pending)]
    if same:
        raise IncorrectKeyMaterialException(
            "The key material being imported as new key material is already associated with this KMS key.")
    if not anything:
        return [ev.KeyMaterialImported(state.key_id, 1, kind, expiration_model, valid_to, description or "",
                                       token_id, wrap(1), False)]
    if not symmetric:
        raise IncorrectKeyMaterialException(
            f"{arn} already has key material: an HMAC or asymmetric key takes only one key material.")
    if state.pending_rotation is not None:
        waiting = state.pending_rotation.version  # AWS's words
        raise KMSInvalidStateException(
            f"New key material (id: {cmd.key_material_id(state.key_id, waiting + 1)}) cannot be imported into "
            f"KMS key {arn}, because another key material (id: {cmd.key_material_id(state.key_id, waiting)}) "
            "is pending rotation.")
    version = len(state.versions) + 1
    return [ev.KeyMaterialImported(state.key_id, version, kind, expiration_model, valid_to, description or "",
                                   token_id, wrap(version), True)]


def delete_material(state: KeyState, arn: str,
                    key_material_id: str | None) -> list[ev.ImportedKeyMaterialDeleted]:
    """DeleteImportedKeyMaterial: the current material by default."""
    require_external(state, arn)
    if key_material_id is None:
        if not state.versions:
            raise KMSInvalidStateException(f"{arn} is pending import.")
        version = state.current.version
    else:
        by_id = {cmd.key_material_id(state.key_id, v): v for v, _ in _materials(state)}
        if key_material_id not in by_id:
            raise NotFoundException(f"Key material {key_material_id} is not associated with {arn}.")
        version = by_id[key_material_id]
    entry = next((m for m in state.imports if m.version == version), None)
    if entry is None or entry.import_state != IMPORTED:
        raise KMSInvalidStateException(f"The key material {cmd.key_material_id(state.key_id, version)} of {arn} "
                                       "is pending import.")
    return [ev.ImportedKeyMaterialDeleted(state.key_id, version)]


def expiries_due(state: KeyState, now: int) -> list[ev.ImportedKeyMaterialExpired]:
    """The expiries of imported material whose ValidTo has passed, oldest first."""
    if state.origin != EXTERNAL or state.state == cmd.DELETED:
        return []
    due = sorted((m.valid_to, m.version) for m in state.imports
                 if m.import_state == IMPORTED and m.valid_to is not None and m.valid_to <= now)
    return [ev.ImportedKeyMaterialExpired(state.key_id, version, when) for when, version in due]


def next_expiry(state: KeyState) -> int | None:
    dates = [m.valid_to for m in state.imports[:len(state.versions)]
             if m.import_state == IMPORTED and m.valid_to is not None]
    return min(dates) if dates else None


# -- what DescribeKey and ListKeyRotations show --------------------------------------

def metadata_fields(state: KeyState) -> dict[str, Any]:
    """ExpirationModel and ValidTo of KeyMetadata (EXTERNAL keys only; ValidTo
    the earliest expiry of the material associated with the key). Neither
    while the current material is not imported: before the first import and
    after DeleteImportedKeyMaterial, as AWS answers (recorded, 2025)."""
    if state.origin != EXTERNAL or not state.imports:
        return {}
    current = next((m for m in state.imports if state.versions and m.version == state.current.version),
                   state.imports[0])
    if current.import_state != IMPORTED:
        return {}
    valid_to = next_expiry(state)
    return {"expiration_model": EXPIRES if valid_to is not None else current.expiration_model,
            "valid_to": ev.from_us(valid_to) if valid_to is not None else None}


def rotation_fields(state: KeyState, version: int) -> dict[str, Any]:
    """RotationsListEntry's import fields (symmetric EXTERNAL keys only)."""
    if state.origin != EXTERNAL or state.key_spec != keyspecs.SYMMETRIC_DEFAULT:
        return {}
    entry = next((m for m in state.imports if m.version == version), None)
    if entry is None:
        return {}
    return {"key_material_description": entry.description or None, "import_state": entry.import_state,
            "expiration_model": entry.expiration_model,
            "valid_to": ev.from_us(entry.valid_to) if entry.valid_to is not None else None}

