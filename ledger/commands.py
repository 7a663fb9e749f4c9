"""Decisions: pure functions from (state, request, now) to events.

No IO, no clock, no randomness: the service passes `now` and any fresh
wrapped material in. Each function either returns the events the request
produces or raises the AWS-named error that refuses it. Request validation
lives here too, so the rules and their limits are in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from keyledger import events as ev
from keyledger.crypto import MAX_CONTEXT_BYTES, canonical_context
from keyledger.errors import (
    AlreadyExistsException, DisabledException, InvalidAliasNameException,
    KMSInvalidStateException, LimitExceededException, NotFoundException,
    TagException, UnsupportedOperationException, ValidationException,
)
from keyledger.projections.state import DAY_US, AliasState, KeyState

ENABLED, DISABLED, PENDING_DELETION, DELETED = "Enabled", "Disabled", "PendingDeletion", "Deleted"
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
_ALIAS_RE = re.compile(r"^alias/[a-zA-Z0-9/_-]+$")


# -- validation ---------------------------------------------------------------

def _invalid(field: str, constraint: str) -> ValidationException:
    return ValidationException(
        f"1 validation error detected: Value at '{field}' failed to satisfy constraint: {constraint}")


def check_length(field: str, value: bytes | str, low: int, high: int) -> None:
    if not low <= len(value) <= high:
        raise _invalid(field, f"Member must have length between {low} and {high}, inclusive")


def check_range(field: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(field, f"Member must have value between {low} and {high}, inclusive")


def check_limit(value: int | None, high: int) -> int:
    if value is None:
        return min(100, high)
    check_range("limit", value, 1, high)
    return value


def check_enum(field: str, value: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise _invalid(field, f"Member must satisfy enum value set: [{', '.join(allowed)}]")


def check_bytes(field: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _invalid(field, "Member must be a blob (bytes)")
    return bytes(value)


def check_context(field: str, context: Mapping[str, str] | None) -> dict[str, str]:
    if context is None:
        return {}
    if not isinstance(context, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
        raise _invalid(field, "Member must be a map of strings to strings")
    if any(not k for k in context):
        raise _invalid(field, "Map keys must have length greater than or equal to 1")
    if len(canonical_context(dict(context))) > MAX_CONTEXT_BYTES:
        raise _invalid(field, f"Encoded encryption context must be at most {MAX_CONTEXT_BYTES} bytes")
    return dict(context)


def check_description(description: str) -> str:
    if not isinstance(description, str):
        raise _invalid("description", "Member must be a string")
    check_length("description", description, 0, MAX_DESCRIPTION)
    return description


def check_tags(tags: Iterable[Mapping[str, str]] | Mapping[str, str] | None) -> dict[str, str]:
    """Tags as AWS sends them ([{"TagKey": k, "TagValue": v}]) or as a dict."""
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
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, str):
            raise _invalid("tags", "TagKey and TagValue must be strings")
        check_length("tags.member.tagKey", key, 1, 128)
        check_length("tags.member.tagValue", value, 0, 256)
        if key.startswith("aws:"):
            raise TagException("Tags beginning with aws: are reserved")
        if key in out and out[key] != value:
            raise TagException(f"Duplicate tag key {key!r} with different values")
        out[key] = value
    return out


def check_tag_keys(tag_keys: Iterable[str]) -> list[str]:
    keys = list(tag_keys)
    if not keys:
        raise _invalid("tagKeys", "Member must have length greater than or equal to 1")
    for key in keys:
        if not isinstance(key, str):
            raise _invalid("tagKeys", "Each tag key must be a string")
        check_length("tagKeys.member", key, 1, 128)
    return keys


def check_alias_name(name: str) -> str:
    if not isinstance(name, str):
        raise _invalid("aliasName", "Member must be a string")
    check_length("aliasName", name, 1, 256)
    if not _ALIAS_RE.match(name):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'aliasName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$")
    if name.startswith("alias/aws/") or name == "alias/aws":
        raise InvalidAliasNameException(f"Alias must not begin with 'alias/aws/': {name}")
    return name


def check_key_spec_params(key_spec: str | None, number_of_bytes: int | None) -> int:
    if key_spec is None and number_of_bytes is None:
        raise ValidationException("Please specify either number of bytes or key spec.")
    if key_spec is not None and number_of_bytes is not None:
        raise ValidationException("Please specify either number of bytes or key spec, not both.")
    if key_spec is not None:
        check_enum("keySpec", key_spec, DATA_KEY_SPECS)
        return DATA_KEY_SPECS[key_spec]
    check_range("numberOfBytes", number_of_bytes, 1, 1024)
    return number_of_bytes  # type: ignore[return-value]


# -- identifiers --------------------------------------------------------------

def key_arn(region: str, account: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def alias_arn(region: str, account: str, alias_name: str) -> str:
    return f"arn:aws:kms:{region}:{account}:{alias_name}"


_KEY_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_key_uuid(value: str) -> bool:
    return isinstance(value, str) and _KEY_UUID_RE.fullmatch(value) is not None


def parse_key_id(value: str, region: str, account: str) -> tuple[str, str]:
    """('key', uuid) or ('alias', 'alias/name') for the four KeyId forms."""
    if not isinstance(value, str) or not value:
        raise _invalid("keyId", "Member must have length greater than or equal to 1")
    check_length("keyId", value, 1, 2048)
    if value.startswith("arn:"):
        parts = value.split(":", 5)
        if len(parts) != 6 or parts[1] != "aws" or parts[2] != "kms":
            raise NotFoundException(f"Invalid arn {value}")
        if parts[3] != region or parts[4] != account:
            raise NotFoundException(f"Key '{value}' does not exist")
        value = parts[5]
        if value.startswith("key/"):
            key = value[4:]
            if not is_key_uuid(key):
                raise NotFoundException(f"Invalid keyId {key}")
            return "key", key
        if value.startswith("alias/"):
            return "alias", value
        raise NotFoundException(f"Invalid arn {value}")
    if value.startswith("alias/"):
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
    if state.state == PENDING_DELETION:
        raise KMSInvalidStateException(f"{arn} is pending deletion.")


def require_enabled(state: KeyState, arn: str) -> None:
    require_not_pending(state, arn)
    if state.state == DISABLED:
        raise DisabledException(f"{arn} is disabled.")


# -- lifecycle decisions ------------------------------------------------------

def create_key(key_id: str, *, description: str, key_usage: str, key_spec: str, origin: str,
               tags: dict[str, str], material: ev.WrappedMaterial, policy: str) -> list[ev.Event]:
    if len(tags) > MAX_TAGS:
        raise TagException(f"A key can have at most {MAX_TAGS} tags")
    return [ev.KeyCreated(key_id, description, key_usage, key_spec, origin, tags, material, policy)]


def check_create_params(key_usage: str, key_spec: str, origin: str, multi_region: bool) -> None:
    check_enum("keyUsage", key_usage, ("ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"))
    if key_usage != ENCRYPT_DECRYPT:
        raise UnsupportedOperationException(f"KeyUsage {key_usage} is not supported: only ENCRYPT_DECRYPT keys")
    if key_spec != SYMMETRIC_DEFAULT:
        raise UnsupportedOperationException(f"KeySpec {key_spec} is not supported: only SYMMETRIC_DEFAULT keys")
    check_enum("origin", origin, ("AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"))
    if origin != "AWS_KMS":
        raise UnsupportedOperationException(f"Origin {origin} is not supported: only AWS_KMS")
    if multi_region:
        raise UnsupportedOperationException("Multi-Region keys are not supported")


def update_description(state: KeyState, arn: str, description: str) -> list[ev.Event]:
    require_not_pending(state, arn)
    return [ev.KeyDescriptionUpdated(state.key_id, description)]


def enable_key(state: KeyState, arn: str) -> list[ev.Event]:
    require_not_pending(state, arn)
    return [ev.KeyEnabled(state.key_id)]


def disable_key(state: KeyState, arn: str) -> list[ev.Event]:
    require_not_pending(state, arn)
    return [ev.KeyDisabled(state.key_id)]


def schedule_deletion(state: KeyState, arn: str, days: int, now: int) -> list[ev.Event]:
    check_range("pendingWindowInDays", days, *PENDING_WINDOW_RANGE)
    if state.state == PENDING_DELETION:
        raise KMSInvalidStateException(f"{arn} is pending deletion.")
    return [ev.KeyDeletionScheduled(state.key_id, now + days * DAY_US, days)]


def cancel_deletion(state: KeyState, arn: str) -> list[ev.Event]:
    if state.state != PENDING_DELETION:
        raise KMSInvalidStateException(f"{arn} is not pending deletion.")
    return [ev.KeyDeletionCancelled(state.key_id)]


def tag(state: KeyState, arn: str, tags: dict[str, str]) -> list[ev.Event]:
    require_not_pending(state, arn)
    if len({**state.tags, **tags}) > MAX_TAGS:
        raise TagException(f"A key can have at most {MAX_TAGS} tags")
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


def update_alias(name: str, existing: AliasState | None, target: KeyState, arn: str,
                 alias_arn_: str) -> list[ev.Event]:
    if existing is None:
        raise NotFoundException(f"Alias {alias_arn_} is not found.")
    require_not_pending(target, arn)
    return [ev.AliasUpdated(name, target.key_id, existing.key_id)]


def delete_alias(name: str, existing: AliasState | None, alias_arn_: str) -> list[ev.Event]:
    if existing is None:
        raise NotFoundException(f"Alias {alias_arn_} is not found.")
    return [ev.AliasDeleted(name, existing.key_id)]


# -- rotation -----------------------------------------------------------------

def enable_rotation(state: KeyState, arn: str, period: int | None) -> list[ev.Event]:
    period = DEFAULT_ROTATION_PERIOD if period is None else period
    check_range("rotationPeriodInDays", period, *ROTATION_PERIOD_RANGE)
    require_enabled(state, arn)
    return [ev.KeyRotationEnabled(state.key_id, period)]


def disable_rotation(state: KeyState, arn: str) -> list[ev.Event]:
    require_enabled(state, arn)
    return [ev.KeyRotationDisabled(state.key_id)]


def check_on_demand(state: KeyState, arn: str) -> None:
    require_enabled(state, arn)
    if state.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS:
        raise LimitExceededException(
            f"{arn} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations.")


def rotate_on_demand(state: KeyState, arn: str, now: int, material: ev.WrappedMaterial) -> list[ev.Event]:
    check_on_demand(state, arn)
    return [ev.KeyRotated(state.key_id, "ON_DEMAND", now, material)]


def due_rotation_dates(state: KeyState, now: int) -> list[int]:
    """Dates of the automatic rotations due by `now`. A key rotates only
    while Enabled; one re-enabled after its date rotates at re-enabling."""
    if state.state != ENABLED or state.next_rotation is None:
        return []
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
    "DeriveSharedSecret",
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


def check_grant_constraints(constraints: Mapping[str, object] | None) -> tuple[dict[str, str] | None,
                                                                              dict[str, str] | None]:
    if constraints is None:
        return None, None
    if not isinstance(constraints, Mapping) or set(constraints) - {"EncryptionContextEquals",
                                                                   "EncryptionContextSubset"}:
        raise _invalid("constraints", "Only EncryptionContextEquals and EncryptionContextSubset are allowed")
    if len(constraints) != 1:
        raise ValidationException("Specify exactly one of EncryptionContextEquals and EncryptionContextSubset")
    equals = constraints.get("EncryptionContextEquals")
    subset = constraints.get("EncryptionContextSubset")
    return (check_context("constraints.encryptionContextEquals", equals) if equals is not None else None,
            check_context("constraints.encryptionContextSubset", subset) if subset is not None else None)


def check_grant_name(name: str) -> None:
    check_length("name", name, 1, 256)
    if not _GRANT_NAME_RE.match(name):
        raise _invalid("name", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$")


def check_iam_name(name: str) -> None:
    if not isinstance(name, str) or not _IAM_NAME_RE.match(name):
        raise ValidationException(f"{name!r} is not a valid IAM name: 1-128 of [A-Za-z0-9+=,.@_-]")
