"""Decisions: pure functions from (state, request, now) to events.

No IO, no clock, no randomness: the service passes `now` and any fresh
wrapped material in. Each function either returns the events the request
produces or raises the AWS-named error that refuses it. Request validation
lives here too, so the rules and their limits are in one place.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from keyledger import events as ev
from keyledger import keyspecs
from keyledger.crypto import MAX_CONTEXT_BYTES, MRK_PREFIX, canonical_context
from keyledger.errors import (
    AlreadyExistsException, DisabledException,
    KMSInvalidStateException, LimitExceededException, NotAuthorizedException, NotFoundException,
    TagException, UnsupportedOperationException, ValidationException,
)
from keyledger.projections.state import DAY_US, AliasState, KeyState

ENABLED, DISABLED, PENDING_DELETION, DELETED = "Enabled", "Disabled", "PendingDeletion", "Deleted"
PENDING_REPLICA_DELETION = "PendingReplicaDeletion"  # a multi-Region primary waiting for its replicas
PENDING_IMPORT = "PendingImport"  # an EXTERNAL key without (all of) its key material
SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"

MAX_PLAINTEXT = 4096
MAX_CIPHERTEXT = 6144
MAX_DESCRIPTION = 8192
MAX_TAGS = 50
MAX_ON_DEMAND_ROTATIONS = 10
ROTATION_PERIOD_RANGE = (90, 2560)
DEFAULT_ROTATION_PERIOD = 365
PENDING_WINDOW_RANGE = (7, 30)
DEFAULT_PENDING_WINDOW = 30
DATA_KEY_SPECS = {"AES_256": 32, "AES_128": 16}
ALIAS_PATTERN = "^[a-zA-Z0-9:/_-]+$"  # the model's AliasNameType
_ALIAS_PATTERN = re.compile(ALIAS_PATTERN)


# -- validation ---------------------------------------------------------------
# The model's own constraints (lengths, ranges, enums, patterns, required
# members) are checked before any of this by `keyledger.constraints`, in
# AWS's words; the checks here are the rules AWS states elsewhere, and the
# library's own (types, the library's dict forms), worded the same way.

def _invalid(field: str, constraint: str, value: object = None, *, show: bool = True) -> ValidationException:
    shown = value if show else None
    where = f"Value '{shown}' at '{field}'" if shown is not None else f"Value at '{field}'"
    return ValidationException(f"1 validation error detected: {where} failed to satisfy constraint: {constraint}")


def check_length(field: str, value: bytes | str, low: int, high: int) -> None:
    """AWS's one-sided length message; bytes are never shown."""
    show = isinstance(value, str)
    if len(value) < low:
        raise _invalid(field, f"Member must have length greater than or equal to {low}", value, show=show)
    if len(value) > high:
        raise _invalid(field, f"Member must have length less than or equal to {high}", value, show=show)


def check_range(field: str, value: object, low: int, high: int) -> int:
    """`value`, once it is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, "Member must be an integer", value)
    if value < low:
        raise _invalid(field, f"Member must have value greater than or equal to {low}", value)
    if value > high:
        raise _invalid(field, f"Member must have value less than or equal to {high}", value)
    return value


def check_limit(value: int | None, high: int) -> int:
    """The page size: 1 to the operation's documented maximum (the model
    says 1..1000 for every listing; the documentation narrows some)."""
    if value is None:
        return min(100, high)
    check_range("limit", value, 1, high)
    return value


def check_enum(field: str, value: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise _invalid(field, f"Member must satisfy enum value set: [{', '.join(allowed)}]", value)


def check_bytes(field: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _invalid(field, "Member must be a blob (bytes)", show=False)
    return bytes(value)


def check_context(field: str, context: Mapping[str, str] | None) -> dict[str, str]:
    if context is None:
        return {}
    if not isinstance(context, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
        raise _invalid(field, "Member must be a map of strings to strings", show=False)
    if any(not k for k in context):
        raise _invalid(f"{field}.key", "Member must have length greater than or equal to 1", show=False)
    if len(canonical_context(dict(context))) > MAX_CONTEXT_BYTES:
        raise _invalid(field, f"Encoded encryption context must be at most {MAX_CONTEXT_BYTES} bytes", show=False)
    return dict(context)


def check_description(description: str) -> str:
    if not isinstance(description, str):
        raise _invalid("description", "Member must be a string")
    check_length("description", description, 0, MAX_DESCRIPTION)
    return description


def check_tags(tags: Iterable[Mapping[str, str]] | Mapping[str, str] | None) -> dict[str, str]:
    """Tags as AWS sends them ([{"TagKey": k, "TagValue": v}]) or as a dict.
    AWS's rules beyond the model: no `aws:` prefix in any case, no key twice
    in one request, at most 50."""
    if tags is None:
        return {}
    if isinstance(tags, Mapping):
        pairs = list(tags.items())
    else:
        try:
            pairs = [(t["TagKey"], t["TagValue"]) for t in tags]
        except (KeyError, TypeError):
            raise _invalid("tags", "Each tag must have TagKey and TagValue") from None
    out: dict[str, str] = {}
    for i, (key, value) in enumerate(pairs, 1):
        if not isinstance(key, str) or not isinstance(value, str):
            raise _invalid(f"tags.{i}.member", "TagKey and TagValue must be strings")
        check_length(f"tags.{i}.member.tagKey", key, 1, 128)
        check_length(f"tags.{i}.member.tagValue", value, 0, 256)
    for key, value in pairs:
        if key.lower().startswith("aws:"):
            raise TagException("Tags beginning with aws: are reserved")
        if key in out:
            raise TagException("Duplicate tag keys")
        out[key] = value
    if len(out) > MAX_TAGS:
        raise TagException("Too many tags")
    return out


#: IAM's quota of tags per user or role
MAX_IAM_TAGS = 50
_IAM_TAG_KEY = re.compile(r"[\w\s.:/=+\-@]{1,128}")
_IAM_TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]{0,256}")


def check_iam_tags(tags: Iterable[Mapping[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """An IAM user's or role's tags, as IAM sends them ([{"Key": k, "Value": v}])
    or as a dict: keys of 1-128 and values of 0-256 letters, digits, spaces
    and `_.:/=+-@`, no key twice whatever its case, none beginning `aws:`."""
    if isinstance(tags, Mapping):
        pairs = list(tags.items())
    else:
        try:
            pairs = [(t["Key"], t["Value"]) for t in tags]
        except (KeyError, TypeError):
            raise ValidationException("Each tag must have Key and Value") from None
    out: dict[str, str] = {}
    for i, (key, value) in enumerate(pairs, 1):
        if not isinstance(key, str) or not _IAM_TAG_KEY.fullmatch(key):
            raise ValidationException(f"1 validation error detected: Value at 'tags.{i}.member.key' failed to "
                                      "satisfy constraint: Member must satisfy regular expression pattern: "
                                      f"{_IAM_TAG_KEY.pattern}")
        if not isinstance(value, str) or not _IAM_TAG_VALUE.fullmatch(value):
            raise ValidationException(f"1 validation error detected: Value at 'tags.{i}.member.value' failed to "
                                      "satisfy constraint: Member must satisfy regular expression pattern: "
                                      f"{_IAM_TAG_VALUE.pattern}")
        if key.lower().startswith("aws:"):
            raise ValidationException("Tag keys beginning with 'aws:' are reserved for AWS use.")
        if key.lower() in {k.lower() for k in out}:
            raise ValidationException("Duplicate tag keys found. Please note that Tag keys are case insensitive.")
        out[key] = value
    if len(out) > MAX_IAM_TAGS:
        raise LimitExceededException(f"Cannot exceed quota for TagsPerUser: {MAX_IAM_TAGS}")
    return out


def check_tag_keys(tag_keys: Iterable[str]) -> list[str]:
    keys = list(tag_keys)
    if not keys:
        raise _invalid("tagKeys", "Member must have length greater than or equal to 1", "[]")
    for i, key in enumerate(keys, 1):
        if not isinstance(key, str):
            raise _invalid(f"tagKeys.{i}.member", "Member must be a string")
        check_length(f"tagKeys.{i}.member", key, 1, 128)
    return keys


ALIAS_DOCS = "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"


def check_alias_name(name: str) -> str:
    """AWS's alias rules beyond the model's pattern (which allows ':'):
    the `alias/` prefix, no ':' and the reserved `alias/aws/` prefix."""
    if not isinstance(name, str):
        raise _invalid("aliasName", "Member must be a string")
    check_length("aliasName", name, 1, 256)
    if not _ALIAS_PATTERN.fullmatch(name):
        raise _invalid("aliasName", f"Member must satisfy regular expression pattern: {ALIAS_PATTERN}", name)
    if not name.startswith("alias/"):
        raise ValidationException(f'Alias must start with the prefix "alias/". Please see {ALIAS_DOCS}')
    if ":" in name:
        raise ValidationException(f"{name} contains invalid characters for an alias")
    if name == "alias/":  # AWS's wording for this one is not known; keyledger's own
        raise ValidationException('An alias name needs at least one character after "alias/"')
    if name.startswith("alias/aws/"):
        raise NotAuthorizedException()
    return name


def check_key_spec_params(key_spec: str | None, number_of_bytes: int | None) -> int:
    if key_spec is None and number_of_bytes is None:
        raise ValidationException("Please specify either number of bytes or key spec.")
    if key_spec is not None and number_of_bytes is not None:
        raise ValidationException("Please specify either number of bytes or key spec.")
    if key_spec is not None:
        check_enum("keySpec", key_spec, DATA_KEY_SPECS)
        return DATA_KEY_SPECS[key_spec]
    return check_range("numberOfBytes", number_of_bytes, 1, 1024)


# -- identifiers --------------------------------------------------------------

def key_arn(region: str, account: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def alias_arn(region: str, account: str, alias_name: str) -> str:
    return f"arn:aws:kms:{region}:{account}:{alias_name}"


def key_material_id(key_id: str, version: int) -> str:
    """The KeyMaterialId of a key version: 64 lowercase hex characters, as
    AWS shows them. A digest of the key id and version only (never of the
    material), so the log's history determines it and it reveals nothing."""
    return hashlib.sha256(f"keyledger key material\0{key_id}\0{version}".encode()).hexdigest()


_KEY_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                          r"|mrk-[0-9a-f]{32}")  # a multi-Region key's id


def is_key_uuid(value: str) -> bool:
    return isinstance(value, str) and _KEY_UUID_RE.fullmatch(value) is not None


#: The operations whose KeyId may name an alias (alias name or alias ARN), as
#: the model's documentation of each KeyId member says ("key ID, key ARN,
#: alias name, or alias ARN"); every other operation takes a key ID or key
#: ARN only and answers an alias with NotFoundException. A test reads the
#: installed botocore's documentation to keep this in step.
ALIAS_OPERATIONS = frozenset({
    "DescribeKey", "Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "Sign",
    "Verify", "GetPublicKey", "DeriveSharedSecret", "Encapsulate", "Decapsulate",
    "SimulatePrincipalPolicy",  # keyledger's own: a what-if names keys as callers do
})


def parse_key_id(value: str, region: str, account: str, *, aliases: bool = True) -> tuple[str, str]:
    """('key', uuid) or ('alias', 'alias/name') for the KeyId forms; with
    `aliases=False` only a key ID or key ARN (an alias is NotFoundException)."""
    if not isinstance(value, str) or not value:
        raise _invalid("keyId", "Member must have length greater than or equal to 1", value or None)
    return _parse_key_id(value, region, account, aliases)


@functools.lru_cache(maxsize=4096)  # pure, and asked for the same few ids on every request
def _parse_key_id(value: str, region: str, account: str, aliases: bool) -> tuple[str, str]:
    check_length("keyId", value, 1, 2048)
    if value.startswith("arn:"):
        parts = value.split(":", 5)
        if len(parts) != 6 or parts[1] != "aws" or parts[2] != "kms":
            raise NotFoundException(f"Invalid arn {value}")
        if parts[3] != region:
            raise NotFoundException(f"Invalid arn {parts[3]}")
        resource = parts[5]
        if resource.startswith("key/"):
            key = resource[4:]
            if not is_key_uuid(key):
                raise NotFoundException(f"Invalid keyId '{key}'")
            if parts[4] != account:
                raise NotFoundException(f"Key '{value}' does not exist")
            return "key", key
        if resource.startswith("alias/") and aliases:
            if parts[4] != account:
                raise NotFoundException(f"Alias {value} is not found.")
            return "alias", resource
        raise NotFoundException(f"Invalid keyId '{value}'")
    if value.startswith("alias/") and aliases:
        return "alias", value
    if not is_key_uuid(value):
        raise NotFoundException(f"Invalid keyId '{value}'")
    return "key", value


# -- state checks -------------------------------------------------------------

def require_exists(state: KeyState | None, arn: str) -> KeyState:
    if state is None or state.state == DELETED:
        raise NotFoundException(f"Key '{arn}' does not exist")
    return state


def require_not_pending(state: KeyState, arn: str) -> None:
    if state.state in (PENDING_DELETION, PENDING_REPLICA_DELETION):
        raise KMSInvalidStateException(f"{arn} is pending deletion.")


def require_not_pending_import(state: KeyState, arn: str) -> None:
    if state.state == PENDING_IMPORT:
        raise KMSInvalidStateException(f"{arn} is pending import.")


def require_enabled(state: KeyState, arn: str) -> None:
    require_not_pending(state, arn)
    require_not_pending_import(state, arn)
    if state.state == DISABLED:
        raise DisabledException(f"{arn} is disabled.")


# -- lifecycle decisions ------------------------------------------------------

def create_key(key_id: str, *, description: str, key_usage: str, key_spec: str, origin: str,
               tags: dict[str, str], material: ev.WrappedMaterial, policy: str) -> list[ev.Event]:
    if len(tags) > MAX_TAGS:
        raise TagException("Too many tags")
    return [ev.KeyCreated(key_id, description, key_usage, key_spec, origin, tags, material, policy)]


#: KeySpec -> the KeyUsage values keyledger implements for it. The model's
#: enums are checked before (ValidationException); a valid value missing
#: here is UnsupportedOperationException. Key types plug in by adding rows.
# the key-spec table (keyledger.keyspecs) says which usages each spec allows
KEY_SPEC_USAGES: dict[str, tuple[str, ...]] = {name: tuple(s.usages) for name, s in keyspecs.SPECS.items()}
ORIGINS = ("AWS_KMS", "EXTERNAL")  # EXTERNAL: imported key material (service/imports.py)
#: the origins of keys in a custom key store (a ledger has none: service/custom_key_stores.py)
CUSTOM_KEY_STORE_ORIGINS = ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE")


def check_xks_key_id(origin: str, custom_key_store_id: str | None, xks_key_id: str | None) -> None:
    """CreateKey's XksKeyId: "required for a KMS key with an Origin value of
    EXTERNAL_KEY_STORE" and "not valid for KMS keys with any other Origin
    value" (AWS documents the rules, not their wording: keyledger's own)."""
    if xks_key_id is not None and origin != "EXTERNAL_KEY_STORE":
        raise ValidationException(f"XksKeyId is valid only for a KMS key with an Origin of EXTERNAL_KEY_STORE, "
                                  f"not {origin}.")
    if origin == "EXTERNAL_KEY_STORE" and custom_key_store_id is not None and xks_key_id is None:
        raise ValidationException("A KMS key with an Origin of EXTERNAL_KEY_STORE needs an XksKeyId.")


def check_create_params(key_usage: str, key_spec: str, origin: str, multi_region: bool) -> None:
    usages = KEY_SPEC_USAGES.get(key_spec)
    if usages is None:
        raise UnsupportedOperationException(f"KeySpec {key_spec} is not supported by keyledger.")
    if key_usage not in usages:
        raise ValidationException(f"KeyUsage {key_usage} is not compatible with KeySpec {key_spec}")
    if origin not in ORIGINS:
        raise UnsupportedOperationException(f"Origin {origin} is not supported by keyledger.")
    if not isinstance(multi_region, bool):
        raise _invalid("multiRegion", "Member must be a boolean", multi_region)


def update_description(state: KeyState, arn: str, description: str) -> list[ev.Event]:
    require_not_pending(state, arn)
    return [ev.KeyDescriptionUpdated(state.key_id, description)]


def enable_key(state: KeyState, arn: str) -> list[ev.Event]:
    require_not_pending(state, arn)
    require_not_pending_import(state, arn)
    return [ev.KeyEnabled(state.key_id)]


def disable_key(state: KeyState, arn: str) -> list[ev.Event]:
    require_not_pending(state, arn)
    require_not_pending_import(state, arn)
    return [ev.KeyDisabled(state.key_id)]


def schedule_deletion(state: KeyState, arn: str, days: int, now: int) -> list[ev.KeyDeletionScheduled]:
    check_range("pendingWindowInDays", days, *PENDING_WINDOW_RANGE)
    if state.state in (PENDING_DELETION, PENDING_REPLICA_DELETION):
        raise KMSInvalidStateException(f"{arn} is pending deletion.")
    return [ev.KeyDeletionScheduled(state.key_id, now + days * DAY_US, days)]


def cancel_deletion(state: KeyState, arn: str) -> list[ev.Event]:
    if state.state not in (PENDING_DELETION, PENDING_REPLICA_DELETION):
        raise KMSInvalidStateException(f"{arn} is not pending deletion.")
    return [ev.KeyDeletionCancelled(state.key_id)]


def tag(state: KeyState, arn: str, tags: dict[str, str]) -> list[ev.Event]:
    require_not_pending(state, arn)
    if len({**state.tags, **tags}) > MAX_TAGS:
        raise TagException("Too many tags")
    return [ev.KeyTagged(state.key_id, tags)]


def untag(state: KeyState, arn: str, tag_keys: list[str]) -> list[ev.Event]:
    require_not_pending(state, arn)
    return [ev.KeyUntagged(state.key_id, tag_keys)]


# -- aliases ------------------------------------------------------------------

def create_alias(name: str, existing: AliasState | None, target: KeyState, arn: str,
                 alias_arn_: str) -> list[ev.Event]:
    if existing is not None:
        raise AlreadyExistsException(f"An alias with the name {alias_arn_} already exists")
    require_not_pending(target, arn)
    return [ev.AliasCreated(name, target.key_id)]


_A_KIND = {"symmetric": "a symmetric", "asymmetric": "an asymmetric", "HMAC": "an HMAC"}


def update_alias(name: str, existing: AliasState | None, current: KeyState | None, target: KeyState, arn: str,
                 alias_arn_: str) -> list[ev.Event]:
    """`current` is the key the alias names now (None if it is gone). AWS
    moves an alias only to a key of the same type and key usage, so code
    that names the alias keeps working."""
    if existing is None:
        raise NotFoundException(f"Alias {alias_arn_} is not found.")
    require_not_pending(target, arn)
    if current is not None:
        if current.key_usage != target.key_usage:
            raise ValidationException(
                f"Alias {name} cannot be changed from a CMK with key usage {current.key_usage} to a CMK with key "
                f"usage {target.key_usage}. The key usage of the current CMK and the new CMK must be the same.")
        was, will = keyspecs.spec(current.key_spec).kind, keyspecs.spec(target.key_spec).kind
        if was != will:
            raise ValidationException(  # keyledger's wording: AWS's is not known
                f"Alias {name} cannot be changed from {_A_KIND[was]} key to {_A_KIND[will]} key. The current key and "
                "the new key must be of the same type (symmetric, asymmetric or HMAC).")
    return [ev.AliasUpdated(name, target.key_id, existing.key_id)]


def delete_alias(name: str, existing: AliasState | None, alias_arn_: str) -> list[ev.Event]:
    if existing is None:
        raise NotFoundException(f"Alias {alias_arn_} is not found.")
    return [ev.AliasDeleted(name, existing.key_id)]


# -- rotation -----------------------------------------------------------------

def enable_rotation(state: KeyState, arn: str, period: int | None) -> list[ev.Event]:
    period = DEFAULT_ROTATION_PERIOD if period is None else period
    check_range("rotationPeriodInDays", period, *ROTATION_PERIOD_RANGE)
    keyspecs.require_rotatable(state.key_spec)
    require_automatic_rotation(state)
    require_enabled(state, arn)
    return [ev.KeyRotationEnabled(state.key_id, period)]


def require_automatic_rotation(state: KeyState) -> None:
    """AWS rotates imported key material only on demand (after a
    NEW_KEY_MATERIAL import), never automatically."""
    if state.origin == "EXTERNAL":
        raise UnsupportedOperationException("")


def disable_rotation(state: KeyState, arn: str) -> list[ev.Event]:
    keyspecs.require_rotatable(state.key_spec)
    require_automatic_rotation(state)
    require_enabled(state, arn)
    return [ev.KeyRotationDisabled(state.key_id)]


def check_on_demand(state: KeyState, arn: str) -> None:
    # AWS's order: a disabled key is DisabledException whatever its spec
    require_enabled(state, arn)
    keyspecs.require_rotatable(state.key_spec)
    if state.origin == "EXTERNAL" and state.pending_rotation is None:
        raise KMSInvalidStateException(f"No available key material pending rotation for the key: {arn}.")
    if state.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS:
        raise LimitExceededException(
            "The on-demand rotations limit has been reached for the given keyId. "
            f"No more on-demand rotations can be performed for this key: {arn}")


def rotate_on_demand(state: KeyState, arn: str, now: int, material: ev.WrappedMaterial) -> list[ev.Event]:
    check_on_demand(state, arn)
    return [ev.KeyRotated(state.key_id, "ON_DEMAND", now, material)]


def due_rotation_dates(state: KeyState, now: int) -> list[int]:
    """Dates of the automatic rotations due by `now`. A key rotates only
    while Enabled; one re-enabled after its date rotates at re-enabling."""
    if state.state != ENABLED or state.next_rotation is None or state.is_replica:
        return []  # a replica rotates with its primary (ReplicaRotations), never by itself
    period = state.rotation_period_days * DAY_US  # type: ignore[operator]
    dates: list[int] = []
    due = state.next_rotation
    while due <= now:
        effective = max(due, state.state_changed)
        dates.append(effective)
        due = effective + period
    return dates


def deletion_due(state: KeyState, now: int) -> bool:
    return state.state == PENDING_DELETION and state.deletion_date is not None and state.deletion_date <= now


def delete_key(state: KeyState) -> list[ev.Event]:
    """The end of the waiting period: aliases go first, then the key."""
    return [*(ev.AliasDeleted(a, state.key_id) for a in state.aliases), ev.KeyDeleted(state.key_id)]


# -- grants and principals ------------------------------------------------------

GRANT_OPERATIONS = (
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
    "ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
    "DeriveSharedSecret", "Encapsulate", "Decapsulate",
)
_PRINCIPAL_RE = re.compile(r"^arn:aws:(iam|sts)::\d{12}:[\w+=,.@/-]+$|^[\w.-]+\.amazonaws\.com$")
_GRANT_NAME_RE = re.compile(r"^[a-zA-Z0-9:/_-]+$")
_IAM_NAME_RE = re.compile(r"^[\w+=,.@-]{1,128}$")


def check_grant_operations(operations: Iterable[str]) -> list[str]:
    ops = list(operations) if not isinstance(operations, str) else [operations]
    if not ops:
        raise _invalid("operations", "Member must have length greater than or equal to 1")
    for op in ops:
        check_enum("operations.member", op, GRANT_OPERATIONS)
    return sorted(set(ops), key=ops.index)


def check_principal_arn(field: str, principal: str) -> None:
    if not isinstance(principal, str) or not _PRINCIPAL_RE.match(principal):
        raise ValidationException(f"{principal!r} is not a valid principal for {field}: expected an IAM ARN")


_GRANT_CONSTRAINTS = ("EncryptionContextEquals", "EncryptionContextSubset", "SourceArn")
#: "The encryption context value in each constraint cannot exceed 384 characters" (CreateGrant)
MAX_CONSTRAINT_VALUE = 384


def check_grant_constraints(constraints: Mapping[str, Any] | None, operations: Iterable[str] = (),
                            ) -> tuple[dict[str, str] | None, dict[str, str] | None, str | None]:
    """A CreateGrant's Constraints as (equals, subset, source_arn): at most one
    of EncryptionContextEquals and EncryptionContextSubset, which (AWS: they
    apply only to operations that take an encryption context; DescribeKey,
    RetireGrant and CreateGrant may ride along) allow none of `operations`
    without one; and SourceArn, an AWS resource's ARN, on any grant (its
    form is the model's to check, in `constraints`)."""
    if constraints is None:
        return None, None, None
    if not isinstance(constraints, Mapping) or set(constraints) - set(_GRANT_CONSTRAINTS):
        raise _invalid("constraints", "Only EncryptionContextEquals, EncryptionContextSubset and SourceArn "
                                      "are allowed")
    if not constraints:
        raise ValidationException("Specify at least one of EncryptionContextEquals, EncryptionContextSubset "
                                  "and SourceArn")
    equals = constraints.get("EncryptionContextEquals")
    subset = constraints.get("EncryptionContextSubset")
    source_arn = constraints.get("SourceArn")
    if equals is not None and subset is not None:
        raise ValidationException("Specify exactly one of EncryptionContextEquals and EncryptionContextSubset")
    refused = [op for op in operations if op in keyspecs.GRANT_OPERATIONS_WITHOUT_CONTEXT]
    if refused and (equals is not None or subset is not None):  # AWS documents the rule, not its wording
        raise ValidationException(f"Encryption context grant constraints are not supported for "
                                  f"{', '.join(refused)}: these operations take no encryption context.")
    checked = tuple(check_context(f"constraints.{name}", context) if context is not None else None
                    for name, context in (("encryptionContextEquals", equals), ("encryptionContextSubset", subset)))
    for context in checked:
        for key, value in (context or {}).items():
            if len(value) > MAX_CONSTRAINT_VALUE:  # AWS documents the limit, not its wording
                raise ValidationException(f"The value of encryption context key {key!r} in a grant constraint has "
                                          f"{len(value)} characters; the limit is {MAX_CONSTRAINT_VALUE}.")
    return checked[0], checked[1], source_arn


def check_grantee(grantee_principal: str | None, grantee_service_principal: str | None,
                  retiring_principal: str | None, retiring_service_principal: str | None,
                  source_arn: str | None) -> None:
    """CreateGrant's parties, as AWS documents them: a grantee principal or a
    grantee service principal, not both; at most one retiring party; and a
    grant to a service principal needs a SourceArn constraint and a retiring
    party. (AWS publishes the rules, not its wording: keyledger's own.) A
    service principal's form is the model's to check, in `constraints`."""
    if (grantee_principal is None) == (grantee_service_principal is None):
        raise ValidationException("You must specify either GranteePrincipal or GranteeServicePrincipal, "
                                  "but not both.")
    if retiring_principal is not None and retiring_service_principal is not None:
        raise ValidationException("You can specify either RetiringPrincipal or RetiringServicePrincipal, "
                                  "but not both.")
    if grantee_principal is not None:
        check_principal_arn("granteePrincipal", grantee_principal)
    else:
        if source_arn is None:
            raise ValidationException("A grant for a GranteeServicePrincipal must have a SourceArn grant "
                                      "constraint.")
        if retiring_principal is None and retiring_service_principal is None:
            raise ValidationException("A grant for a GranteeServicePrincipal must name a RetiringPrincipal or a "
                                      "RetiringServicePrincipal.")
    if retiring_principal is not None:
        check_principal_arn("retiringPrincipal", retiring_principal)


def check_grant_constraints_for_key(state: KeyState, equals: Mapping[str, str] | None,
                                    subset: Mapping[str, str] | None) -> None:
    """Encryption-context constraints only on a symmetric encryption key:
    the operations of asymmetric and HMAC keys take no encryption context."""
    if (equals is not None or subset is not None) and keyspecs.spec(state.key_spec).family != "SYMMETRIC":
        kind = "HMAC" if keyspecs.spec(state.key_spec).family == "HMAC" else "asymmetric"
        raise ValidationException(f"Encryption context grant constraints are not supported with {kind} KMS keys.")


def check_grant_name(name: str) -> None:
    check_length("name", name, 1, 256)
    if not _GRANT_NAME_RE.match(name):
        raise _invalid("name", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$")


def check_iam_name(name: str) -> None:
    if not isinstance(name, str) or not _IAM_NAME_RE.match(name):
        raise ValidationException(f"{name!r} is not a valid IAM name: 1-128 of [A-Za-z0-9+=,.@_-]")


_SESSION_NAME = re.compile(r"[\w+=,.@-]*", re.ASCII)
#: STS's pattern for AssumeRole's ExternalId (2-1224 characters)
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
#: the longest session IAM allows a role (MaxSessionDuration, DurationSeconds)
MAX_SESSION_SECONDS = 43200


def _sts_violation(value: object, member: str, constraint: str) -> ValidationException:
    return ValidationException(f"1 validation error detected: Value '{str(value)[:128]}' at '{member}' failed to "
                               f"satisfy constraint: {constraint}")


def check_session_name(name: str) -> None:
    """AssumeRole's RoleSessionName: 2-64 of [A-Za-z0-9_+=,.@-], worded as STS words it."""
    _check_string(name, "roleSessionName", _SESSION_NAME, 2, 64)


#: IAM's roleDescriptionType: tab, newline, carriage return, printable ASCII and Latin-1 (the model's text)
ROLE_DESCRIPTION = re.compile(r"[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*")


def check_role_description(description: object) -> None:
    """A role's description: at most 1000 of IAM's allowed characters."""
    _check_string(description, "description", ROLE_DESCRIPTION, 0, 1000)


def _check_string(value: object, member: str, pattern: re.Pattern[str], low: int, high: int) -> None:
    """A string member of STS or IAM, its violation worded as they word it."""
    if not isinstance(value, str):
        raise _sts_violation(value, member, "Member must be a string")
    if len(value) < low:
        raise _sts_violation(value, member, f"Member must have length greater than or equal to {low}")
    if len(value) > high:
        raise _sts_violation(value, member, f"Member must have length less than or equal to {high}")
    if not pattern.fullmatch(value):
        raise _sts_violation(value, member, f"Member must satisfy regular expression pattern: {pattern.pattern}")


def check_session_duration(seconds: int, member: str, low: int) -> None:
    """A session length in seconds: `low` (900 for AssumeRole's
    DurationSeconds, 3600 for CreateRole's MaxSessionDuration) to 43200."""
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise _sts_violation(seconds, member, "Member must be an integer")
    if seconds < low:
        raise _sts_violation(seconds, member, f"Member must have value greater than or equal to {low}")
    if seconds > MAX_SESSION_SECONDS:
        raise _sts_violation(seconds, member,
                             f"Member must have value less than or equal to {MAX_SESSION_SECONDS}")


# -- multi-Region keys ------------------------------------------------------------

def require_primary(state: KeyState, arn: str, operation: str) -> None:
    """Operations only a multi-Region primary key takes (ReplicateKey,
    UpdatePrimaryRegion, and the shared rotation settings)."""
    if not state.key_id.startswith(MRK_PREFIX):
        raise UnsupportedOperationException(f"{arn} is not a multi-Region key. {operation} applies only to "
                                            "multi-Region keys.")
    if state.is_replica:
        raise UnsupportedOperationException(f"{arn} is not a multi-region primary key.")


def require_not_replica(state: KeyState, arn: str) -> None:
    """Automatic rotation is a shared property: the primary's to change."""
    if state.is_replica:
        raise UnsupportedOperationException(
            f"{arn} is a multi-Region replica key: its rotation follows its primary key.")


def replicate(state: KeyState, arn: str, replica_scope: str, replica_region: str,
              existing: KeyState | None, existing_arn: str, *, description: str, tags: dict[str, str],
              policy: str, versions: list[ev.ReplicaVersion]) -> list[ev.Event]:
    """ReplicateKey of primary `state` into `replica_scope` (not its own region)."""
    require_primary(state, arn, "ReplicateKey")
    require_not_pending(state, arn)
    if state.state == DISABLED:
        raise DisabledException(f"{arn} is disabled.")
    if replica_scope == state.region:  # AWS's wording for this one is not known; keyledger's own
        raise ValidationException(f"The replica region {replica_region} is the primary key's own region.")
    if existing is not None and existing.state != DELETED:
        raise AlreadyExistsException(f"Key {existing_arn} already exists")
    replicas = sorted({*state.replica_regions, replica_scope})
    rotating = state.rotation_enabled
    return [ev.KeyReplicated(state.key_id, replica_scope, state.region, replicas),
            ev.ReplicaKeyCreated(state.key_id, state.region, replicas, description, state.key_usage,
                                 state.key_spec, state.origin, tags, policy, versions,
                                 state.rotation_period_days if rotating else None,
                                 state.rotation_anchor if rotating else None, state.on_demand_rotations)]


def update_primary_region(state: KeyState, arn: str, new_scope: str, new_region: str,
                          target: KeyState | None) -> list[ev.Event]:
    """UpdatePrimaryRegion of primary `state` to its replica in `new_scope`."""
    require_primary(state, arn, "UpdatePrimaryRegion")
    if new_scope == state.region:  # already the primary there: nothing to change (AWS: a no-op)
        return [ev.PrimaryRegionUpdated(state.key_id, state.region, list(state.replica_regions))]
    if target is None or target.state == DELETED or new_scope not in state.replica_regions:
        raise NotFoundException(f"The multi-Region key {state.key_id} has no replica in {new_region}.")
    for key in (state, target):
        if key.state == DISABLED:
            raise DisabledException(f"{arn} is disabled.")
        if key.state != ENABLED:
            raise KMSInvalidStateException(f"{arn} is {key.state}: both keys must be Enabled.")
    replicas = sorted({*state.replica_regions, state.region} - {new_scope})
    return [ev.PrimaryRegionUpdated(state.key_id, new_scope, replicas)]


def remove_replica(state: KeyState) -> list[ev.Event]:
    """After a replica's KeyDeleted: the set without it."""
    assert state.primary_region is not None
    return [ev.ReplicaKeyRemoved(state.key_id, state.region, state.primary_region,
                                 sorted(set(state.replica_regions) - {state.region}))]
