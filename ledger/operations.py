"""The AWS KMS operations keyledger implements, as botocore's model describes them.

One table joins the vendored KMS service model (`kms-2014-11-01.json`,
botocore's, with its documentation stripped) to the `KeyLedger` methods:
an operation is implemented when the service has its snake_case method,
and a request member becomes that method's keyword argument by the same
renaming (`KeyId` -> `key_id`). Both faces are built from it: the HTTP
server decodes a request body into a request document, the CLI builds one
from its options (`keyledger encrypt --key-id ...`), and both turn the
document into the method's arguments with `request_kwargs`. Adding an
operation is its library method plus its model entry.

Only the request's form is checked here (member types, base64, required
members); its meaning (lengths, ranges, enums, key states) is the
library's to judge, so that its refusal is recorded like any other.

The model's documentation (first paragraphs, as plain text) is vendored
apart, in `kms-2014-11-01.docs.json` (`tests/cli/vendor_docs.py` writes it
from the installed botocore); it is only read for help text. Both files
are package data of `keyledger.server`, where the server first vendored the
model; nothing of the server's code is imported.
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import json
import re
from importlib import resources
from typing import Any

from keyledger import constraints
from keyledger.errors import KMSError, UnsupportedOperationException
from keyledger.service import KeyLedger

MODEL_PACKAGE = "keyledger.server"
MODEL_FILE = "kms-2014-11-01.json"
DOCS_FILE = "kms-2014-11-01.docs.json"


class SerializationException(KMSError):
    """A request member of the wrong type (a string where a list goes, bad base64, ...)."""

    code = "SerializationException"


# -- the model ------------------------------------------------------------------

def load_model(file: str = MODEL_FILE) -> dict[str, Any]:
    """A vendored model: KMS's by default (the parameter store's SSM model is `ssm-2014-11-06.json`)."""
    model: dict[str, Any] = json.loads(resources.files(MODEL_PACKAGE).joinpath(file).read_bytes())
    return model


MODEL = load_model()
SHAPES: dict[str, dict[str, Any]] = MODEL["shapes"]


@functools.cache
def documentation() -> dict[str, dict[str, str]]:
    """Operation name -> {"": the operation's first paragraph, member: the
    member's first paragraph}, as plain text (empty if the file is absent)."""
    try:
        docs: dict[str, dict[str, str]] = json.loads(resources.files(MODEL_PACKAGE).joinpath(DOCS_FILE).read_bytes())
    except FileNotFoundError:
        return {}
    return docs


_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    """`GenerateDataKeyWithoutPlaintext` -> `generate_data_key_without_plaintext`."""
    return _SNAKE.sub("_", name).lower()


def kebab(name: str) -> str:
    """The AWS CLI's name of an operation or member: `ReEncrypt` -> `re-encrypt`."""
    return snake(name).replace("_", "-")


def camel(name: str) -> str:
    """How AWS names a member in a validation message: `KeyId` -> `keyId`."""
    return name[:1].lower() + name[1:]


class Operation:
    """One operation keyledger implements: the model's shapes joined to the
    library method that implements it."""

    __slots__ = ("name", "method", "members", "required", "has_output", "shapes")

    def __init__(self, name: str, method: str, members: dict[str, tuple[str, str | None]],
                 required: tuple[str, ...], has_output: bool,
                 shapes: dict[str, dict[str, Any]] | None = None) -> None:
        self.name, self.method = name, method
        self.members = members  # wire name -> (shape name, kwarg or None if the library lacks it)
        self.required = required  # wire names that must be present (the model's and the library's)
        self.has_output = has_output
        self.shapes = SHAPES if shapes is None else shapes  # the model's shapes (KMS's unless given)

    def __repr__(self) -> str:
        return f"Operation({self.name!r})"


def build_operations(ledger_class: type = KeyLedger, model: dict[str, Any] | None = None) -> dict[str, Operation]:
    """Every operation of `model` (KMS's by default) that `ledger_class` implements."""
    model = MODEL if model is None else model
    shapes = model["shapes"]
    found = {}
    for name, op in model["operations"].items():
        method = getattr(ledger_class, snake(name), None)
        if not callable(method):
            continue
        params = inspect.signature(method).parameters
        accepted = {p for p in params if p != "self"}
        needed = {p for p, spec in params.items()
                  if p != "self" and spec.default is inspect.Parameter.empty
                  and spec.kind in (spec.POSITIONAL_OR_KEYWORD, spec.KEYWORD_ONLY)}
        shape = shapes[op["input"]["shape"]] if "input" in op else {"members": {}}
        members = {m: (spec["shape"], snake(m) if snake(m) in accepted else None)
                   for m, spec in shape["members"].items()}
        # the model's required members, and those the library cannot do without
        model_required = list(shape.get("required", ()))
        required = model_required + [m for m, (_, kw) in members.items() if kw in needed and m not in model_required]
        unmapped = needed - {kw for _, kw in members.values()}
        if unmapped:  # a library argument with no wire member: a bug, found at import
            raise RuntimeError(f"{name}: no request member for {sorted(unmapped)}")
        found[name] = Operation(name, snake(name), members, tuple(required), "output" in op, shapes)
    return found


OPERATIONS = build_operations()


# -- request documents -> library arguments ---------------------------------------

def _mistyped(path: str, expected: str) -> SerializationException:
    return SerializationException(f"Value at '{path}' must be {expected}")


def coerce(shape_name: str, value: Any, path: str, shapes: dict[str, dict[str, Any]] | None = None) -> Any:
    """The library's form of a JSON value, after checking its type (against `shapes`, KMS's by default)."""
    shapes = SHAPES if shapes is None else shapes
    shape = shapes[shape_name]
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
        return [coerce(member, v, f"{path}.member", shapes) for v in value]
    if kind == "map":
        if not isinstance(value, dict):
            raise _mistyped(path, "a map")
        val_shape = shape["value"]["shape"]
        return {k: coerce(val_shape, v, f"{path}.{k}"[:200], shapes) for k, v in value.items()}
    if kind == "structure":
        if not isinstance(value, dict):
            raise _mistyped(path, "a structure")
        out = {}
        for name, spec in shape["members"].items():
            if value.get(name) is not None:
                out[name] = coerce(spec["shape"], value[name], f"{path}.{camel(name)}", shapes)
        missing = [n for n in shape.get("required", ()) if n not in out]
        if missing:
            raise constraints.missing_members([f"{path}.{camel(n)}" for n in missing])
        return out
    raise SerializationException(f"Value at '{path}' has a type this server cannot read")


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
        value = coerce(shape, value, camel(name), op.shapes)
        if kwarg is None:
            if value is False:
                continue
            raise UnsupportedOperationException(f"{name} is not supported by keyledger for {op.name}.")
        kwargs[kwarg] = value
    missing = [camel(m) for m in op.required if document.get(m) is None]
    if missing:
        raise constraints.missing_members(missing)
    return kwargs
