"""The request constraints of botocore's KMS model, checked as AWS checks them.

AWS validates a request's members against the service model (lengths,
ranges, enums, patterns, required members) before it looks at any key, and
answers every violation at once in one `ValidationException`:

    2 validation errors detected: Value '0' at 'numberOfBytes' failed to
    satisfy constraint: Member must have value greater than or equal to 1;
    Value 'X' at 'keySpec' failed to satisfy constraint: Member must satisfy
    enum value set: [AES_256, AES_128]

This module reads the constraints from the vendored model (package data of
`keyledger.server`, as `keyledger.operations` reads it; no server code is
imported) and `validating(KeyLedger)` puts the check in front of every
method that implements a model operation, so a new operation is checked
the moment it exists. A refused request is still one record in the log
(the check runs as the body of the operation's write).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from keyledger.errors import ValidationException

MODEL_PACKAGE = "keyledger.server"
MODEL_FILE = "kms-2014-11-01.json"

_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

#: Members AWS requires of an operation although the model marks them
#: optional, with AWS's own sentence for their absence.
REQUIRED_BY_OPERATION: dict[tuple[str, str], str] = {
    ("GenerateRandom", "NumberOfBytes"): "NumberOfBytes is required.",
}


@functools.cache
def model() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(resources.files(MODEL_PACKAGE).joinpath(MODEL_FILE).read_bytes())
    return found


def snake(name: str) -> str:
    return _SNAKE.sub("_", name).lower()


def camel(name: str) -> str:
    """How AWS names a member in a validation message: `KeyId` -> `keyId`."""
    return name[:1].lower() + name[1:]


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_shown(v)}" for k, v in value.items()) + "}"
    return str(value)


def violation(path: str, value: Any, constraint: str, *, show: bool = True) -> str:
    """One violation in AWS's words; `show=False` leaves the value out, as
    AWS does for blobs and sensitive members (plaintext never reaches a message)."""
    if value is None:
        return f"Value null at '{path}' failed to satisfy constraint: {constraint}"
    if not show:
        return f"Value at '{path}' failed to satisfy constraint: {constraint}"
    return f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: {constraint}"


def invalid(found: list[str]) -> ValidationException:
    n = len(found)
    return ValidationException(f"{n} validation error{'s' if n > 1 else ''} detected: {'; '.join(found)}")


def missing_members(paths: list[str]) -> ValidationException:
    """Required members left out (null), as AWS words it."""
    return invalid([violation(p, None, "Member must not be null") for p in paths])


def _size(kind: str, value: Any) -> int | None:
    if kind in ("string", "blob", "list") and hasattr(value, "__len__"):
        return len(value)
    return None


#: The order AWS lists an enum's values in its message, where it was seen
#: (responses recorded against AWS: LocalStack's KMS snapshots, 2023-2024).
#: It is not the model's order; an order is used only while its values are
#: exactly the model's, so a value AWS adds later never goes missing.
AWS_ENUM_ORDER = {
    "MacAlgorithmSpec": ("HMAC_SHA_384", "HMAC_SHA_256", "HMAC_SHA_224", "HMAC_SHA_512"),
}


def enum_listed(shape_name: str, values: list[str]) -> list[str] | tuple[str, ...]:
    seen = AWS_ENUM_ORDER.get(shape_name)
    return seen if seen is not None and sorted(seen) == sorted(values) else values


def shape_violations(shape_name: str, value: Any, path: str, found: list[str]) -> None:
    """Append the violations of `value` against a model shape."""
    shapes = model()["shapes"]
    shape = shapes[shape_name]
    kind = shape["type"]
    show = kind not in ("blob", "structure") and not shape.get("sensitive", False)
    if kind == "list" and isinstance(value, Mapping):  # the library's {TagKey: TagValue} form of a tag list
        value = _pairs(shapes[shape["member"]["shape"]], value)
    size = _size(kind, value)
    if size is not None:
        if "min" in shape and size < shape["min"]:
            found.append(violation(path, value, f"Member must have length greater than or equal to {shape['min']}",
                                   show=show))
        elif "max" in shape and size > shape["max"]:
            found.append(violation(path, value, f"Member must have length less than or equal to {shape['max']}",
                                   show=show))
    if kind in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        if "min" in shape and value < shape["min"]:
            found.append(violation(path, value, f"Member must have value greater than or equal to {shape['min']}"))
        elif "max" in shape and value > shape["max"]:
            found.append(violation(path, value, f"Member must have value less than or equal to {shape['max']}"))
    if kind == "string" and isinstance(value, str):
        if "enum" in shape and value not in shape["enum"]:
            found.append(violation(path, value, "Member must satisfy enum value set: [" +
                                   ", ".join(enum_listed(shape_name, shape["enum"])) + "]", show=show))
        pattern = shape.get("pattern")
        if pattern and _regex(pattern).fullmatch(value) is None:
            found.append(violation(path, value, f"Member must satisfy regular expression pattern: {pattern}",
                                   show=show))
    if kind == "list" and isinstance(value, (list, tuple)):
        member = shape["member"]["shape"]
        for i, item in enumerate(value, 1):
            shape_violations(member, item, f"{path}.{i}.member", found)
    if kind == "map" and isinstance(value, Mapping):
        for k, v in value.items():
            shape_violations(shape["key"]["shape"], k, f"{path}.key", found)
            shape_violations(shape["value"]["shape"], v, f"{path}.value", found)
    if kind == "structure" and isinstance(value, Mapping):
        members = shape["members"]
        for name in shape.get("required", ()):
            if value.get(name) is None:
                found.append(violation(f"{path}.{camel(name)}", None, "Member must not be null"))
        for name, spec in members.items():
            if value.get(name) is not None:
                shape_violations(spec["shape"], value[name], f"{path}.{camel(name)}", found)


def _pairs(struct: dict[str, Any], mapping: Mapping[Any, Any]) -> list[dict[str, Any]]:
    names = list(struct.get("members", {}))
    if len(names) != 2:
        return list(mapping)
    return [{names[0]: k, names[1]: v} for k, v in mapping.items()]


@functools.cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def violations(operation: str, members: Mapping[str, Any]) -> list[str]:
    """Every violation of a request (wire member name -> value, None for absent)."""
    op = model()["operations"][operation]
    if "input" not in op:
        return []
    shape = model()["shapes"][op["input"]["shape"]]
    found: list[str] = []
    required = shape.get("required", ())
    for name, spec in shape["members"].items():
        value = members.get(name)
        if value is None:
            if name in required:
                found.append(violation(camel(name), None, "Member must not be null"))
            continue
        shape_violations(spec["shape"], value, camel(name), found)
    return found


# -- the fast "is it valid?" answer ---------------------------------------------
#
# Walking the model per request (`shape_violations`: dict lookups, f-strings
# for paths, `_size`) costs about a tenth of an embedded Encrypt, to find
# nothing in almost every call. `valid(operation)` is the same rules compiled
# once per shape into a predicate that says only whether a value has no
# violation; the walk above runs only when it says no, and so stays the one
# place AWS's words are built. tests/ledger/test_constraints_compiled.py holds
# the two to agreement over random values of every input shape.

Predicate = Callable[[Any], bool]


def _always(_value: Any) -> bool:
    return True


def _compiled(shape_name: str, made: dict[str, Predicate]) -> Predicate:
    """A predicate for one shape: True exactly when `shape_violations` would
    find nothing (shapes may be recursive: `made` ties the knot)."""
    if shape_name in made:
        return made[shape_name]
    slot: list[Predicate] = []
    made[shape_name] = lambda value: slot[0](value)  # a forward reference while this shape compiles
    shape = model()["shapes"][shape_name]
    kind = shape["type"]
    lo, hi = shape.get("min"), shape.get("max")
    test: Predicate
    if kind in ("string", "blob", "list"):
        enum = frozenset(shape["enum"]) if kind == "string" and "enum" in shape else None
        pattern = _regex(shape["pattern"]).fullmatch if kind == "string" and shape.get("pattern") else None
        member = _compiled(shape["member"]["shape"], made) if kind == "list" else None
        entry = model()["shapes"][shape["member"]["shape"]] if kind == "list" else {}

        def test(value: Any) -> bool:
            if member is not None and isinstance(value, Mapping):
                value = _pairs(entry, value)  # the library's {TagKey: TagValue} form of a tag list
            if hasattr(value, "__len__"):
                n = len(value)
                if lo is not None and n < lo or hi is not None and n > hi:
                    return False
            if isinstance(value, str):
                if enum is not None and value not in enum:
                    return False
                if pattern is not None and pattern(value) is None:
                    return False
            if member is not None and isinstance(value, (list, tuple)):
                return all(member(item) for item in value)
            return True
    elif kind in ("integer", "long"):
        def test(value: Any) -> bool:
            if isinstance(value, int) and not isinstance(value, bool):
                return not (lo is not None and value < lo or hi is not None and value > hi)
            return True
    elif kind == "map":
        key, val = _compiled(shape["key"]["shape"], made), _compiled(shape["value"]["shape"], made)

        def test(value: Any) -> bool:
            if isinstance(value, Mapping):
                return all(key(k) and val(v) for k, v in value.items())
            return True
    elif kind == "structure":
        test = _structure(shape, made)
    else:
        test = _always
    slot.append(test)
    made[shape_name] = test
    return test


def _structure(shape: dict[str, Any], made: dict[str, Predicate]) -> Predicate:
    required = tuple(shape.get("required", ()))
    members = tuple((name, _compiled(spec["shape"], made)) for name, spec in shape["members"].items())

    def test(value: Any) -> bool:
        if not isinstance(value, Mapping):
            return True
        get = value.get
        for name in required:
            if get(name) is None:
                return False
        for name, member in members:
            v = get(name)
            if v is not None and not member(v):
                return False
        return True
    return test


@functools.cache
def valid(operation: str) -> Predicate:
    """Whether a request (wire member name -> value, None for absent) has no
    violation of the model: the compiled form of `violations(...) == []`."""
    op = model()["operations"][operation]
    if "input" not in op:
        return _always
    return _structure(model()["shapes"][op["input"]["shape"]], {})


def check(operation: str, members: Mapping[str, Any]) -> None:
    """Raise AWS's ValidationException for a request that breaks the model."""
    for (op, name), sentence in REQUIRED_BY_OPERATION.items():
        if op == operation and members.get(name) is None:
            raise ValidationException(sentence)
    if valid(operation)(members):
        return
    found = violations(operation, members)
    if found:
        raise invalid(found)


def _wire_members(operation: str) -> dict[str, str]:
    """kwarg -> wire member name for an operation's input shape."""
    op = model()["operations"][operation]
    if "input" not in op:
        return {}
    return {snake(m): m for m in model()["shapes"][op["input"]["shape"]]["members"]}


def given_arguments(signature: inspect.Signature) -> Callable[[tuple[Any, ...], dict[str, Any]],
                                                              dict[str, Any] | None]:
    """A fast `signature.bind(self, *args, **kwargs).arguments` (without
    self) for the plain methods of the service: positional-or-keyword and
    keyword-only parameters. It answers None whenever it is not sure (a
    *args or **kwargs parameter, too many positionals, an unknown or repeated
    name, a missing required argument) and the caller then asks `bind`,
    which either binds or raises Python's TypeError. `inspect.Signature.bind`
    costs about 4% of an embedded Encrypt."""
    params = list(signature.parameters.values())[1:]  # after self
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    positional = tuple(p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = frozenset(p.name for p in params)
    required = frozenset(p.name for p in params if p.default is inspect.Parameter.empty)
    plain = all(p.kind in kinds for p in params) and \
        positional == tuple(p.name for p in params[:len(positional)])

    def given(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if not plain or len(args) > len(positional):
            return None
        out = dict(zip(positional, args))
        for name in kwargs:
            if name in out or name not in names:
                return None
        out.update(kwargs)
        return out if required <= out.keys() else None
    return given


def _checked(operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(method)
    wire = _wire_members(operation)
    fast = given_arguments(signature)

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = fast(args, kwargs)
        if arguments is None:
            try:
                arguments = signature.bind(self, *args, **kwargs).arguments
            except TypeError:
                return method(self, *args, **kwargs)  # Python's own error for a wrong call
        members = {wire[k]: v for k, v in arguments.items() if k in wire}
        try:
            check(operation, members)
        except ValidationException as caught:
            error = caught  # `caught` is unbound when the except block ends

            def refuse(_req: Any) -> None:
                raise error
            hint = members.get("KeyId") or members.get("TargetKeyId") or members.get("DestinationKeyId")
            return self._run(operation, refuse, key_hint=hint if isinstance(hint, str) else None)
        return method(self, *args, **kwargs)

    call.__wrapped_operation__ = operation  # type: ignore[attr-defined]
    return call


def validating(cls: type) -> type:
    """`cls` with the model's input check in front of every method that
    implements a model operation (its snake_case name). Idempotent."""
    for operation in model()["operations"]:
        name = snake(operation)
        method = cls.__dict__.get(name) or getattr(cls, name, None)
        if callable(method) and not hasattr(method, "__wrapped_operation__"):
            setattr(cls, name, _checked(operation, method))
    return cls
