"""STS on the KMS endpoint: GetCallerIdentity and AssumeRole.

SDK set-ups and test fixtures often ask STS who they are before anything
else (`boto3.client("sts").get_caller_identity()["Account"]`), and
workloads act as roles: `keyledger serve` answers both in the AWS query
protocol (a form-encoded POST `Action=<X>&Version=2011-06-15`, SigV4
scoped to the service `sts`) with STS's XML. GetCallerIdentity touches no
ledger: who the caller is was already decided by the signature.
AssumeRole is a library call (`assume_role`) for the principal the
signature proves, committed like a KMS request, so it is on record allowed
or refused; its answer holds the session's secret and token, which go
nowhere else (not the access log, not the record). Requests signed with
those temporary credentials carry `X-Amz-Security-Token` and are
authenticated by `credentials.Sessions`. Any other STS action, or a bad
signature, gets STS's XML `ErrorResponse`, never a KMS JSON error.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from keyledger import responses as r
from keyledger.errors import KMSError
from keyledger.server.protocol import Origin, RequestTooLargeException, ThrottlingException, origin_of
from keyledger.service import Planned

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
VERSION = "2011-06-15"
CONTENT_TYPE = "text/xml"
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]*", re.ASCII)

#: The KMS-side signature errors, as STS (and IAM) name them (status, code, type).
SIGNATURE_ERRORS = {
    "MissingAuthenticationTokenException": (403, "MissingAuthenticationToken", "Sender"),
    "IncompleteSignatureException": (400, "IncompleteSignature", "Sender"),
    "InvalidSignatureException": (403, "SignatureDoesNotMatch", "Sender"),
    "UnrecognizedClientException": (403, "InvalidClientTokenId", "Sender"),
    "ExpiredTokenException": (400, "ExpiredToken", "Sender"),
}
#: The errors both query-protocol faces (STS, IAM) name alike: the signature checks', and these.
QUERY_ERRORS = {
    **SIGNATURE_ERRORS,
    "AccessDeniedException": (403, "AccessDenied", "Sender"),
    "ValidationException": (400, "ValidationError", "Sender"),
    "ThrottlingException": (400, "Throttling", "Sender"),
}
#: STS's refusals
_ERRORS = {
    **QUERY_ERRORS,
    "ValidationError": (400, "ValidationError", "Sender"),
    "InvalidAction": (400, "InvalidAction", "Sender"),
    "MissingAction": (400, "MissingAction", "Sender"),
}


def is_sts_request(scope: dict[str, Any]) -> bool:
    """A query-protocol request (form-encoded, no X-Amz-Target), or one
    whose signature is scoped to `sts`."""
    if scope.get("type") != "http" or scope.get("path") != "/" or scope.get("method") != "POST":
        return False
    return is_sts(_headers(scope))


def is_sts(headers: dict[str, list[str]]) -> bool:
    """`is_sts_request` for a POST / whose headers the app has parsed
    (lower-case name -> values in order; the last value of each counts,
    except Authorization: the first, the one the SigV4 verifier reads)."""
    if "x-amz-target" in headers and headers["x-amz-target"][-1]:
        return False
    authorization = headers.get("authorization")
    if authorization and "/sts/aws4_request" in authorization[0]:
        return True
    content_type = headers.get("content-type")
    return content_type is not None and content_type[-1].lower().startswith("application/x-www-form-urlencoded")


def _headers(scope: dict[str, Any]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in scope.get("headers", ()):
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return headers


def identity_xml(identity: r.CallerIdentity, request_id: str) -> bytes:
    return (f'<GetCallerIdentityResponse xmlns="{NAMESPACE}">\n'
            "  <GetCallerIdentityResult>\n"
            f"    <Arn>{escape(identity.arn)}</Arn>\n"
            f"    <UserId>{escape(identity.user_id)}</UserId>\n"
            f"    <Account>{escape(identity.account)}</Account>\n"
            "  </GetCallerIdentityResult>\n"
            "  <ResponseMetadata>\n"
            f"    <RequestId>{request_id}</RequestId>\n"
            "  </ResponseMetadata>\n"
            "</GetCallerIdentityResponse>\n").encode()


#: what XML 1.0 cannot hold at all, even escaped (control characters, lone surrogates, U+FFFE/U+FFFF)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str) -> str:
    """`value` as XML character data: escaped, and a character XML cannot
    carry (an action name echoed in a message may hold one) as U+FFFD, so
    the answer always parses."""
    return escape(_NOT_XML.sub("\ufffd", value))


def error_xml(code: str, message: str, request_id: str, kind: str = "Sender") -> bytes:
    return (f'<ErrorResponse xmlns="{NAMESPACE}">\n'
            "  <Error>\n"
            f"    <Type>{kind}</Type>\n"
            f"    <Code>{xml_text(code)}</Code>\n"
            f"    <Message>{xml_text(message)}</Message>\n"
            "  </Error>\n"
            f"  <RequestId>{request_id}</RequestId>\n"
            "</ErrorResponse>\n").encode()


def _error(error: KMSError, request_id: str) -> tuple[int, bytes, str]:
    status, code, kind = _ERRORS.get(error.code, (403, "AccessDenied", "Sender"))
    if error.http_status >= 500:
        status, code, kind = 500, "InternalFailure", "Receiver"
    return status, error_xml(code, error.message, request_id, kind), request_id


def assume_role_xml(answer: r.AssumeRoleResponse, request_id: str) -> bytes:
    """STS's AssumeRole answer: the one place the session's secret and token are revealed."""
    shown = answer.to_aws()
    c, who = shown["Credentials"], shown["AssumedRoleUser"]
    return (f'<AssumeRoleResponse xmlns="{NAMESPACE}">\n'
            "  <AssumeRoleResult>\n"
            f"    <AssumedRoleUser><AssumedRoleId>{xml_text(who['AssumedRoleId'])}</AssumedRoleId>"
            f"<Arn>{xml_text(who['Arn'])}</Arn></AssumedRoleUser>\n"
            f"    <Credentials><AccessKeyId>{c['AccessKeyId']}</AccessKeyId>"
            f"<SecretAccessKey>{xml_text(c['SecretAccessKey'])}</SecretAccessKey>"
            f"<SessionToken>{xml_text(c['SessionToken'])}</SessionToken>"
            f"<Expiration>{c['Expiration']}</Expiration></Credentials>\n"
            "  </AssumeRoleResult>\n"
            "  <ResponseMetadata>\n"
            f"    <RequestId>{request_id}</RequestId>\n"
            "  </ResponseMetadata>\n"
            "</AssumeRoleResponse>\n").encode()


async def answer(app: Any, body: bytes, principal: str, origin: Origin | None = None,
                 ) -> tuple[int, bytes, str]:
    """(status, XML body, request id) for one STS request signed by `principal`."""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        form = {}
    from keyledger.server.iam import _ACTION, InvalidActionException, MissingActionException  # (iam imports us)
    action = (form.get("Action") or [""])[0]
    version = (form.get("Version") or [""])[0]
    if action == "AssumeRole" and version == VERSION:
        return await _assume_role(app, form, principal, origin)
    if not action or action != "GetCallerIdentity" or version != VERSION:  # refused, and on record
        refusal = MissingActionException("Missing Action") if not action else InvalidActionException(
            f"Could not find operation {action[:64]} for version {version[:32] or 'NO_VERSION_SPECIFIED'}")
        return await _refuse(app, principal, origin, action[:64] if _ACTION.fullmatch(action[:64]) else "Unknown",
                             refusal)
    return await _call(app, principal, origin, identity_xml, "get_caller_identity")


async def _refuse(app: Any, principal: str, origin: Origin | None, operation: str,
                  refusal: KMSError) -> tuple[int, bytes, str]:
    """A request refused before its library call: on record first, then STS's error."""
    planned = app._plan_call(principal, "record_denied", operation, refusal, origin=origin)
    Planned.finish(await app.committer.submit(planned))
    return _error(refusal, planned.request_id)


async def _call(app: Any, principal: str, origin: Origin | None,
                render: Callable[[Any, str], bytes], method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes, str]:
    """A library call for `principal`, committed by the app's writer; its
    answer as `render` writes it, or its refusal (on record already: the
    library records its refusals) as STS's error."""
    planned = app._plan_call(principal, method, *args, origin=origin, **kwargs)
    outcome = await app.committer.submit(planned)
    try:
        answer = Planned.finish(outcome)
    except KMSError as error:
        if error.http_status >= 500:
            from keyledger.server.app import log_event  # (app imports this module)
            log_event(logging.ERROR, "internal-error", request_id=planned.request_id, error=error.code,
                      message=error.message)
        return _error(error, planned.request_id)
    return 200, render(answer, planned.request_id), planned.request_id


async def _assume_role(app: Any, form: dict[str, list[str]], principal: str,
                       origin: Origin | None) -> tuple[int, bytes, str]:
    """AssumeRole, checked against STS's model, then the library call,
    committed by the app's writer; a refusal before the call is recorded
    with `record_denied`, as the IAM face records its own."""
    from keyledger.server.iam import _Form  # (iam imports this module)
    params = _Form(form)
    role_arn = params.text("RoleArn", required=True, low=20, high=2048, pattern=None)
    session_name = params.text("RoleSessionName", required=True, low=2, high=64)
    duration = params.number("DurationSeconds", 900, 43200)
    external_id = params.text("ExternalId", low=2, high=1224, pattern=_EXTERNAL_ID)
    for unserved in ("Policy", "PolicyArns.member.1.arn", "SerialNumber", "TokenCode", "SourceIdentity",
                     "Tags.member.1.Key", "TransitiveTagKeys.member.1", "ProvidedContexts.member.1.ProviderArn"):
        if unserved in form:  # never silently dropped: a session policy ignored would grant more than asked
            params.errors.append(f"Value at '{unserved.split('.')[0][0].lower() + unserved.split('.')[0][1:]}' "
                                 "is not served: keyledger sessions take no session policies, MFA, source "
                                 "identity or session tags")
    try:
        params.done()
    except KMSError as refusal:
        return await _refuse(app, principal, origin, "AssumeRole", refusal)
    return await _call(app, principal, origin, assume_role_xml, "assume_role", role_arn, session_name,
                       duration_seconds=duration, external_id=external_id)


async def handle(app: Any, scope: dict[str, Any], receive: Any, send: Any,
                 headers: dict[str, list[str]] | None = None) -> None:
    """The ASGI side: read the body, check the signature (service `sts`),
    answer in XML. `app` is the KMSApp (its verifier, auth mode and account);
    `headers`, if given, are the request's, already parsed. A caller who
    proves no identity is refused, counted in the app's refusal summaries
    and throttled, as KMS and IAM callers are."""
    from keyledger.server.app import _Disconnected  # (app imports this module)
    if headers is None:
        headers = _headers(scope)
    if app.committer.idle_before_start and not app._stopping:  # a server without lifespan (AssumeRole commits)
        await app.startup()
    address = (scope.get("client") or ("", 0))[0]
    entry: dict[str, Any] = {}
    try:
        if app.auth == "sigv4" and app.limiter.throttled(address):
            raise ThrottlingException("Rate exceeded")
        try:
            principal, body, _ = await app.authenticate(scope, receive, headers, entry, service_name="sts")
        except KMSError:
            app.limiter.charge(address)
            raise
    except _Disconnected:
        return
    except KMSError as refusal:  # no identity proved: on record with the next refusal summary
        request_id = str(uuid.uuid4())
        app.refusals.add(address, refusal.code, refusal.message, operation="Unknown",
                         access_key_id=entry.get("access_key"), request_id=request_id)
        if isinstance(refusal, RequestTooLargeException):
            status, payload = 413, error_xml("RequestEntityTooLarge", "Request body too large", request_id)
        else:
            status, payload, _ = _error(refusal, request_id)
    else:
        try:
            status, payload, request_id = await answer(app, body, principal, origin_of(scope))
        except Exception as exc:  # noqa: BLE001 - on record as KMSInternalException, answered as InternalFailure
            await app._internal_error(exc, "Unknown", principal, entry)  # (the stack goes to the server log)
            request_id = entry.get("request_id") or str(uuid.uuid4())
            status, payload = 500, error_xml("InternalFailure", "An internal error occurred.", request_id,
                                             "Receiver")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", CONTENT_TYPE.encode()),
                            (b"content-length", str(len(payload)).encode()),
                            (b"x-amzn-requestid", request_id.encode())]})
    await send({"type": "http.response.body", "body": payload})
