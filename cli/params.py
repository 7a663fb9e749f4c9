"""The AWS CLI's parameter syntax: blobs, maps and tag lists.

Blobs: `fileb://PATH` is the file's raw bytes; `file://PATH` its text. A
plaintext given literally is its UTF-8 bytes; a ciphertext given literally
is base64. Maps (encryption contexts) are the shorthand `k=v,k2=v2` or a
JSON object. Tags are `TagKey=k,TagValue=v` (several, space-separated) or a
JSON list. Anything malformed is a usage error (exit 2) that never echoes
the value back, since it may be secret.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import click

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


_TAG_MEMBERS = {"TagKey", "TagValue"}


def _check_tag(param: str, tag: Any) -> dict[str, str]:
    if not isinstance(tag, dict):
        raise click.BadParameter("each tag must be TagKey=k,TagValue=v or a JSON object", param_hint=param)
    unknown = sorted(set(tag) - _TAG_MEMBERS)
    if unknown:
        raise click.BadParameter(f"unknown tag member {unknown[0]!r} (expected TagKey and TagValue)",
                                 param_hint=param)
    return tag


def tag_list(param: str, values: tuple[str, ...]) -> list[dict[str, str]] | None:
    """--tags: each value `TagKey=k,TagValue=v`, a JSON object, or a JSON list of them."""
    if not values:
        return None
    tags: list[dict[str, str]] = []
    for value in values:
        text = _text(param, value).strip()
        if text.startswith(("[", "{")):
            data = _json(param, text)
            tags.extend(_check_tag(param, t) for t in (data if isinstance(data, list) else [data]))
        else:
            tags.append(_check_tag(param, _shorthand(param, text)))
    return tags


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
