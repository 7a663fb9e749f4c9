"""The AWS KMS JSON 1.1 wire protocol: which operation, what it was given,
and what goes back.

The shapes are botocore's KMS service model, vendored with its documentation
stripped (`kms-2014-11-01.json`), so what the server accepts does not drift
with whatever botocore happens to be installed; `tests/server` checks the
copy against the installed botocore. The model, the table of operations and
the request-document -> keyword-arguments mapping live in
`keyledger.operations`, shared with the CLI: an operation is served when
`ledger.KeyLedger` has its snake_case method; the request members become that
method's keyword arguments by the same renaming (`KeyId` -> `key_id`).

Only the protocol is checked here (JSON, member types, base64, required
members); the request's meaning (lengths, ranges, enums, key states) is the
library's to judge, so that its refusal is recorded in the log like any
other. Nothing here does IO.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any

import msgspec

from keyledger.errors import KMSError, UnsupportedOperationException
from keyledger.operations import (MODEL, MODEL_FILE, OPERATIONS, SHAPES, Operation, SerializationException,  # noqa: F401
                                  build_operations, camel, load_model, request_kwargs, snake)

TARGET_PREFIX = "TrentService."
CONTENT_TYPE = "application/x-amz-json-1.1"


# -- the protocol's own errors (the library's are in ledger.errors) ------------

class UnknownOperationException(KMSError):
    code = "UnknownOperationException"


class IncompleteSignatureException(KMSError):
    code = "IncompleteSignatureException"


class InvalidSignatureException(KMSError):
    code = "InvalidSignatureException"


class MissingAuthenticationTokenException(KMSError):
    """No Authorization header at all (AWS answers 403 "Missing Authentication Token")."""

    code = "MissingAuthenticationTokenException"
    http_status = 403


class ThrottlingException(KMSError):
    """Too many requests from one address (AWS's "Rate exceeded", HTTP 400)."""

    code = "ThrottlingException"


class RequestTooLargeException(KMSError):
    code = "ValidationException"
    http_status = 413


# -- operations (the table itself is keyledger.operations.OPERATIONS) -----------

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


@functools.lru_cache(maxsize=1024)  # a pure function of the header, which names one of a few operations
def operation_name(target: str | None) -> str:
    """A safe name for the log: the target's operation if it looks like one."""
    if target and target.startswith(TARGET_PREFIX):
        name = target[len(TARGET_PREFIX):]
        if _OPERATION_NAME.match(name):
            return name
    return "Unknown"


# -- requests -------------------------------------------------------------------

_json_decoder = msgspec.json.Decoder()
#: no KMS or SSM request nests deeper than a few levels (Tags: object, list, object)
MAX_NESTING = 32
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nests_too_deeply(body: bytes) -> bool:
    """Whether a JSON body nests deeper than MAX_NESTING, found without
    recursion and before the decoder runs. The decoder recurses once per
    level, up to near Python's recursion limit, and at that depth any
    finalizer the garbage collector runs in the thread (a socket's, a
    transaction's) fails and is lost. Brackets inside strings do not count:
    escaped backslashes and quotes are dropped, then every other piece
    between quotes is a string. Bytes counting alone answers every ordinary
    request; only a body with many brackets is walked, bracket by bracket,
    in C-built bytes of its brackets."""
    if body.count(b"[") + body.count(b"{") <= MAX_NESTING:
        return False
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(plain.split(b'"')[0::2]).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte == 0x5B or byte == 0x7B:  # [ {
            depth += 1
            if depth > MAX_NESTING:
                return True
        else:
            depth -= 1
    return False


def decode_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body (an empty body is `{}`)."""
    if not body.strip():
        return {}
    if nests_too_deeply(body):
        raise SerializationException("The request body is nested too deeply")
    try:
        value = _json_decoder.decode(body)
    except msgspec.DecodeError:
        raise SerializationException("The request body is not valid JSON") from None
    except RecursionError:  # (a backstop: nests_too_deeply refuses these first)
        raise SerializationException("The request body is nested too deeply") from None
    if not isinstance(value, dict):
        raise SerializationException("The request body must be a JSON object")
    return value


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


_FLAT = frozenset({str, bytes, bool, int, float})
_astuple = msgspec.structs.astuple


def encode_response(response: Any) -> bytes:
    """The wire JSON of a library response: PascalCase members, base64 blobs,
    epoch-second timestamps, absent (never null) optional members. An
    operation without output answers with an empty body, as AWS does."""
    if response is None:
        return b""
    if isinstance(response, msgspec.Struct) and all(type(v) in _FLAT for v in _astuple(response)):
        # no timestamp, null or nesting (Encrypt, Decrypt, ...): msgspec writes the struct as it is
        return _json_encoder.encode(response)
    return _json_encoder.encode(_wire(msgspec.to_builtins(response, builtin_types=(datetime,))))


def encode_error(error: KMSError) -> bytes:
    """`{"__type", "message"}`; an error AWS gives without a message (a
    signature, MAC or ciphertext that does not verify) has no `message`
    member at all, as AWS's own body has none."""
    if not error.message:
        return _json_encoder.encode({"__type": error.code})
    return _json_encoder.encode({"__type": error.code, "message": error.message})


#: where `KMSApp.authenticate` leaves a verified session token's issue time in the ASGI scope
TOKEN_ISSUED = "keyledger.token_issued"

#: where `KMSApp.authenticate` leaves the verified access key id in the ASGI scope
ACCESS_KEY = "keyledger.access_key"

#: (client address, over TLS, a session token's issue time or None, the
#: verified access key id or None): `origin_of`
Origin = tuple[str, bool, int | None, str | None]


def origin_of(scope: dict[str, Any]) -> Origin:
    """Where a request came from (aws:SourceIp, aws:SecureTransport): the TCP
    peer's address, never a header a client writes (X-Forwarded-For), and
    whether it came over TLS; and, once authenticated, the access key id
    whose signature proved the caller and, for a role session's
    credentials, when their token was issued (aws:TokenIssueTime)."""
    return ((scope.get("client") or ("", 0))[0], scope.get("scheme") == "https", scope.get(TOKEN_ISSUED),
            scope.get(ACCESS_KEY))
