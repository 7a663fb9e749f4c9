"""The AWS CLI's parameter syntax, for every kind of member the model has.

Blobs: `fileb://PATH` is the file's raw bytes; `file://PATH` its text. A
plaintext given literally is its UTF-8 bytes; any other blob (a ciphertext)
given literally is base64. Maps (encryption contexts) are the shorthand
`k=v,k2=v2` or a JSON object. Lists are space-separated values or a JSON
list. Structures are the AWS CLI's shorthand (`Name=value,Map={k=v,...}`) or
a JSON object, and a list of structures is several of them
(`TagKey=k,TagValue=v TagKey=k2,TagValue=v2`) or a JSON list. Every value
may come from a file (`file://PATH`). Anything malformed is a usage error
(exit 2) that never echoes the value back, since it may be secret.

`wire_value` turns one option's value into its member of the request
document (blobs as base64, as on the wire), which `keyledger.operations`
then maps to the library's arguments exactly as for an HTTP request.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import Any

import click

from keyledger.operations import SHAPES, snake

FILEB, FILE = "fileb://", "file://"


def _read(param: str, path: str, binary: bool) -> bytes | str:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"unable to load paramfile {path}: {exc.strerror}", param_hint=param) from None
    if binary:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text (use fileb:// for binary files)",
                                 param_hint=param) from None


def _text(param: str, value: str) -> str:
    """The value, or the text of the file:// it names."""
    if value.startswith(FILE):
        return _read(param, value[len(FILE):], binary=False)  # type: ignore[return-value]
    return value


def text(param: str, value: str | None) -> str | None:
    """A string parameter that may be long (--policy): file:// text or the literal value."""
    return None if value is None else _text(param, value)


def plaintext_blob(param: str, value: str | None) -> bytes | None:
    """--plaintext: fileb:// bytes, file:// text, or the literal text."""
    if value is None:
        return None
    if value.startswith(FILEB):
        return _read(param, value[len(FILEB):], binary=True)  # type: ignore[return-value]
    return _text(param, value).encode("utf-8")


def base64_blob(param: str, value: str | None) -> bytes | None:
    """--ciphertext-blob: fileb:// bytes, or base64 text (literal or file://)."""
    if value is None:
        return None
    if value.startswith(FILEB):
        return _read(param, value[len(FILEB):], binary=True)  # type: ignore[return-value]
    text = "".join(_text(param, value).split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise click.BadParameter("invalid base64 (give fileb://PATH for a binary file)",
                                 param_hint=param) from None


def _json(param: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"invalid JSON: {exc.msg} at position {exc.pos}", param_hint=param) from None


def _shorthand(param: str, text: str) -> dict[str, str]:
    """`k=v,k2=v2`: keys and values stripped; a value may contain '='."""
    out: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise click.BadParameter("expected key=value[,key=value...] or a JSON object", param_hint=param)
        if key in out:
            raise click.BadParameter(f"the key {key!r} is given twice", param_hint=param)
        out[key] = value
    return out


def string_map(param: str, value: str | None) -> dict[str, str] | None:
    """--encryption-context: `k=v,k2=v2`, a JSON object, or file:// of either."""
    if value is None:
        return None
    text = _text(param, value).strip()
    if text.startswith("{"):
        data = _json(param, text)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise click.BadParameter("expected a JSON object of strings", param_hint=param)
        return data
    return _shorthand(param, text)


def _noun(shape_name: str) -> str:
    """`Tag` -> "tag", `GrantConstraints` -> "grant constraints": for messages."""
    return snake(shape_name).replace("_", " ")


def _split_top(text: str) -> list[str]:
    """`a=1,b={x=1,y=2},c=[p,q]` -> its top-level comma-separated items."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


_BRACED = re.compile(r"^\{(.*)\}$", re.S)
_BRACKETED = re.compile(r"^\[(.*)\]$", re.S)


def _shorthand_value(param: str, shape_name: str, name: str, text: str) -> Any:
    """One member's value in the shorthand, by its shape."""
    shape = SHAPES[shape_name]
    kind = shape["type"]
    if kind == "map":
        braced = _BRACED.match(text)
        if braced is None:
            raise click.BadParameter(f"{name} must be a map: {name}={{k=v,...}}", param_hint=param)
        return _shorthand(param, braced.group(1)) if braced.group(1).strip() else {}
    if kind == "structure":
        braced = _BRACED.match(text)
        if braced is None:
            raise click.BadParameter(f"{name} must be a structure: {name}={{Member=value,...}}", param_hint=param)
        return _structure_shorthand(param, shape_name, braced.group(1))
    if kind == "list":
        bracketed = _BRACKETED.match(text)
        items = _split_top(bracketed.group(1)) if bracketed else [text]
        member = shape["member"]["shape"]
        return [_shorthand_value(param, member, name, item.strip()) for item in items if item.strip()]
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise click.BadParameter(f"{name} must be an integer", param_hint=param) from None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise click.BadParameter(f"{name} must be true or false", param_hint=param)
        return text.lower() == "true"
    if text.startswith(("{", "[")):
        raise click.BadParameter(f"{name} must be a single value", param_hint=param)
    return text


def _structure_shorthand(param: str, shape_name: str, text: str) -> dict[str, Any]:
    """`Name=value,Other={k=v}`: each member once, each a member of the shape."""
    members = SHAPES[shape_name]["members"]
    out: dict[str, Any] = {}
    for item in _split_top(text):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise click.BadParameter(f"expected {_members_hint(shape_name)} or a JSON object", param_hint=param)
        _known(param, shape_name, name)
        if name in out:
            raise click.BadParameter(f"{name} is given twice", param_hint=param)
        out[name] = _shorthand_value(param, members[name]["shape"], name, value)
    return out


def _members_hint(shape_name: str) -> str:
    return ",".join(f"{m}=..." for m in SHAPES[shape_name]["members"])


def _known(param: str, shape_name: str, name: str) -> None:
    members = SHAPES[shape_name]["members"]
    if name not in members:
        raise click.BadParameter(f"unknown {_noun(shape_name)} member {name!r} (members: {', '.join(members)})",
                                 param_hint=param)


def _checked(param: str, shape_name: str, value: Any, path: str) -> Any:
    """A JSON value checked against its shape: types, and no unknown members."""
    shape = SHAPES[shape_name]
    kind = shape["type"]
    where = f" at {path}" if path else ""
    expected = {"string": str, "blob": str, "integer": int, "long": int, "boolean": bool,
                "list": list, "map": dict, "structure": dict}.get(kind)
    if expected is not None and (not isinstance(value, expected) or
                                 (expected is int and isinstance(value, bool))):
        wanted = {"list": "a JSON list", "map": "a JSON object of strings",
                  "structure": "a JSON object"}.get(kind, f"a {kind}")
        raise click.BadParameter(f"expected {wanted}{where}", param_hint=param)
    if kind == "list":
        return [_checked(param, shape["member"]["shape"], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind == "map":
        return {k: _checked(param, shape["value"]["shape"], v, f"{path}.{k}" if path else k)
                for k, v in value.items()}
    if kind == "structure":
        for name in value:
            _known(param, shape_name, name)
        return {k: _checked(param, shape["members"][k]["shape"], v, f"{path}.{k}" if path else k)
                for k, v in value.items()}
    return value


def structure(param: str, shape_name: str, value: str | None) -> dict[str, Any] | None:
    """A structure member: the AWS CLI's shorthand, a JSON object, or file:// of either."""
    if value is None:
        return None
    text = _text(param, value).strip()
    if text.startswith(("{", "[")):
        data = _json(param, text)
        if not isinstance(data, dict):
            raise click.BadParameter(f"expected {_members_hint(shape_name)} or a JSON object", param_hint=param)
        return _checked(param, shape_name, data, "")  # type: ignore[no-any-return]
    if not text:
        raise click.BadParameter(f"expected {_members_hint(shape_name)} or a JSON object", param_hint=param)
    return _structure_shorthand(param, shape_name, text)


def structure_list(param: str, shape_name: str, values: tuple[str, ...]) -> list[dict[str, Any]] | None:
    """A list of structures (--tags): each value the shorthand or a JSON
    object, or one JSON list of them; `shape_name` is the element's shape."""
    if not values:
        return None
    out: list[dict[str, Any]] = []
    for value in values:
        text = _text(param, value).strip()
        if text.startswith("["):
            data = _json(param, text)
            if not isinstance(data, list):
                raise click.BadParameter("expected a JSON list", param_hint=param)
            out.extend(_checked(param, shape_name, item, f"[{i}]") for i, item in enumerate(data))
        else:
            found = structure(param, shape_name, text)
            assert found is not None
            out.append(found)
    return out


def tag_list(param: str, values: tuple[str, ...]) -> list[dict[str, str]] | None:
    """--tags: each value `TagKey=k,TagValue=v`, a JSON object, or a JSON list of them."""
    return structure_list(param, "Tag", values)


def string_list(param: str, values: tuple[str, ...]) -> list[str] | None:
    """--tag-keys: space-separated values, or a JSON list of strings."""
    if not values:
        return None
    out: list[str] = []
    for value in values:
        text = _text(param, value)
        if text.strip().startswith("["):
            data = _json(param, text)
            if not all(isinstance(v, str) for v in data):
                raise click.BadParameter("expected a JSON list of strings", param_hint=param)
            out.extend(data)
        else:
            out.append(text)
    return out


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


PLAINTEXT_SHAPES = frozenset({"PlaintextType"})  # blobs whose literal form is text, not base64


def wire_value(param: str, shape_name: str, value: Any) -> Any:
    """One option's value as its member of the request document (None: absent)."""
    if value is None or value == ():
        return None
    shape = SHAPES[shape_name]
    kind = shape["type"]
    if kind == "blob":
        return _b64(plaintext_blob(param, value) if shape_name in PLAINTEXT_SHAPES else base64_blob(param, value))
    if kind == "map":
        if SHAPES[shape["value"]["shape"]]["type"] == "string":
            return string_map(param, value)
        data = _json(param, _text(param, value))
        return _checked(param, shape_name, data, "")
    if kind == "structure":
        return structure(param, shape_name, value)
    if kind == "list":
        member = shape["member"]["shape"]
        member_kind = SHAPES[member]["type"]
        if member_kind == "structure":
            return structure_list(param, member, value)
        if member_kind == "string":
            return string_list(param, value)
        items: list[Any] = []
        for text in value:  # each a JSON value, or a JSON list of them
            data = _json(param, _text(param, text))
            items.extend(data if isinstance(data, list) else [data])
        return [_checked(param, member, item, f"[{i}]") for i, item in enumerate(items)]
    if kind == "string":
        return _text(param, value)
    return value  # integers and booleans: click has parsed them
