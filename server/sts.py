"""STS `GetCallerIdentity` on the KMS endpoint.

SDK set-ups and test fixtures often ask STS who they are before anything
else (`boto3.client("sts").get_caller_identity()["Account"]`), so
`keyledger serve` answers that one STS action: the AWS query protocol (a
form-encoded POST `Action=GetCallerIdentity&Version=2011-06-15`, SigV4
scoped to the service `sts`) with STS's XML response for the principal the
signature proves. Any other STS action, or a bad signature, gets STS's XML
`ErrorResponse`, never a KMS JSON error. Nothing here touches the ledger:
who the caller is was already decided by the signature.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from keyledger.errors import KMSError
from keyledger.service.request import _principal_id

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
VERSION = "2011-06-15"
CONTENT_TYPE = "text/xml"
MAX_BODY = 64 * 1024

#: The KMS-side signature errors, as STS (and IAM) name them (status, code, type).
SIGNATURE_ERRORS = {
    "MissingAuthenticationTokenException": (403, "MissingAuthenticationToken", "Sender"),
    "IncompleteSignatureException": (400, "IncompleteSignature", "Sender"),
    "InvalidSignatureException": (403, "SignatureDoesNotMatch", "Sender"),
    "UnrecognizedClientException": (403, "InvalidClientTokenId", "Sender"),
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


def caller_identity(principal: str, account: str) -> dict[str, str]:
    """Account, Arn and UserId as STS gives them: the account id is the
    root's UserId; a user or role gets its unique id (AIDA.../AROA...)."""
    user_id = account if principal == f"arn:aws:iam::{account}:root" else _principal_id(principal)
    return {"Account": account, "Arn": principal, "UserId": user_id}


def identity_xml(identity: dict[str, str], request_id: str) -> bytes:
    return (f'<GetCallerIdentityResponse xmlns="{NAMESPACE}">\n'
            "  <GetCallerIdentityResult>\n"
            f"    <Arn>{escape(identity['Arn'])}</Arn>\n"
            f"    <UserId>{escape(identity['UserId'])}</UserId>\n"
            f"    <Account>{escape(identity['Account'])}</Account>\n"
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


def answer(body: bytes, principal: str | KMSError, account: str) -> tuple[int, bytes, str]:
    """(status, XML body, request id) for one STS request whose signature
    check gave `principal` (or the error it raised)."""
    request_id = str(uuid.uuid4())
    if isinstance(principal, KMSError):
        status, code, kind = SIGNATURE_ERRORS.get(principal.code, (403, "AccessDenied", "Sender"))
        return status, error_xml(code, principal.message, request_id, kind), request_id
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        form = {}
    action = (form.get("Action") or [""])[0]
    version = (form.get("Version") or [""])[0]
    if not action:
        return 400, error_xml("MissingAction", "Missing Action", request_id), request_id
    if action != "GetCallerIdentity" or version != VERSION:
        return 400, error_xml("InvalidAction", f"Could not find operation {action[:64]} for version "
                                               f"{version[:32] or 'NO_VERSION_SPECIFIED'}", request_id), request_id
    return 200, identity_xml(caller_identity(principal, account), request_id), request_id


async def handle(app: Any, scope: dict[str, Any], receive: Any, send: Any,
                 headers: dict[str, list[str]] | None = None) -> None:
    """The ASGI side: read the body, check the signature (service `sts`),
    answer in XML. `app` is the KMSApp (its verifier, auth mode and account);
    `headers`, if given, are the request's, already parsed."""
    if headers is None:
        headers = _headers(scope)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            break
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    principal: str | KMSError
    if size > MAX_BODY:
        request_id = str(uuid.uuid4())
        status, payload = 413, error_xml("RequestEntityTooLarge", "Request body too large", request_id)
    else:
        if app.auth == "none":
            principal = app.root
        else:
            try:
                principal = app.verifier.verify(scope["method"], scope.get("raw_path", b"/").decode("latin-1"),
                                                scope.get("query_string", b"").decode("latin-1"), headers, body,
                                                service_name="sts")
            except KMSError as error:
                principal = error
        status, payload, request_id = answer(body, principal, app.kms.account)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", CONTENT_TYPE.encode()),
                            (b"content-length", str(len(payload)).encode()),
                            (b"x-amzn-requestid", request_id.encode())]})
    await send({"type": "http.response.body", "body": payload})
