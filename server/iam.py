"""IAM on the KMS endpoint: users, their inline policies and access keys.

A cluster of `keyledger serve --cluster` nodes has no home a CLI could
write to, so the server answers the part of IAM that keyledger keeps:
`boto3.client("iam", endpoint_url=...)` and `aws iam ... --endpoint-url`
send IAM's query protocol (a form-encoded POST `Action=<X>&Version=2010-05-08`,
SigV4 scoped to the service `iam`, in any region), and get IAM's XML, as
botocore's IAM model parses it. The actions: CreateUser, GetUser,
ListUsers, DeleteUser, CreateRole, GetRole, ListRoles, DeleteRole,
UpdateRole, UpdateRoleDescription, UpdateAssumeRolePolicy, PutUserPolicy,
GetUserPolicy, DeleteUserPolicy, ListUserPolicies, PutRolePolicy,
GetRolePolicy, DeleteRolePolicy, ListRolePolicies, TagUser, UntagUser,
ListUserTags, TagRole, UntagRole, ListRoleTags, CreateAccessKey,
UpdateAccessKey, DeleteAccessKey, ListAccessKeys, GetAccessKeyLastUsed.
Where IAM makes UserName optional, it is the signing caller's own user.
(STS's AssumeRole, which turns a role into temporary
credentials, is in `server.sts`.)

Each request is one library call for the principal the signature proves
(the account root under --auth none), planned on the loop and committed by
the app's writer thread like a KMS request, so it is on record allowed or
refused; a request refused here (an unknown action, a parameter IAM's model
rejects) is recorded with `record_denied`. Callers who prove no identity
are counted in the app's refusal summaries and throttled like KMS callers.
Errors are IAM's XML `ErrorResponse` with IAM's codes and statuses. The
secret of a new access key is in the CreateAccessKey answer only: never in
the access log or the log's records.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from keyledger import responses as r
from keyledger.commands import ROLE_DESCRIPTION
from keyledger.errors import KMSError, KMSInternalException
from keyledger.server.forwarded import PROXY
from keyledger.server.protocol import RequestTooLargeException, ThrottlingException, origin_of
from keyledger.server.sts import QUERY_ERRORS, xml_text
from keyledger.service import Planned

if TYPE_CHECKING:
    from keyledger.server.app import KMSApp

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
VERSION = "2010-05-08"
SERVICE = "iam"
CONTENT_TYPE = b"text/xml"
ANONYMOUS = "anonymous"
_ACTION = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)
_KEY_ID = re.compile(r"\w+", re.ASCII)
_DOCUMENT = re.compile(r"[\t\n\r\x20-\xff]+")
_DEFAULT_MAX_ITEMS = 100
SERVICE_FAILURE = "The request processing has failed because of an unknown error, exception or failure."

#: keyledger's error codes -> IAM's (status, code, type)
_ERRORS = {
    "NotFoundException": (404, "NoSuchEntity", "Sender"),
    "AlreadyExistsException": (409, "EntityAlreadyExists", "Sender"),
    "LimitExceededException": (409, "LimitExceeded", "Sender"),
    "DeleteConflictException": (409, "DeleteConflict", "Sender"),
    "MalformedPolicyDocumentException": (400, "MalformedPolicyDocument", "Sender"),
    **QUERY_ERRORS,  # the signature checks', AccessDenied, ValidationError, Throttling: as STS names them
}


class InvalidActionException(KMSError):
    code = "InvalidAction"


class MissingActionException(KMSError):
    code = "MissingAction"


class ValidationError(KMSError):
    """A parameter IAM's model rejects (IAM's own `ValidationError`)."""
    code = "ValidationError"


def is_iam(headers: dict[str, list[str]]) -> bool:
    """A POST / whose signature is scoped to `iam` (headers parsed as the
    app parses them: the first Authorization is the one verified)."""
    if "x-amz-target" in headers and headers["x-amz-target"][-1]:
        return False
    authorization = headers.get("authorization")
    return authorization is not None and "/iam/aws4_request" in authorization[0]


# -- the XML --------------------------------------------------------------------------

def _date(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(**members: str | None) -> str:
    return "".join(f"<{name}>{xml_text(value)}</{name}>" for name, value in members.items() if value is not None)


def _members(items: list[str]) -> str:
    return "".join(f"<member>{item}</member>" for item in items)


def user_xml(entity: r.User, kind: str = "User") -> str:
    """A user's members as IAM's XML has them, or a role's (`kind` "Role":
    with its trust policy, URL-encoded as IAM sends policy documents)."""
    trust, longest = entity.assume_role_policy_document, entity.max_session_duration
    return _fields(Path=entity.path, **{f"{kind}Name": entity.user_name,
                                         f"{kind}Id": entity.user_id},
                   Arn=entity.arn, CreateDate=_date(entity.create_date),
                   AssumeRolePolicyDocument=None if trust is None else quote(trust, safe=""),
                   Description=entity.description, MaxSessionDuration=None if longest is None else str(longest)) \
        + (_tags_xml(entity.tags) if entity.tags else "")


def _tags_xml(tags: list[r.IamTag]) -> str:
    return "<Tags>" + _members([_fields(Key=t.key, Value=t.value) for t in tags]) + "</Tags>"


def _root_xml(account: str, created: datetime) -> str:
    # IAM's GetUser for the root: no Path or UserName, the account id as UserId
    return "<User>" + _fields(UserId=account, Arn=f"arn:aws:iam::{account}:root",
                              CreateDate=_date(created)) + "</User>"


def response_xml(action: str, result: str | None, request_id: str) -> bytes:
    """`<XResponse>` with `<XResult>` (None: an action with no output) and
    the request id."""
    inner = "" if result is None else f"<{action}Result>{result}</{action}Result>"
    return (f'<{action}Response xmlns="{NAMESPACE}">{inner}'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
            f"</{action}Response>\n").encode()


def error_xml(code: str, message: str, request_id: str, kind: str = "Sender") -> bytes:
    return (f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type><Code>{xml_text(code)}</Code>'
            f"<Message>{xml_text(message)}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>\n").encode()


def iam_error(error: KMSError, action: str = "") -> tuple[int, str, str, str]:
    """(status, code, type, message) of a keyledger error as IAM answers it."""
    if error.code in ("InvalidAction", "MissingAction", "ValidationError"):
        return 400, error.code, "Sender", error.message
    if isinstance(error, RequestTooLargeException):
        return 413, "RequestEntityTooLarge", "Sender", "Request body too large"
    found = _ERRORS.get(error.code)
    if found is None:
        if error.http_status >= 500:
            return 500, "ServiceFailure", "Receiver", SERVICE_FAILURE
        return 400, "InvalidInput", "Sender", error.message
    status, code, kind = found
    message = error.message
    if code == "NoSuchEntity":  # the library names principals by ARN; IAM names users
        if found_user := re.fullmatch(r"The principal arn:aws:iam::\d+:(user|role)/(.+) cannot be found\.", message):
            message = f"The {found_user[1]} with name {found_user[2]} cannot be found."
        elif found_policy := re.fullmatch(r"The policy (.+) of arn:aws:iam::\d+:(user|role)/\S+ cannot be found\.",
                                          message):
            message = f"The {found_policy[2]} policy with name {found_policy[1]} cannot be found."
    return status, code, kind, message


# -- the actions ----------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    """One action as a library call: the ledger method and its arguments,
    and how its response becomes the `<XResult>` (None: no output)."""

    method: str
    args: tuple[Any, ...]
    render: Callable[[Any], str | None]
    kwargs: tuple[tuple[str, Any], ...] = ()  # its keyword arguments


class _Form:
    """The request's parameters, checked against IAM's model; every
    violation found is reported in one ValidationError, as IAM does."""

    def __init__(self, form: dict[str, list[str]]) -> None:
        self.form = form
        self.errors: list[str] = []

    def _one(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None

    def text(self, name: str, *, required: bool = False, low: int = 1, high: int = 128,
             pattern: re.Pattern[str] | None = _NAME, enum: tuple[str, ...] = ()) -> str | None:
        member = name[0].lower() + name[1:]
        value = self._one(name)
        if value is None:
            if required:
                self.errors.append(f"Value null at '{member}' failed to satisfy constraint: Member must not be null")
            return None
        shown = value if len(value) <= 128 else value[:128] + "..."
        if len(value) < low or len(value) > high:
            self.errors.append(f"Value '{shown}' at '{member}' failed to satisfy constraint: Member must have "
                               f"length {'less' if len(value) > high else 'greater'} than or equal to "
                               f"{high if len(value) > high else low}")
        elif enum and value not in enum:
            self.errors.append(f"Value '{shown}' at '{member}' failed to satisfy constraint: Member must satisfy "
                               f"enum value set: [{', '.join(enum)}]")
        elif pattern is not None and not pattern.fullmatch(value):
            self.errors.append(f"Value '{shown}' at '{member}' failed to satisfy constraint: Member must satisfy "
                               f"regular expression pattern: {pattern.pattern}")
        return value

    def unserved_path_and_boundary(self, kind: str) -> None:
        """CreateUser's and CreateRole's Path (other than /) and
        PermissionsBoundary, which keyledger does not serve: refused in words."""
        path = self.text("Path", high=512, pattern=None)
        if "PermissionsBoundary" in self.form:
            self.errors.append(f"keyledger {kind} take no permissions boundary")
        if path not in (None, "/"):
            self.errors.append(f"Value '{path[:128]}' at 'path' is not served: keyledger {kind} have the path /")

    def members(self, name: str) -> list[str] | None:
        """A list parameter (`<name>.member.1`, `.2`, ...) in order, or None if absent."""
        out: list[str] = []
        while (value := self._one(f"{name}.member.{len(out) + 1}")) is not None:
            out.append(value)
        return out if out else None

    def tags(self) -> list[dict[str, str]] | None:
        """`Tags.member.N.Key` / `.Value` as IAM's [{"Key", "Value"}], or None if absent."""
        out: list[dict[str, str]] = []
        while (key := self._one(f"Tags.member.{len(out) + 1}.Key")) is not None:
            out.append({"Key": key, "Value": self._one(f"Tags.member.{len(out) + 1}.Value") or ""})
        return out if out else None

    def number(self, name: str, low: int, high: int) -> int | None:
        """An integer parameter between `low` and `high`, if given."""
        value = self._one(name)
        if value is None:
            return None
        member = name[0].lower() + name[1:]
        if not value.isdigit() or not low <= int(value) <= high:
            self.errors.append(f"Value '{value[:32]}' at '{member}' failed to satisfy constraint: Member must have "
                               f"value {'less' if value.isdigit() and int(value) > high else 'greater'} than or "
                               f"equal to {high if value.isdigit() and int(value) > high else low}")
            return None
        return int(value)

    def page(self) -> tuple[tuple[str, ...], int]:
        """(the keys of the items earlier pages returned, as the Marker says,
        and the max items) from Marker and MaxItems."""
        size = _DEFAULT_MAX_ITEMS
        items = self._one("MaxItems")
        if items is not None:
            if not items.isdigit() or not 1 <= int(items) <= 1000:
                self.errors.append(f"Value '{items[:32]}' at 'maxItems' failed to satisfy constraint: Member must "
                                   "have value less than or equal to 1000 and greater than or equal to 1")
            else:
                size = int(items)
        marker = self._one("Marker")
        if marker is None:
            return (), size
        try:
            seen = tuple(json.loads(base64.urlsafe_b64decode(marker.encode("ascii"))))
            if not seen or not all(isinstance(k, str) for k in seen):
                raise ValueError
        except (ValueError, TypeError, UnicodeError, binascii.Error):
            self.errors.append(f"Value '{marker[:32]}' at 'marker' is not a marker this service issued")
            return (), size
        return seen, size
    def done(self) -> None:
        if self.errors:
            count = len(self.errors)
            raise ValidationError(f"{count} validation error{'s' if count > 1 else ''} detected: "
                                  + "; ".join(self.errors))


def _paged(items: list[tuple[str, str]], seen: tuple[str, ...], size: int, name: str, *,
           ordered: bool = True) -> str:
    """The `<name>` list of one page of (key, XML) items, and IsTruncated
    (with the next page's Marker). A Marker names where the last page
    ended, not an offset, so an item deleted between pages moves nothing:
    for a list in key order, the last key returned (the page starts after
    it); for one in another order (access keys, in the order they were
    issued: at most two), every key returned so far."""
    if not seen:
        rest = items
    elif ordered:
        rest = [item for item in items if item[0] > seen[-1]]
    else:
        rest = [item for item in items if item[0] not in seen]
    shown = rest[:size]
    truncated = len(rest) > size
    marker = None
    if truncated:
        keys = [key for key, _ in shown]
        marker = base64.urlsafe_b64encode(json.dumps(keys[-1:] if ordered else [*seen, *keys]).encode()).decode()
    return (f"<{name}>{_members([xml for _, xml in shown])}</{name}>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
            + (f"<Marker>{marker}</Marker>" if marker else ""))


def plan_action(action: str, form: dict[str, list[str]], principal: str, account: str) -> Call:
    """The library call an IAM action makes for `principal`, or raise the
    refusal (InvalidAction, ValidationError)."""
    params = _Form(form)

    def user(name: str | None) -> str:
        """The ARN of the named user; unnamed, the caller's own."""
        if name is not None:
            return f"arn:aws:iam::{account}:user/{name}"
        if ":role/" in principal or ":assumed-role/" in principal:
            raise ValidationError("Must specify userName when calling with non-User credentials")
        return principal

    if action == "CreateUser":
        name = params.text("UserName", required=True, high=64)
        tags = params.tags()
        params.unserved_path_and_boundary("users")
        params.done()
        return Call("create_user", (name,), lambda u: f"<User>{user_xml(u)}</User>", (("tags", tags),))
    if action == "CreateRole":
        name = params.text("RoleName", required=True, high=64)
        trust = params.text("AssumeRolePolicyDocument", required=True, high=131072, pattern=_DOCUMENT)
        description = params.text("Description", low=0, high=1000, pattern=ROLE_DESCRIPTION)
        longest = params.number("MaxSessionDuration", 3600, 43200)
        tags = params.tags()
        params.unserved_path_and_boundary("roles")
        params.done()
        return Call("create_role", (name, trust), lambda role: f"<Role>{user_xml(role, 'Role')}</Role>",
                    (("max_session_duration", longest), ("tags", tags), ("description", description)))
    if action in ("UpdateRole", "UpdateRoleDescription"):
        name = params.text("RoleName", required=True, high=64)
        description = params.text("Description", required=action == "UpdateRoleDescription", low=0, high=1000,
                                  pattern=ROLE_DESCRIPTION)
        if action == "UpdateRoleDescription":
            params.done()
            return Call("update_role_description", (name, description),
                        lambda role: f"<Role>{user_xml(role, 'Role')}</Role>")
        longest = params.number("MaxSessionDuration", 3600, 43200)
        if "MaxSigninSessionDuration" in params.form or "ResetMaxSigninSessionDuration" in params.form:
            params.errors.append("keyledger has no console sign-in: MaxSigninSessionDuration is not served")
        params.done()
        return Call("update_role", (name,), lambda _: "",  # an empty UpdateRoleResult, as IAM's model has it
                    (("description", description), ("max_session_duration", longest)))
    if action in ("TagUser", "UntagUser", "ListUserTags", "TagRole", "UntagRole", "ListRoleTags"):
        kind = "Role" if "Role" in action else "User"
        name = params.text(f"{kind}Name", required=True)
        arn = f"arn:aws:iam::{account}:{kind.lower()}/{name}"
        if action.startswith("List"):
            seen, size = params.page()
            params.done()
            return Call("list_principal_tags", (arn,), lambda got: _paged(
                [(t.key, _fields(Key=t.key, Value=t.value)) for t in got.tags], seen, size, "Tags"))
        if action.startswith("Tag"):
            tags = params.tags()
            if tags is None:
                params.errors.append("Value null at 'tags' failed to satisfy constraint: Member must not be null")
            params.done()
            return Call("tag_principal", (arn, tags), lambda _: None)
        keys = params.members("TagKeys")
        if keys is None:
            params.errors.append("Value null at 'tagKeys' failed to satisfy constraint: Member must not be null")
        params.done()
        return Call("untag_principal", (arn, keys), lambda _: None)
    if action == "UpdateAssumeRolePolicy":
        name = params.text("RoleName", required=True, high=64)
        document = params.text("PolicyDocument", required=True, high=131072, pattern=_DOCUMENT)
        params.done()
        return Call("update_assume_role_policy", (name, document), lambda _: None)
    if action in ("PutRolePolicy", "GetRolePolicy", "DeleteRolePolicy", "ListRolePolicies"):
        name = params.text("RoleName", required=True, high=64)
        arn = f"arn:aws:iam::{account}:role/{name}"
        if action == "ListRolePolicies":
            seen, size = params.page()
            params.done()
            return Call("list_principal_policies", (arn,),
                        lambda got: _paged([(p, xml_text(p)) for p in got.policy_names], seen, size, "PolicyNames"))
        policy = params.text("PolicyName", required=True)
        if action == "PutRolePolicy":
            document = params.text("PolicyDocument", required=True, high=131072, pattern=_DOCUMENT)
            params.done()
            return Call("put_principal_policy", (arn, policy, document), lambda _: None)
        params.done()
        if action == "DeleteRolePolicy":
            return Call("delete_principal_policy", (arn, policy), lambda _: None)
        return Call("get_principal_policy", (arn, policy), lambda got: _fields(
            RoleName=name, PolicyName=got.policy_name, PolicyDocument=quote(got.policy_document, safe="")))
    if action in ("DeleteUser", "DeleteRole"):
        member = "UserName" if action == "DeleteUser" else "RoleName"
        name = params.text(member, required=True, high=64)
        params.done()
        return Call("delete_user" if action == "DeleteUser" else "delete_role", (name,), lambda _: None)
    if action == "GetUser":
        name = params.text("UserName")
        params.done()
        arn = user(name)
        if arn == f"arn:aws:iam::{account}:root":  # the root's own answer: no name or path
            return Call("get_user", (arn,), lambda u: _root_xml(account, u.create_date))
        return Call("get_user", (arn,), lambda u: f"<User>{user_xml(u)}</User>")
    if action in ("ListUsers", "ListRoles"):
        prefix = params.text("PathPrefix", high=512, pattern=None)
        seen, size = params.page()
        params.done()
        users = action == "ListUsers"

        def listed(found: r.ListUsersResponse | r.ListRolesResponse) -> str:
            entities = found.users if isinstance(found, r.ListUsersResponse) else found.roles
            shown = [(e.user_name, user_xml(e, "User" if users else "Role"))
                     for e in entities if prefix is None or e.path.startswith(prefix)]
            return _paged(shown, seen, size, "Users" if users else "Roles")
        return Call("list_users" if users else "list_roles", (), listed)
    if action == "GetRole":
        name = params.text("RoleName", required=True, high=64)
        params.done()
        return Call("get_role", (name,), lambda role: f"<Role>{user_xml(role, 'Role')}</Role>")
    if action == "PutUserPolicy":
        name = params.text("UserName", required=True)
        policy = params.text("PolicyName", required=True)
        document = params.text("PolicyDocument", required=True, high=131072, pattern=_DOCUMENT)
        params.done()
        return Call("put_principal_policy", (user(name), policy, document), lambda _: None)
    if action == "GetUserPolicy":
        name = params.text("UserName", required=True)
        policy = params.text("PolicyName", required=True)
        params.done()
        return Call("get_principal_policy", (user(name), policy), lambda got: _fields(
            UserName=name, PolicyName=got.policy_name, PolicyDocument=quote(got.policy_document, safe="")))
    if action == "DeleteUserPolicy":
        name = params.text("UserName", required=True)
        policy = params.text("PolicyName", required=True)
        params.done()
        return Call("delete_principal_policy", (user(name), policy), lambda _: None)
    if action == "ListUserPolicies":
        name = params.text("UserName", required=True)
        seen, size = params.page()
        params.done()
        return Call("list_principal_policies", (user(name),),
                    lambda got: _paged([(p, xml_text(p)) for p in got.policy_names], seen, size, "PolicyNames"))
    if action == "CreateAccessKey":
        name = params.text("UserName")
        params.done()
        return Call("create_access_key", (user(name),), _new_key_xml)
    if action == "UpdateAccessKey":
        name = params.text("UserName")
        key_id = params.text("AccessKeyId", required=True, low=16, pattern=_KEY_ID)
        status = params.text("Status", required=True, high=16, pattern=None, enum=("Active", "Inactive", "Expired"))
        params.done()
        return Call("update_access_key", (user(name), key_id, status), lambda _: None)
    if action == "DeleteAccessKey":
        name = params.text("UserName")
        key_id = params.text("AccessKeyId", required=True, low=16, pattern=_KEY_ID)
        params.done()
        return Call("delete_access_key", (user(name), key_id), lambda _: None)
    if action == "GetAccessKeyLastUsed":
        key_id = params.text("AccessKeyId", required=True, low=16, pattern=_KEY_ID)
        params.done()

        def last_used(got: r.GetAccessKeyLastUsedResponse) -> str:
            used = got.access_key_last_used
            return _fields(UserName=got.user_name) + "<AccessKeyLastUsed>" + _fields(
                LastUsedDate=None if used.last_used_date is None else _date(used.last_used_date),
                ServiceName=used.service_name, Region=used.region) + "</AccessKeyLastUsed>"
        return Call("get_access_key_last_used", (key_id,), last_used)
    if action == "ListAccessKeys":
        name = params.text("UserName")
        seen, size = params.page()
        params.done()
        return Call("list_access_keys", (user(name),), lambda got: _paged(
            [(k.access_key_id, _fields(UserName=k.user_name or None, AccessKeyId=k.access_key_id, Status=k.status,
                                       CreateDate=None if k.create_date is None else _date(k.create_date)))
             for k in got.access_key_metadata], seen, size, "AccessKeyMetadata", ordered=False))
    raise InvalidActionException(f"Could not find operation {action} for version {VERSION}")


def _new_key_xml(key: r.NewAccessKey) -> str:
    shown = key.to_aws()["AccessKey"]  # the one place the secret is revealed: this answer
    return "<AccessKey>" + _fields(UserName=shown.get("UserName"), AccessKeyId=shown["AccessKeyId"],
                                   Status=shown["Status"], SecretAccessKey=shown["SecretAccessKey"],
                                   CreateDate=shown["CreateDate"]) + "</AccessKey>"


# -- ASGI -----------------------------------------------------------------------------

async def handle(app: KMSApp, scope: dict[str, Any], receive: Any, send: Any,
                 headers: dict[str, list[str]]) -> None:
    """Answer one IAM request, with its access-log entry (as KMS requests
    have: never a body, so never a secret)."""
    from keyledger.server import (
        app as served,  # (a cycle at import time: app imports this module)
    )
    if app.committer.idle_before_start and not app._stopping:  # a server without lifespan
        await app.startup()
    logged = served.access_log.isEnabledFor(logging.INFO)
    arrived, started = time.time_ns(), time.perf_counter()
    entry: dict[str, Any] = {"remote": (scope.get("client") or ("", 0))[0], "proxy": scope.get(PROXY),
                             "method": scope["method"], "path": scope["path"], "service": SERVICE}
    try:
        status, extra, body = await _route(app, scope, receive, headers, entry)
    except served._Disconnected:
        return
    except Exception as exc:  # noqa: BLE001 - on record as KMSInternalException, answered as ServiceFailure
        status, extra, _ = await app._internal_error(exc, entry.get("operation") or "Unknown",
                                                     entry.get("principal") or ANONYMOUS, entry)
        request_id = entry.get("request_id") or str(uuid.uuid4())
        status, code, kind, message = iam_error(KMSInternalException(""))
        body = error_xml(code, message, request_id, kind)
    if logged:
        entry["status"] = status
        entry["bytes_out"] = len(body)
        entry["ms"] = round((time.perf_counter() - started) * 1000, 3)
        served.access_log.info(served._log_encoder.encode(
            {"time": served._iso(arrived), **{k: v for k, v in entry.items() if v is not None}}).decode())
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", CONTENT_TYPE), (b"content-length", b"%d" % len(body)), *extra]})
    await send({"type": "http.response.body", "body": body})


async def _route(app: KMSApp, scope: dict[str, Any], receive: Any, headers: dict[str, list[str]],
                 entry: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    address = entry["remote"]
    if app.auth == "sigv4" and app.limiter.throttled(address):
        return _unauthenticated(app, ThrottlingException("Rate exceeded"), address, "Unknown", entry)
    try:
        principal, body, _ = await app.authenticate(scope, receive, headers, entry, service_name=SERVICE)
    except KMSError as refusal:  # no identity proved: counted, on record with the next summary
        app.limiter.charge(address)
        return _unauthenticated(app, refusal, address, "Unknown", entry)
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError):
        form = {}
    action = (form.get("Action") or [""])[0]
    version = (form.get("Version") or [""])[0]
    name = action if _ACTION.fullmatch(action) else "Unknown"
    entry["operation"] = name
    try:
        if not action:
            raise MissingActionException("Missing Action")
        if version != VERSION:
            raise InvalidActionException(f"Could not find operation {action[:64]} for version "
                                         f"{version[:32] or 'NO_VERSION_SPECIFIED'}")
        call = plan_action(action[:64], form, principal, app.kms.account)
    except KMSError as refusal:  # refused here: on record first
        planned = app._plan_call(principal, "record_denied", name, refusal, origin=origin_of(scope))
        Planned.finish(await app.committer.submit(planned))
        return _error(refusal, planned.request_id, entry)
    planned = app._plan_call(principal, call.method, *call.args, origin=origin_of(scope), **dict(call.kwargs))
    outcome = await app.committer.submit(planned)
    entry["request_id"] = planned.request_id
    try:
        response = Planned.finish(outcome)
        result = call.render(response)
        if call.method in ("update_access_key", "delete_access_key") and app.verifier is not None:
            forget = getattr(app.verifier.credentials, "forget", None)
            if forget is not None:  # the server's memory of the key: from the next request, not a second later
                forget(call.args[1])
    except KMSError as error:  # on record already (the library records its refusals)
        if error.http_status >= 500:
            from keyledger.server.app import log_event
            log_event(logging.ERROR, "internal-error", request_id=planned.request_id, error=error.code,
                      message=error.message)
        return _error(error, planned.request_id, entry)
    return 200, _request_id(planned.request_id), response_xml(action, result, planned.request_id)


def _request_id(request_id: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-amzn-requestid", request_id.encode())]


def _error(error: KMSError, request_id: str, entry: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status, code, kind, message = iam_error(error)
    entry["request_id"] = request_id
    entry["error"] = code
    return status, _request_id(request_id), error_xml(code, message, request_id, kind)


def _unauthenticated(app: KMSApp, refusal: KMSError, address: str, name: str,
                     entry: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    request_id = str(uuid.uuid4())
    app.refusals.add(address, refusal.code, refusal.message, operation=name,
                     access_key_id=entry.get("access_key"), request_id=request_id)
    entry["principal"] = ANONYMOUS
    status, extra, body = _error(refusal, request_id, entry)
    if isinstance(refusal, RequestTooLargeException):
        extra.append((b"connection", b"close"))
    return status, extra, body
