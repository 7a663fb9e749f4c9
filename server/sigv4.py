"""AWS Signature Version 4, verified on the server side.

`Verifier.verify(...)` recomputes the signature of a request from the secret
of its access key and returns the principal that key belongs to, or raises
the error AWS would: `MissingAuthenticationTokenException` (no
Authorization header), `IncompleteSignatureException` (a malformed one),
`UnrecognizedClientException` (unknown or inactive access key, or a
session token we never issued), `InvalidSignatureException`
(wrong scope, clock skew beyond 15 minutes, or a signature that does not
match). Only the `Authorization` header form is accepted (no presigned
query strings: KMS is POST-only), and the `Host`, date and `X-Amz-Target`
headers must be signed, so that a captured request cannot be replayed as
another operation.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import posixpath
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from keyledger.errors import UnrecognizedClientException
from keyledger.secret import Secret
from keyledger.server.credentials import AccessKey, KeyLookup, Sessions
from keyledger.server.protocol import (
    IncompleteSignatureException, InvalidSignatureException, MissingAuthenticationTokenException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "kms"
MAX_SKEW = 15 * 60
_AMZ_DATE = "%Y%m%dT%H%M%SZ"

Headers = dict[str, list[str]]


class Denied:
    """What a request claimed to be: its access key id, for the record of a
    refusal; once verified, when its session token was issued (None: no
    session), for aws:TokenIssueTime."""

    __slots__ = ("access_key_id", "token_issued")

    def __init__(self, access_key_id: str | None) -> None:
        self.access_key_id = access_key_id
        self.token_issued: int | None = None


_REGION = re.compile(r"^([a-z]+-){2,3}\d+$")  # the model's RegionType


def request_region(headers: Headers) -> str | None:
    """The region an Authorization header's credential scope names (as
    given: verify() checks it), or None when there is no usable one. A
    ledger serves every region of its account; this is the request's."""
    auth = headers.get("authorization")
    if not auth:
        return None
    try:
        credential, _, _ = _parse_authorization(auth[0])
    except IncompleteSignatureException:
        return None
    scope = credential.split("/")
    if len(scope) != 5 or not _REGION.fullmatch(scope[2]):
        return None
    return scope[2]


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.digest(key, msg.encode(), "sha256")


def _parse_authorization(value: str) -> tuple[str, str, str]:
    """(credential, signed headers, signature) of an Authorization header."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureException(
            f"Unsupported AWS 'algorithm': '{algorithm[:40]}'; only {ALGORITHM} is supported.")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, val = item.strip().partition("=")
        if sep:
            parts[name] = val.strip()
    for needed in ("Credential", "SignedHeaders", "Signature"):
        if not parts.get(needed):
            raise IncompleteSignatureException(f"Authorization header requires '{needed}' parameter.")
    return parts["Credential"], parts["SignedHeaders"], parts["Signature"]


@functools.lru_cache(maxsize=256)  # a pure function of the text; a second's requests share one
def _amz_date(raw: str) -> datetime:
    """X-Amz-Date's YYYYMMDDTHHMMSSZ, parsed by hand (strptime costs more
    than the rest of the check); ValueError if it is not one."""
    if len(raw) != 16 or raw[8] != "T" or raw[15] != "Z" or not (raw[:8] + raw[9:15]).isdigit():
        raise ValueError(raw)
    return datetime(int(raw[:4]), int(raw[4:6]), int(raw[6:8]), int(raw[9:11]), int(raw[11:13]),
                    int(raw[13:15]), tzinfo=timezone.utc)


def _request_time(headers: Headers) -> tuple[str, datetime, str]:
    """(the date as signed, as a datetime, which header carried it)."""
    if "x-amz-date" in headers:
        raw = headers["x-amz-date"][0].strip()
        try:
            when = _amz_date(raw)
        except ValueError:
            raise IncompleteSignatureException(
                f"Date must be in ISO-8601 'basic format'. Got '{raw[:40]}'.") from None
        return raw, when, "x-amz-date"
    if "date" in headers:
        raw = headers["date"][0].strip()
        try:
            when = parsedate_to_datetime(raw).astimezone(timezone.utc)
        except (TypeError, ValueError, IndexError):
            raise IncompleteSignatureException(f"Date header is not valid: '{raw[:40]}'.") from None
        return raw, when, "date"
    raise IncompleteSignatureException(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")


@functools.lru_cache(maxsize=256)  # a pure function of the path, and KMS is always "/"
def canonical_uri(raw_path: str) -> str:
    """As botocore computes it for services other than S3: normalized, then
    URI-encoded once more."""
    path = posixpath.normpath(raw_path) if raw_path not in ("", "/") else "/"
    if raw_path.endswith("/") and path != "/":
        path += "/"
    return quote(path, safe="/~")


def canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        pairs.append((key, value))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(method: str, raw_path: str, query: str, headers: Headers,
                      signed_headers: str, payload_hash: str) -> str:
    lines = []
    for name in signed_headers.split(";"):
        values = headers.get(name)
        if not values:
            lines.append(f"{name}:")
        elif len(values) == 1:  # the usual case, without a generator per header
            lines.append(f"{name}:{' '.join(values[0].split())}")
        else:
            lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
    return "\n".join((method, canonical_uri(raw_path), canonical_query(query), "\n".join(lines) + "\n",
                      signed_headers, payload_hash))


class Verifier:
    def __init__(self, credentials: KeyLookup, region: str, *,
                 clock: Callable[[], float] = time.time, sessions: Sessions | None = None) -> None:
        self.credentials = credentials
        self.sessions = sessions  # temporary credentials (a request with X-Amz-Security-Token)
        self.region = region
        self._clock = clock
        # derived from the secrets: kept redacted, at most 4,097 (a day's
        # (key, region, service) scopes, dropped wholesale beyond that)
        self._signing_keys: dict[tuple[AccessKey, str, str, str], Secret] = {}

    def _signing_key(self, key: AccessKey, date: str, service: str = SERVICE, region: str | None = None) -> bytes:
        region = region or self.region
        cache_key = (key, date, service, region)  # the AccessKey object: a reloaded file gets new ones
        found = self._signing_keys.get(cache_key)
        if found is None:
            k = _hmac(b"AWS4" + key.secret.reveal(), date)
            k = _hmac(k, region)
            k = _hmac(k, service)
            found = Secret(_hmac(k, "aws4_request"))
            if len(self._signing_keys) > 4096:
                self._signing_keys.clear()
            self._signing_keys[cache_key] = found
        return found.reveal()

    def verify(self, method: str, raw_path: str, query: str, headers: Headers, body: bytes,
               denied: Denied | None = None, service_name: str = SERVICE) -> str:
        """The principal of a correctly signed request; else raise. `headers`
        maps lower-case names to their values in order. `denied`, if given,
        learns the access key id the request claimed."""
        return self.verify_scoped(method, raw_path, query, headers, body, denied, service_name)[0]

    def verify_scoped(self, method: str, raw_path: str, query: str, headers: Headers, body: bytes,
                      denied: Denied | None = None, service_name: str = SERVICE) -> tuple[str, str]:
        """`verify`, and the region of the verified credential scope (what
        `request_region` gives for the same headers), so the server parses
        the Authorization header once."""
        auth = headers.get("authorization")
        if not auth:
            raise MissingAuthenticationTokenException("Missing Authentication Token")
        credential, signed_headers, signature = _parse_authorization(auth[0])
        scope = credential.split("/")
        if len(scope) != 5:
            raise IncompleteSignatureException(
                "Credential must have exactly 5 slash-delimited elements, e.g. "
                "keyid/date/region/service/aws4_request.")
        access_key_id, date, region, service, terminator = scope
        if denied is not None:
            denied.access_key_id = access_key_id[:128]
        signed = signed_headers.split(";")
        amz_date, when, date_header = _request_time(headers)
        for needed in ("host", date_header, *(["x-amz-target"] if "x-amz-target" in headers else [])):
            if needed not in signed:
                raise IncompleteSignatureException(f"'{needed}' must be a 'SignedHeader' in the AWS Authorization.")
        token = headers.get("x-amz-security-token")
        if token is not None and (self.sessions is None or not access_key_id.startswith("ASIA")):
            raise UnrecognizedClientException("The security token included in the request is invalid.")
        if terminator != "aws4_request":
            raise InvalidSignatureException(
                f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator[:40]}'.")
        if service != service_name:  # "sts" for server.sts
            raise InvalidSignatureException(f"Credential should be scoped to correct service: '{service_name}'.")
        if not _REGION.fullmatch(region):  # any region of the account: the request's region
            raise InvalidSignatureException(
                f"Credential should be scoped to a valid region, not '{region[:40]}'.")
        # X-Amz-Date's own digits are its date (a year below 1000 prints
        # differently through strftime: that rare case takes the long way)
        plain = date_header == "x-amz-date" and amz_date[0] != "0"
        if date != (amz_date[:8] if plain else when.strftime("%Y%m%d")):
            raise InvalidSignatureException(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{date[:16]}' != '{when.strftime('%Y%m%d')}', from '{amz_date[:40]}'.")
        if token is not None:
            assert self.sessions is not None
            key = self.sessions.lookup(access_key_id, token[-1])
        else:
            key = self.credentials.lookup(access_key_id)
        if key is None:
            raise UnrecognizedClientException("The security token included in the request is invalid.")
        now = self._clock()
        skew = when.timestamp() - now
        if abs(skew) > MAX_SKEW:
            def fmt(t: float) -> str:
                return datetime.fromtimestamp(t, timezone.utc).strftime(_AMZ_DATE)
            if skew < 0:
                raise InvalidSignatureException(
                    f"Signature expired: {amz_date[:40]} is now earlier than {fmt(now - MAX_SKEW)} "
                    f"({fmt(now)} - 15 min.)")
            raise InvalidSignatureException(
                f"Signature not yet current: {amz_date[:40]} is still later than {fmt(now + MAX_SKEW)} "
                f"({fmt(now)} + 15 min.)")
        creq = canonical_request(method, raw_path, query, headers, signed_headers,
                                 hashlib.sha256(body).hexdigest())
        to_sign = "\n".join((ALGORITHM, amz_date if plain else when.strftime(_AMZ_DATE),
                             credential[len(access_key_id) + 1:],
                             hashlib.sha256(creq.encode()).hexdigest()))
        expected = hmac.digest(self._signing_key(key, date, service_name, region), to_sign.encode(),
                               "sha256").hex()  # the one-shot C HMAC: a third of hmac.new's cost
        if not hmac.compare_digest(expected, signature.lower()):
            raise InvalidSignatureException(
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. "
                "Consult the service documentation for details.")
        if denied is not None:
            denied.token_issued = key.issued
        return key.principal, region
