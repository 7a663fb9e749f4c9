"""The AWS KMS JSON 1.1 wire protocol: which operation, what it was given,
and what goes back.

The shapes are botocore's KMS service model, vendored with its documentation
stripped (`kms-2014-11-01.json`), so what the server accepts does not drift
with whatever botocore happens to be installed; `tests/server` checks the
copy against the installed botocore. An operation is served when
`ledger.KeyLedger` has its snake_case method; the request members become that
method's keyword arguments by the same renaming (`KeyId` -> `key_id`).

Only the protocol is checked here (JSON, member types, base64, required
members); the request's meaning (lengths, ranges, enums, key states) is the
library's to judge, so that its refusal is recorded in the log like any
other. Nothing here does IO.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import re
from datetime import datetime
from importlib import resources
from typing import Any

import msgspec

from keyledger.errors import KMSError, UnsupportedOperationException, ValidationException
from keyledger.service import KeyLedger

TARGET_PREFIX = "TrentService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MODEL_FILE = "kms-2014-11-01.json"


# -- the protocol's own errors (the library's are in ledger.errors) ------------

class SerializationException(KMSError):
    code = "SerializationException"


class UnknownOperationException(KMSError):
    code = "UnknownOperationException"


class IncompleteSignatureException(KMSError):
    code = "IncompleteSignatureException"


class InvalidSignatureException(KMSError):
    code = "InvalidSignatureException"


class UnrecognizedClientException(KMSError):
    code = "UnrecognizedClientException"


class RequestTooLargeException(KMSError):
    code = "ValidationException"
    http_status = 413


# -- the model ------------------------------------------------------------------

def load_model() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath(MODEL_FILE).read_bytes())


MODEL = load_model()
SHAPES: dict[str, dict[str, Any]] = MODEL["shapes"]

_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    """`GenerateDataKeyWithoutPlaintext` -> `generate_data_key_without_plaintext`."""
    return _SNAKE.sub("_", name).lower()


def camel(name: str) -> str:
    """How AWS names a member in a validation message: `KeyId` -> `keyId`."""
    return name[:1].lower() + name[1:]


class Operation:
    """One operation the server can run: the model's shapes joined to the
    library method that implements it."""

    __slots__ = ("name", "method", "members", "required", "has_output")

    def __init__(self, name: str, method: str, members: dict[str, tuple[str, str | None]],
                 required: tuple[str, ...], has_output: bool) -> None:
        self.name, self.method = name, method
        self.members = members  # wire name -> (shape name, kwarg or None if the library lacks it)
        self.required = required  # wire names that must be present
        self.has_output = has_output

    def __repr__(self) -> str:
        return f"Operation({self.name!r})"


def build_operations(ledger_class: type = KeyLedger) -> dict[str, Operation]:
    """Every model operation that `ledger_class` implements."""
    found = {}
    for name, op in MODEL["operations"].items():
        method = getattr(ledger_class, snake(name), None)
        if not callable(method):
            continue
        params = inspect.signature(method).parameters
        accepted = {p for p in params if p != "self"}
        needed = {p for p, spec in params.items()
                  if p != "self" and spec.default is inspect.Parameter.empty
                  and spec.kind in (spec.POSITIONAL_OR_KEYWORD, spec.KEYWORD_ONLY)}
        shape = SHAPES[op["input"]["shape"]] if "input" in op else {"members": {}}
        members = {m: (spec["shape"], snake(m) if snake(m) in accepted else None)
                   for m, spec in shape["members"].items()}
        # the model's required members, and those the library cannot do without
        required = [m for m in shape.get("required", ())]
        required += [m for m, (_, kw) in members.items() if kw in needed and m not in required]
        unmapped = needed - {kw for _, kw in members.values()}
        if unmapped:  # a library argument with no wire member: a bug, found at import
            raise RuntimeError(f"{name}: no request member for {sorted(unmapped)}")
        found[name] = Operation(name, snake(name), members, tuple(required), "output" in op)
    return found


OPERATIONS = build_operations()


def operation_for(target: str | None) -> Operation:
    """The operation an `X-Amz-Target` header names."""
    if not target:
        raise UnknownOperationException("The X-Amz-Target header is missing: a KMS request names its "
                                        f"operation as {TARGET_PREFIX}<Operation>.")
    if not target.startswith(TARGET_PREFIX):
        raise UnknownOperationException(f"Unknown operation {target}"[:200])
    name = target[len(TARGET_PREFIX):]
    op = OPERATIONS.get(name)
    if op is None:
        if name in MODEL["operations"]:
            raise UnsupportedOperationException(f"{name} is not supported by keyledger.")
        raise UnknownOperationException(f"Unknown operation {target}"[:200])
    return op


_OPERATION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")


def operation_name(target: str | None) -> str:
    """A safe name for the log: the target's operation if it looks like one."""
    if target and target.startswith(TARGET_PREFIX):
        name = target[len(TARGET_PREFIX):]
        if _OPERATION_NAME.match(name):
            return name
    return "Unknown"


# -- requests -------------------------------------------------------------------

_json_decoder = msgspec.json.Decoder()


def _mistyped(path: str, expected: str) -> SerializationException:
    return SerializationException(f"Value at '{path}' must be {expected}")


def _coerce(shape_name: str, value: Any, path: str) -> Any:
    """The library's form of a JSON value, after checking its type."""
    shape = SHAPES[shape_name]
    kind = shape["type"]
    if kind == "string":
        if not isinstance(value, str):
            raise _mistyped(path, "a string")
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool):
            raise _mistyped(path, "an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise _mistyped(path, "an integer")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _mistyped(path, "a boolean")
        return value
    if kind == "blob":
        if not isinstance(value, str):
            raise _mistyped(path, "a base64-encoded string")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SerializationException(f"Value at '{path}' is not valid base64") from None
    if kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _mistyped(path, "a number")
        return value
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _mistyped(path, "a timestamp (seconds since the epoch)")
        return value
    if kind == "list":
        if not isinstance(value, list):
            raise _mistyped(path, "a list")
        member = shape["member"]["shape"]
        return [_coerce(member, v, f"{path}.member") for v in value]
    if kind == "map":
        if not isinstance(value, dict):
            raise _mistyped(path, "a map")
        val_shape = shape["value"]["shape"]
        return {k: _coerce(val_shape, v, f"{path}.{k}"[:200]) for k, v in value.items()}
    if kind == "structure":
        if not isinstance(value, dict):
            raise _mistyped(path, "a structure")
        out = {}
        for name, spec in shape["members"].items():
            if value.get(name) is not None:
                out[name] = _coerce(spec["shape"], value[name], f"{path}.{camel(name)}")
        missing = [n for n in shape.get("required", ()) if n not in out]
        if missing:
            raise _missing([f"{path}.{camel(n)}" for n in missing])
        return out
    raise SerializationException(f"Value at '{path}' has a type this server cannot read")


def _missing(paths: list[str]) -> ValidationException:
    n = len(paths)
    detail = "; ".join(f"Value null at '{p}' failed to satisfy constraint: Member must not be null"
                       for p in paths)
    return ValidationException(f"{n} validation error{'s' if n > 1 else ''} detected: {detail}")


def decode_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body (an empty body is `{}`)."""
    if not body.strip():
        return {}
    try:
        value = _json_decoder.decode(body)
    except msgspec.DecodeError:
        raise SerializationException("The request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise SerializationException("The request body must be a JSON object")
    return value


def request_kwargs(op: Operation, document: dict[str, Any]) -> dict[str, Any]:
    """The library method's keyword arguments for a request document.

    Unknown members are ignored, as AWS does. A member the model has but the
    library does not implement is refused unless it is absent, null or false
    (`DryRun: false`), so that no request is silently run other than asked.
    """
    kwargs: dict[str, Any] = {}
    for name, value in document.items():
        spec = op.members.get(name)
        if spec is None or value is None:
            continue
        shape, kwarg = spec
        value = _coerce(shape, value, camel(name))
        if kwarg is None:
            if value is False:
                continue
            raise UnsupportedOperationException(f"{name} is not supported by keyledger for {op.name}.")
        kwargs[kwarg] = value
    missing = [camel(m) for m in op.required if document.get(m) is None]
    if missing:
        raise _missing(missing)
    return kwargs


def key_hint(document: Any) -> str | None:
    """The KeyId a request named, for the access log (never a secret)."""
    if isinstance(document, dict):
        for name in ("KeyId", "DestinationKeyId", "TargetKeyId", "AliasName"):
            value = document.get(name)
            if isinstance(value, str):
                return value[:256]
    return None


# -- responses ------------------------------------------------------------------

_json_encoder = msgspec.json.Encoder()


def _wire(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    if isinstance(value, datetime):  # the JSON protocol's timestamps: epoch seconds
        return round(value.timestamp(), 3)
    return value


def encode_response(response: Any) -> bytes:
    """The wire JSON of a library response: PascalCase members, base64 blobs,
    epoch-second timestamps, absent (never null) optional members. An
    operation without output answers with an empty body, as AWS does."""
    if response is None:
        return b""
    return _json_encoder.encode(_wire(msgspec.to_builtins(response, builtin_types=(datetime,))))


def encode_error(error: KMSError) -> bytes:
    return _json_encoder.encode({"__type": error.code, "message": error.message})
