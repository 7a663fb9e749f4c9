"""The conformance kit: botocore's KMS model as the oracle.

Everything here is derived from the *installed* botocore's model (with its
documentation), a second reading of AWS's contract next to the vendored copy
the library uses:

- `shape_problems`: a response (wire JSON) against an output shape: required
  members present, no member the model lacks, types, enums, lengths, patterns;
- `constraint_cases`: every input constraint of an operation's implemented
  members (min/max length and value, enum, pattern, required), each as a
  violating value and the exact ValidationException message AWS gives,
  worded here independently of `keyledger.constraints`;
- `allowed_errors`: what an operation may answer (the model's error list
  plus the errors AWS answers to any operation).

Operations are whatever `keyledger.operations.OPERATIONS` implements, so a
new operation is covered the moment its library method exists.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.session

from keyledger.operations import OPERATIONS

MODEL = botocore.session.get_session().get_service_model("kms")
RAW = MODEL._service_description  # noqa: SLF001 - the plain JSON, documentation included
SHAPES: dict[str, dict[str, Any]] = RAW["shapes"]

#: Errors AWS may answer to any request, though the model lists them nowhere.
COMMON_ERRORS = frozenset({"ValidationException", "AccessDeniedException", "NotAuthorizedException",
                           "ThrottlingException", "UnrecognizedClientException", "IncompleteSignatureException",
                           "InvalidSignatureException", "SerializationException"})

IMPLEMENTED = sorted(OPERATIONS)


def camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def input_shape(operation: str) -> dict[str, Any]:
    op = RAW["operations"][operation]
    return SHAPES[op["input"]["shape"]] if "input" in op else {"members": {}}


def output_shape(operation: str) -> str | None:
    op = RAW["operations"][operation]
    return op["output"]["shape"] if "output" in op else None


def allowed_errors(operation: str) -> frozenset[str]:
    return frozenset(e["shape"] for e in RAW["operations"][operation].get("errors", ())) | COMMON_ERRORS


def implemented_members(operation: str) -> list[str]:
    """The input members the library takes (a member it lacks is refused as unsupported)."""
    return [m for m, (_, kwarg) in OPERATIONS[operation].members.items() if kwarg is not None]


# -- responses ---------------------------------------------------------------------

def shape_problems(shape_name: str, value: Any, path: str = "$") -> list[str]:
    """Everything about `value` (parsed wire JSON) that the model does not allow."""
    if shape_name == "CustomerMasterKeySpec":
        # Deprecated, and its enum stops at SM2; AWS answers it equal to KeySpec
        # for newer specs too (recorded create-key output of an ML_DSA_65 key),
        # and so does keyledger (README, "Differences from AWS KMS")
        shape_name = "KeySpec"
    shape = SHAPES[shape_name]
    kind = shape["type"]
    out: list[str] = []
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        unknown = set(value) - set(shape["members"])
        if unknown:
            out.append(f"{path}: members the model does not define: {sorted(unknown)}")
        for name in shape.get("required", ()):
            if name not in value:
                out.append(f"{path}: required member {name} missing")
        for name, item in value.items():
            if name in shape["members"]:
                if item is None:
                    out.append(f"{path}.{name}: null instead of absent")
                else:
                    out += shape_problems(shape["members"][name]["shape"], item, f"{path}.{name}")
        return out
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        out += _sized(shape, len(value), path)
        for i, item in enumerate(value):
            out += shape_problems(shape["member"]["shape"], item, f"{path}[{i}]")
        return out
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: not a map"]
        for k, item in value.items():
            out += shape_problems(shape["key"]["shape"], k, f"{path}.<key>")
            out += shape_problems(shape["value"]["shape"], item, f"{path}.{k}")
        return out
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: not a string"]
        out += _sized(shape, len(value), path)
        if "enum" in shape and value not in shape["enum"]:
            out.append(f"{path}: {value!r} is not in the enum")
        if "pattern" in shape and re.fullmatch(shape["pattern"], value) is None:
            out.append(f"{path}: {value!r} does not match {shape['pattern']}")
        return out
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: not a boolean"]
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: not an integer"]
        if "min" in shape and value < shape["min"] or "max" in shape and value > shape["max"]:
            out.append(f"{path}: {value} out of [{shape.get('min')}, {shape.get('max')}]")
        return out
    if kind == "timestamp":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 1e9 < value < 1e11
        return [] if ok else [f"{path}: not epoch seconds: {value!r}"]
    if kind == "blob":
        if not isinstance(value, str):
            return [f"{path}: a blob must be base64"]
        raw = base64.b64decode(value, validate=True)
        return _sized(shape, len(raw), path)
    return [f"{path}: unexpected shape type {kind}"]


def _sized(shape: dict[str, Any], size: int, path: str) -> list[str]:
    if "min" in shape and size < shape["min"]:
        return [f"{path}: length {size} < {shape['min']}"]
    if "max" in shape and size > shape["max"]:
        return [f"{path}: length {size} > {shape['max']}"]
    return []


# -- input constraints --------------------------------------------------------------

@dataclass
class Case:
    """One violated constraint: the request change and AWS's message for it."""

    operation: str
    member: str
    what: str
    change: Callable[[dict[str, Any]], None]
    message: str
    id: str = field(default="")


def _message(path: str, value: Any, constraint: str, shape: dict[str, Any]) -> str:
    if value is None:
        where = f"Value null at '{path}'"
    elif shape["type"] == "blob" or shape.get("sensitive"):
        where = f"Value at '{path}'"
    elif isinstance(value, list):
        where = f"Value '[{', '.join(str(v) for v in value)}]' at '{path}'"
    else:
        where = f"Value '{value}' at '{path}'"
    return f"1 validation error detected: {where} failed to satisfy constraint: {constraint}"


_BAD_CHARS = ("!", " ", "\u0100", "*", "#", "\n", "%")


def _violating_string(shape: dict[str, Any], good: str) -> str | None:
    pattern = re.compile(shape["pattern"])
    for char in _BAD_CHARS:
        for candidate in (good + char, char + good[1:], char):
            if shape.get("min", 0) <= len(candidate) <= shape.get("max", 10**9) \
                    and pattern.fullmatch(candidate) is None:
                return candidate
    return None


def _sample(shape: dict[str, Any]) -> Any:
    kind = shape["type"]
    if kind == "string":
        return shape["enum"][0] if "enum" in shape else "a" * max(shape.get("min", 1), 1)
    if kind == "blob":
        return b"x" * max(shape.get("min", 1), 1)
    if kind in ("integer", "long"):
        return shape.get("min", 1)
    return None


#: Evidence, not the implementation's table: enum value lists as AWS itself
#: ordered them in messages recorded against AWS (LocalStack's KMS
#: snapshots), for enums whose values are still the model's; any other enum
#: is expected in the model's order.
RECORDED_ENUM_ORDER = {"MacAlgorithmSpec": ["HMAC_SHA_384", "HMAC_SHA_256", "HMAC_SHA_224", "HMAC_SHA_512"]}


def _leaf_cases(shape_name: str, path: str, good: Any,
                put: Callable[[dict[str, Any], Any], None]) -> Iterator[tuple[str, Callable[..., None], str]]:
    """(what, change, message) for each constraint of one member shape."""
    shape = SHAPES[shape_name]
    kind = shape["type"]
    if kind in ("string", "blob"):
        unit = "a" if kind == "string" else b"a"
        if shape.get("min", 0) >= 1:
            value = unit * (shape["min"] - 1)
            message = _message(path, value, f"Member must have length greater than or equal to {shape['min']}", shape)
            if kind == "string" and "pattern" in shape and re.fullmatch(shape["pattern"], value) is None:
                # AWS reports every constraint a value breaks: '' breaks a '+' pattern too
                pattern = _message(path, value, f"Member must satisfy regular expression pattern: {shape['pattern']}",
                                   shape)
                message = message.replace("1 validation error detected", "2 validation errors detected") \
                    + "; " + pattern.split("detected: ", 1)[1]
            yield ("min length", lambda d, v=value: put(d, v), message)
        if "max" in shape and shape["max"] <= 200_000:
            value = unit * (shape["max"] + 1)
            message = _message(path, value, f"Member must have length less than or equal to {shape['max']}", shape)
            if kind == "string" and "pattern" in shape and re.fullmatch(shape["pattern"], value) is None:
                # as for min length: a too-long 'aaa...' breaks RegionType's pattern too
                pattern = _message(path, value, f"Member must satisfy regular expression pattern: {shape['pattern']}",
                                   shape)
                message = message.replace("1 validation error detected", "2 validation errors detected") \
                    + "; " + pattern.split("detected: ", 1)[1]
            yield ("max length", lambda d, v=value, m=message: put(d, v), message)
    if kind == "string" and "enum" in shape:
        listed = RECORDED_ENUM_ORDER.get(shape_name, shape["enum"])
        yield ("enum", lambda d: put(d, "NOT_A_VALUE"),
               _message(path, "NOT_A_VALUE", "Member must satisfy enum value set: [" + ", ".join(listed) + "]",
                        shape))
    if kind == "string" and "pattern" in shape:
        bad = _violating_string(shape, good if isinstance(good, str) else _sample(shape))
        if bad is not None:
            yield ("pattern", lambda d, v=bad: put(d, v),
                   _message(path, bad, f"Member must satisfy regular expression pattern: {shape['pattern']}", shape))
    if kind in ("integer", "long"):
        if "min" in shape:
            value = shape["min"] - 1
            yield ("min value", lambda d, v=value: put(d, v),
                   _message(path, value, f"Member must have value greater than or equal to {shape['min']}", shape))
        if "max" in shape:
            value = shape["max"] + 1
            yield ("max value", lambda d, v=value: put(d, v),
                   _message(path, value, f"Member must have value less than or equal to {shape['max']}", shape))


def constraint_cases(operation: str, baseline: dict[str, Any]) -> list[Case]:
    """Every input constraint of the operation's implemented members."""
    shape = input_shape(operation)
    cases: list[Case] = []
    required = shape.get("required", ())
    for member in implemented_members(operation):
        member_shape_name = shape["members"][member]["shape"]
        member_shape = SHAPES[member_shape_name]
        path = camel(member)
        if member in required:
            cases.append(Case(operation, member, "required", lambda d, m=member: d.pop(m, None),
                              _message(path, None, "Member must not be null", member_shape)))

        def put(d: dict[str, Any], v: Any, m: str = member) -> None:
            d[m] = v
        for what, change, message in _leaf_cases(member_shape_name, path, baseline.get(member), put):
            cases.append(Case(operation, member, what, change, message))
        if member_shape["type"] == "list":
            item = SHAPES[member_shape["member"]["shape"]]
            good_list = baseline.get(member) or []
            good = good_list[0] if good_list else None
            if item["type"] != "structure":
                def put_item(d: dict[str, Any], v: Any, m: str = member) -> None:
                    d[m] = [v]
                for what, change, message in _leaf_cases(member_shape["member"]["shape"], f"{path}.1.member",
                                                         good, put_item):
                    cases.append(Case(operation, member, f"item {what}", change, message))
            else:
                for sub, spec in item["members"].items():
                    def put_field(d: dict[str, Any], v: Any, m: str = member, s: str = sub,
                                  base: Any = good) -> None:
                        entry = dict(base or {k: _sample(SHAPES[x["shape"]]) for k, x in item["members"].items()})
                        entry[s] = v
                        d[m] = [entry]
                    for what, change, message in _leaf_cases(spec["shape"], f"{path}.1.member.{camel(sub)}",
                                                             (good or {}).get(sub), put_field):
                        cases.append(Case(operation, member, f"{sub} {what}", change, message))
    for case in cases:
        case.id = f"{operation}.{case.member}:{case.what}"
    return cases


def to_document(params: dict[str, Any]) -> dict[str, Any]:
    """A boto3-style request (bytes for blobs) as its JSON document."""
    def conv(v: Any) -> Any:
        if isinstance(v, (bytes, bytearray)):
            return base64.b64encode(bytes(v)).decode()
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v
    return {k: conv(v) for k, v in params.items()}


def keyid_members(operation: str) -> dict[str, bool]:
    """The KeyId-like members of an operation and whether the model's
    documentation says they take an alias ("alias name")."""
    shape = input_shape(operation)
    found = {}
    for name, spec in shape["members"].items():
        if spec["shape"] == "KeyIdType" and name != "XksKeyId":
            doc = re.sub(r"<[^>]+>", "", spec.get("documentation", ""))
            found[name] = "alias name" in doc
    return found


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


PLACEHOLDER_KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
ROOT = "arn:aws:iam::111122223333:root"


#: Members a request needs although the model leaves them optional (the library checks them)
NEEDED_BEYOND_MODEL = {"Decrypt": ("CiphertextBlob",), "ReEncrypt": ("CiphertextBlob",),
                       # AWS: "NumberOfBytes is required." (constraints.REQUIRED_BY_OPERATION)
                       "GenerateRandom": ("NumberOfBytes",),
                       # an AWS CloudHSM key store (the default type) names its cluster
                       "CreateCustomKeyStore": ("CloudHsmClusterId",)}


def static_baseline(operation: str) -> dict[str, Any]:
    """A well-formed request that breaks no model constraint (its meaning
    may be refused later; the input checks come first)."""
    shape = input_shape(operation)
    by_shape: dict[str, Any] = {"KeyIdType": PLACEHOLDER_KEY, "PrincipalIdType": ROOT, "AliasNameType": "alias/x",
                                "PolicyType": "{}", "PolicyNameType": "default",
                                "RegionType": "eu-west-1",  # ReplicateKey, UpdatePrimaryRegion: its pattern
                                "CloudHsmClusterIdType": "cluster-abcdefghijk"}  # its pattern
    params: dict[str, Any] = {}
    # the model's and those the library needs (CiphertextBlob: required but for an IGNORE_CIPHERTEXT dry run)
    needed = (*OPERATIONS[operation].required, *NEEDED_BEYOND_MODEL.get(operation, ()))
    for member in needed:
        name = shape["members"][member]["shape"]
        spec = SHAPES[name]
        if name in by_shape:
            params[member] = by_shape[name]
        elif spec["type"] == "list":
            item = SHAPES[spec["member"]["shape"]]
            params[member] = [{k: _sample(SHAPES[x["shape"]]) for k, x in item["members"].items()}
                              if item["type"] == "structure" else _sample(item)]
        else:
            params[member] = _sample(spec)
    return params
