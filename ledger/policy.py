"""Authorization, as AWS KMS documents it. Pure: no IO, no clock.

A request is (principal, action, resource, condition context). It is
allowed when no applicable statement explicitly denies it and one of these
allows it:

1. the key policy allows the principal itself (by its ARN, or "*");
2. the key policy allows the principal's account (the account root ARN or
   the bare account id: "delegate to IAM") and an IAM policy of the
   principal allows it (the account root itself needs no IAM policy);
3. a grant on the key names the principal as grantee, lists the operation,
   and its constraints hold for the request's encryption context; for
   CreateGrant, the new grant's operations are among the grant's own and
   its constraints are at least as strict (a grant never begets more).

Calls that have no key (CreateKey, ListKeys, ListAliases, GenerateRandom)
are decided by IAM policies alone. Explicit Deny anywhere wins.

Policy documents are parsed once (`parse`, cached by text) into compiled
statements, so evaluation on the Encrypt path is a handful of regex and
dict look-ups.

Policy variables (`${aws:username}`, `${aws:PrincipalTag/team, 'none'}`,
the escapes `${*}`, `${?}`, `${$}`) are IAM's: only in a "2012-10-17"
document (in "2008-10-17" they are plain text), only in Resource,
NotResource and the values of String and Arn conditions. A variable whose
key the request lacks, or holds several values, and that has no default,
has no value: the value or pattern holding it matches nothing (so a
negated operator holds and a NotResource excludes nothing), as IAM decides.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from keyledger import keyspecs
from keyledger.errors import MalformedPolicyDocumentException

MAX_POLICY_BYTES = 32768
VERSIONS = ("2012-10-17", "2008-10-17")


def default_key_policy(account: str) -> str:
    """The key policy AWS gives a key created without one."""
    return json.dumps({
        "Version": "2012-10-17", "Id": "key-default-1",
        "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                       "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                       "Action": "kms:*", "Resource": "*"}]}, indent=2)


@functools.lru_cache(maxsize=4096)  # pure; asked ~4 times per request for the same few principals
def account_of(principal: str) -> str | None:
    parts = principal.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] in ("iam", "sts"):
        return parts[4]
    return None


def root_of(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


#: an assumed-role session's ARN (the role's name as `check_iam_name` allows it, the session's as STS does)
_SESSION = re.compile(r"arn:aws:sts::(\d{12}):assumed-role/([\w+=,.@-]{1,128})/([\w+=,.@-]{2,64})", re.ASCII)


@functools.lru_cache(maxsize=4096)
def role_of(principal: str) -> str | None:
    """The role an assumed-role session acts as: `arn:aws:sts::A:assumed-role/R/S`
    -> `arn:aws:iam::A:role/R`; None for any other principal. A policy's
    principal or a grant that names the role applies to every session of
    it, and the session's identity policies are the role's (AWS)."""
    found = _SESSION.fullmatch(principal)
    return f"arn:aws:iam::{found[1]}:role/{found[2]}" if found else None


def session_arn(role: str, session_name: str) -> str:
    """The ARN of a session of `role`: `arn:aws:iam::A:role/R` and S ->
    `arn:aws:sts::A:assumed-role/R/S` (the inverse of `role_of`)."""
    account, _, name = role[len("arn:aws:iam::"):].partition(":role/")
    return f"arn:aws:sts::{account}:assumed-role/{name}/{session_name}"


# -- wildcard patterns ----------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == value.lower() if ignore_case else pattern == value
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


# -- policy variables -------------------------------------------------------------

@dataclass(frozen=True)
class Variable:
    key: str  # lower-cased condition key
    default: str | None  # `${key, 'default'}`


@dataclass(frozen=True)
class Template:
    """A policy value with policy variables, resolved per request. `parts`
    are the policy's own text (str: `*` and `?` are wildcards in a pattern),
    variables, and the escapes `${*}` `${?}` `${$}` (1-tuples: a literal
    character)."""
    text: str  # as written
    parts: tuple[str | Variable | tuple[str], ...]

    def resolve(self, context: Mapping[str, Any]) -> tuple[tuple[str, bool], ...] | None:
        """(text, is the policy's own text) pieces, or None: a variable has no value."""
        out: list[tuple[str, bool]] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append((part, True))
            elif isinstance(part, tuple):
                out.append((part[0], False))
            else:
                value = variable_value(context, part.key)
                if value is None:
                    value = part.default
                if value is None:
                    return None
                out.append((value, False))
        return tuple(out)


_ESCAPES = {"*": ("*",), "?": ("?",), "$": ("$",)}
_VARIABLE_KEY = re.compile(r"[^\s,{}$']+")


def _variable_at(text: str, start: int) -> tuple[Variable | tuple[str], int] | None:
    """The variable whose `${` is at `start`, and the index after its `}`;
    None if the text there is not one (it is then literal text)."""
    close = text.find("}", start + 2)
    if close < 0:
        return None
    inner = text[start + 2:close]
    if inner in _ESCAPES:
        return _ESCAPES[inner], close + 1
    key, comma, rest = inner.partition(",")
    key = key.strip()
    if not _VARIABLE_KEY.fullmatch(key):
        return None
    if not comma:
        return Variable(key.lower(), None), close + 1
    # a default: `, 'text'` where '' is a quote; the text may hold a `}`
    i = start + 2 + len(inner.split(",", 1)[0]) + 1
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text) or text[i] != "'":
        return None
    i += 1
    default = []
    while i < len(text):
        if text[i] == "'":
            if text.startswith("''", i):
                default.append("'")
                i += 2
                continue
            break
        default.append(text[i])
        i += 1
    else:
        return None
    i += 1
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text) or text[i] != "}":
        return None
    return Variable(key.lower(), "".join(default)), i + 1


def template(text: str) -> str | Template:
    """`text` with its policy variables parsed, or `text` itself if it has none."""
    if "${" not in text:
        return text
    parts: list[str | Variable | tuple[str]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        found = _variable_at(text, i) if text.startswith("${", i) else None
        if found is None:
            literal.append(text[i])
            i += 1
            continue
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(found[0])
        i = found[1]
    if literal:
        parts.append("".join(literal))
    return Template(text, tuple(parts)) if any(not isinstance(p, str) for p in parts) else text


def variable_value(context: Mapping[str, Any], key: str) -> str | None:
    """A condition key's value as a policy variable sees it: a string, or
    None when the request lacks the key or it holds a set of values."""
    value = context.get(key)
    if value is None or isinstance(value, (list, tuple, set, frozenset)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


@functools.lru_cache(maxsize=4096)
def _resolved_pattern(pieces: tuple[tuple[str, bool], ...], ignore_case: bool) -> re.Pattern[str]:
    """A resolved template as a wildcard pattern: only the policy's own
    text has wildcards; a variable's value and an escape match themselves."""
    regex = "".join(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text) if own else re.escape(text)
        for text, own in pieces)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _matches(pattern: str | Template, value: str, context: Mapping[str, Any] | None, ignore_case: bool) -> bool:
    """Does `value` match a Resource / Action-style wildcard pattern, after its variables?"""
    if isinstance(pattern, str):
        return wildcard_match(pattern, value, ignore_case=ignore_case)
    pieces = pattern.resolve(context or {})
    return pieces is not None and _resolved_pattern(pieces, ignore_case).fullmatch(value) is not None


# -- parsed documents -----------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    operator: str  # base operator, e.g. "StringLike"
    qualifier: str | None  # "ForAnyValue" | "ForAllValues" | None
    if_exists: bool
    key: str  # lower-cased condition key
    values: tuple[Any, ...]  # a String or Arn operator's may hold Templates
    variables: bool = False  # some value is a Template: resolve per request


@dataclass(frozen=True)
class Statement:
    sid: str | None
    effect: str  # "Allow" | "Deny"
    principals: tuple[str, ...] | None  # None: no Principal element (IAM policies)
    not_principals: tuple[str, ...] | None
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str | Template, ...] | None
    not_resources: tuple[str | Template, ...] | None
    conditions: tuple[Condition, ...]
    #: Resource or NotResource holds a Template: matched per request, after
    #: the remembered candidates (`_candidates` passes the statement on)
    variable_resources: bool = False


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]
    #: (principal, action, resource) -> the statements that can apply to such
    #: a request, before conditions (see `_candidates`); a policy never
    #: changes, so neither do they. Not part of the policy's value.
    _memo: dict[tuple[str | None, str, str], tuple[tuple[Statement, bool, bool], ...]] = field(
        default_factory=dict, compare=False, hash=False, repr=False)


_OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
    "StringLike", "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan",
    "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals",
    "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan",
    "DateGreaterThanEquals", "Bool", "Null", "ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike",
    "BinaryEquals", "IpAddress", "NotIpAddress",
}
_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "NumericNotEquals",
            "DateNotEquals", "ArnNotEquals", "ArnNotLike", "NotIpAddress"}


def _bad(message: str) -> MalformedPolicyDocumentException:
    return MalformedPolicyDocumentException(f"The policy document is malformed: {message}")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _bad(f"{where} must be a string or a non-empty list of strings")


#: IAM's unique id of a user (AIDA...) or role (AROA...). A key policy names
#: one where it named a principal IAM has since deleted; it matches no caller,
#: and a policy put with one is refused (`_principals_exist`), as AWS refuses it.
UNIQUE_ID = re.compile(r"A(IDA|ROA)[A-Z0-9]{17}")


def without_principal(document: str, principal: str, unique_id: str) -> str | None:
    """The key policy with every Principal and NotPrincipal entry that names
    `principal` naming `unique_id` instead (what IAM does to the policies
    naming a principal it deletes); None if no such entry exists. Conditions
    are left as they are: they compare strings, and AWS leaves them too."""
    raw = json.loads(document)
    statements = raw.get("Statement")
    changed = False
    for statement in statements if isinstance(statements, list) else [statements]:
        for element in ("Principal", "NotPrincipal"):
            value = statement.get(element)
            if not isinstance(value, dict) or "AWS" not in value:
                continue
            names = value["AWS"]
            if names == principal:
                value["AWS"] = unique_id
                changed = True
            elif isinstance(names, list) and principal in names:
                value["AWS"] = [unique_id if name == principal else name for name in names]
                changed = True
    return json.dumps(raw, indent=2) if changed else None


def _principals(value: Any, where: str) -> tuple[str, ...]:
    if value == "*":
        return ("*",)
    if not isinstance(value, dict) or not value:
        raise _bad(f'{where} must be "*" or a map such as {{"AWS": [...]}}')
    out: list[str] = []
    for kind, names in value.items():
        if kind not in ("AWS", "Service", "Federated", "CanonicalUser"):
            raise _bad(f"{where} has an unknown principal type {kind!r}")
        for name in _strings(names, f"{where}.{kind}"):
            if kind == "AWS" and name != "*" and not re.fullmatch(r"\d{12}", name) and \
                    not re.fullmatch(r"arn:aws:(iam|sts)::\d{12}:\S+", name) and not UNIQUE_ID.fullmatch(name):
                raise _bad(f"{where} has an invalid AWS principal {name!r}")
            out.append(name if kind == "AWS" else f"{kind}:{name}")
    return tuple(out)


#: the operators that compare strings: their values may hold policy variables
_STRING_OPERATORS = frozenset(op for op in _OPERATORS if op.startswith(("String", "Arn")))


def _condition_block(value: Any, variables: bool) -> tuple[Condition, ...]:
    if not isinstance(value, dict):
        raise _bad("Condition must be a map of operators")
    out = []
    for op_name, keys in value.items():
        qualifier = None
        base = op_name
        if ":" in op_name:
            qualifier, base = op_name.split(":", 1)
            if qualifier not in ("ForAnyValue", "ForAllValues"):
                raise _bad(f"unknown condition qualifier {qualifier!r}")
        if_exists = base.endswith("IfExists")
        if if_exists:
            base = base[: -len("IfExists")]
        if base not in _OPERATORS:
            raise _bad(f"unknown condition operator {op_name!r}")
        if not isinstance(keys, dict) or not keys:
            raise _bad(f"condition {op_name} must map condition keys to values")
        for key, vals in keys.items():
            vals = vals if isinstance(vals, list) else [vals]
            if not vals or not all(isinstance(v, (str, int, float, bool)) for v in vals):
                raise _bad(f"condition {op_name} {key} must have string, number or boolean values")
            if base in ("IpAddress", "NotIpAddress") and not all(_network(str(v)) for v in vals):
                raise _bad(f"condition {op_name} {key} must have IP addresses or CIDR ranges "
                           "(10.0.0.0/8, 2001:db8::/32)")
            if variables and base in _STRING_OPERATORS:
                vals = [template(v) if isinstance(v, str) else v for v in vals]
            out.append(Condition(base, qualifier, if_exists, key.lower(), tuple(vals),
                                 any(isinstance(v, Template) for v in vals)))
    return tuple(out)


def _resources(value: Any, where: str, variables: bool) -> tuple[str | Template, ...]:
    names = _strings(value, where)
    return tuple(template(n) for n in names) if variables else names


def _statement(raw: Any, i: int, is_key_policy: bool, trust: bool = False, variables: bool = True) -> Statement:
    where = f"Statement[{i}]"
    if not isinstance(raw, dict):
        raise _bad(f"{where} must be an object")
    known = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
             "NotResource", "Condition"}
    unknown = set(raw) - known
    if unknown:
        raise _bad(f"{where} has unknown element(s) {sorted(unknown)}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise _bad(f"{where}.Effect must be Allow or Deny")
    if ("Action" in raw) == ("NotAction" in raw):
        raise _bad(f"{where} needs exactly one of Action and NotAction")
    if trust and ("Resource" in raw or "NotResource" in raw):  # the role is the resource
        raise _bad(f"{where}: a role's trust policy has the prohibited field Resource")
    if not trust and ("Resource" in raw) == ("NotResource" in raw):
        raise _bad(f"{where} needs exactly one of Resource and NotResource")
    has_principal = "Principal" in raw or "NotPrincipal" in raw
    if is_key_policy and ("Principal" in raw) == ("NotPrincipal" in raw):
        raise _bad(f"{where} needs exactly one of Principal and NotPrincipal")
    if not is_key_policy and has_principal:
        raise _bad(f"{where}: an IAM policy statement must not name a Principal")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise _bad(f"{where}.Sid must be a string")
    resources = _resources(raw["Resource"], f"{where}.Resource", variables) if "Resource" in raw else None
    not_resources = _resources(raw["NotResource"], f"{where}.NotResource", variables) \
        if "NotResource" in raw else None
    return Statement(
        sid=sid, effect=effect,
        principals=_principals(raw["Principal"], f"{where}.Principal") if "Principal" in raw else None,
        not_principals=_principals(raw["NotPrincipal"], f"{where}.NotPrincipal") if "NotPrincipal" in raw else None,
        actions=_strings(raw["Action"], f"{where}.Action") if "Action" in raw else None,
        not_actions=_strings(raw["NotAction"], f"{where}.NotAction") if "NotAction" in raw else None,
        resources=resources, not_resources=not_resources,
        conditions=_condition_block(raw["Condition"], variables) if "Condition" in raw else (),
        variable_resources=any(isinstance(r, Template) for r in (*(resources or ()), *(not_resources or ()))))


@functools.lru_cache(maxsize=1024)
def parse(document: str, *, key_policy: bool = True, trust: bool = False) -> Policy:
    """Validate and compile a policy document, or MalformedPolicyDocumentException.
    `key_policy`: a resource-based policy (every statement names a
    principal); `trust`: a role's trust policy, a resource-based policy
    without Resource (the role is the resource)."""
    if not isinstance(document, str) or not document.strip():
        raise _bad("the document is empty")
    if len(document.encode()) > MAX_POLICY_BYTES:
        raise _bad(f"the document exceeds {MAX_POLICY_BYTES} bytes")
    try:
        raw = json.loads(document)
    except json.JSONDecodeError as exc:
        raise _bad(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise _bad("the document must be a JSON object")
    unknown = set(raw) - {"Version", "Id", "Statement"}
    if unknown:
        raise _bad(f"unknown top-level element(s) {sorted(unknown)}")
    if raw.get("Version") not in VERSIONS:
        raise _bad(f"Version must be one of {list(VERSIONS)}")
    statements = raw.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise _bad("Statement must be a non-empty list")
    variables = raw["Version"] == "2012-10-17"  # IAM: "2008-10-17" predates policy variables
    return Policy(tuple(_statement(s, i, key_policy or trust, trust, variables) for i, s in enumerate(statements)))


# -- evaluation -----------------------------------------------------------------

@dataclass(frozen=True)
class Grant:
    grant_id: str
    grantee: str | None  # None: a service principal's grant, which no keyledger caller is
    operations: tuple[str, ...]  # "Encrypt", "Decrypt", ...
    context_equals: Mapping[str, str] | None = None
    context_subset: Mapping[str, str] | None = None
    source_arn: str | None = None  # only requests made on behalf of this resource (aws:SourceArn)

    @classmethod
    def of(cls, row: Any) -> Grant:
        """The grant a grants-table row (projections.state.GrantState) holds."""
        return cls(row.grant_id, row.grantee_principal, row.operations, row.context_equals, row.context_subset,
                   row.source_arn)


@dataclass(frozen=True)
class Request:
    principal: str
    action: str  # "kms:Encrypt"
    resource: str  # the key ARN, or "*" for calls without a key
    context: Mapping[str, Any]  # lower-cased condition keys -> value(s)
    encryption_context: Mapping[str, str] | None = None
    #: for CreateGrant: the constraints of the grant being made (equals, subset)
    new_grant_constraints: tuple[Mapping[str, str] | None, Mapping[str, str] | None] | None = None
    #: for CreateGrant: the operations of the grant being made. A grant lets
    #: its grantee create grants only within its own operations, so a
    #: CreateGrant request that does not say which ones no grant allows.
    new_grant_operations: tuple[str, ...] | None = None


def request_context(principal: str, now: datetime, key: Any = None, *,
                    encryption_context: Mapping[str, str] | None = None, request_alias: str | None = None,
                    via_service: str | None = None, extra: Mapping[str, Any] | None = None,
                    region: str | None = None, source_ip: str | None = None,
                    secure_transport: bool | None = None,
                    principal_tags: Mapping[str, str] | None = None,
                    token_issued: datetime | None = None, principal_id: str | None = None) -> dict[str, Any]:
    """The condition keys of a request (lower-cased names). `key` is the
    key's state (anything with key_spec, key_usage, origin, aliases, tags).
    `via_service` is the integrated service (`ssm.us-east-1.amazonaws.com`)
    making the call on the principal's behalf; a direct call has none, and
    then `kms:ViaService` is absent (AWS: only `...IfExists` and `Null`
    conditions pass on it). `source_ip` and `secure_transport` are the
    network's (`aws:SourceIp`, `aws:SecureTransport`): a request that came
    over no network (the library, the CLI) has neither, and an `IpAddress`
    condition never holds for it, as AWS treats a call without the key.
    `principal_tags` are the caller's IAM tags (a session's: its role's),
    `aws:PrincipalTag/<key>`. `token_issued`: when the credentials of a
    role session's request were issued (`aws:TokenIssueTime`), known only
    from the credentials themselves (the server's, `as_session`'s).
    `principal_id`: the caller's IAM unique id from its row (a session's:
    its role's), for `aws:userid`; without it, the id derived from the ARN."""
    account = account_of(principal)
    ctx: dict[str, Any] = {"aws:principalarn": role_of(principal) or principal, "aws:currenttime": now,
                           "aws:epochtime": int(now.timestamp()), "aws:principalisawsservice": False,
                           "kms:calleraccount": account or "", **_identity_keys(principal, account, principal_id)}
    if role_of(principal) is not None:  # temporary credentials, and keyledger knows no MFA
        ctx["aws:multifactorauthpresent"] = False
        if token_issued is not None:
            ctx["aws:tokenissuetime"] = token_issued
    for k, v in (principal_tags or {}).items():
        ctx["aws:principaltag/" + k.lower()] = v
    if region is not None:
        ctx["aws:requestedregion"] = region
    if source_ip is not None:
        ctx["aws:sourceip"] = source_ip
    if secure_transport is not None:
        ctx["aws:securetransport"] = secure_transport
    if via_service is not None:
        ctx["kms:viaservice"] = via_service
    ctx["aws:viaawsservice"] = via_service is not None  # an integrated service calling for the principal
    if key is not None:
        ctx["kms:keyspec"] = key.key_spec
        ctx["kms:keyusage"] = key.key_usage
        ctx["kms:keyorigin"] = key.origin
        ctx["kms:resourcealiases"] = list(key.aliases)
        for k, v in key.tags.items():
            ctx["aws:resourcetag/" + k.lower()] = v
    if request_alias is not None:
        ctx["kms:requestalias"] = request_alias
    if encryption_context is not None:
        ctx["kms:encryptionalgorithm"] = "SYMMETRIC_DEFAULT"
        ctx["kms:encryptioncontextkeys"] = list(encryption_context)
        for k, v in encryption_context.items():
            ctx["kms:encryptioncontext:" + k.lower()] = v
    if extra:
        ctx.update(extra)
    # AWS's deprecated names for kms:KeySpec and kms:KeyUsage, which "work the same way"
    if "kms:keyspec" in ctx:
        ctx["kms:customermasterkeyspec"] = ctx["kms:keyspec"]
    if "kms:keyusage" in ctx:
        ctx["kms:customermasterkeyusage"] = ctx["kms:keyusage"]
    return ctx


def unique_id(arn: str, drawn: str | None = None) -> str:
    """A user's or role's IAM unique id: `drawn`, the one its
    `PrincipalCreated` record holds, or for a user or role made before ids
    were drawn at random, and a caller the ledger has no row of (a
    credentials file's user), the one derived from its ARN (AIDA... for a
    user, AROA... for a role; 17 characters of its SHA-256)."""
    if drawn is not None:
        return drawn
    return ("AROA" if ":role/" in arn else "AIDA") + hashlib.sha256(arn.encode()).hexdigest()[:17].upper()


def new_unique_id(kind: str, random: Callable[[int], bytes]) -> str:
    """A fresh IAM unique id for a user (AIDA...) or role (AROA...): 17
    base32 characters of 85 random bits, as IAM's ids look."""
    return ("AROA" if kind == "role" else "AIDA") + base64.b32encode(random(11)).decode()[:17]


def user_id(principal: str, account: str, principal_id: str | None = None) -> str:
    """Who STS says the caller is (GetCallerIdentity's UserId, aws:userid):
    the account id for the root, `AROA...:<session name>` for a role's
    session, the unique id for a user or role. `principal_id` is that
    user's or role's id from its row (a session's: its role's); without
    it, the id derived from the ARN."""
    role = role_of(principal)
    if role is not None:
        return f"{principal_id or unique_id(role)}:{principal.rsplit('/', 1)[1]}"
    return account if principal == root_of(account) else principal_id or unique_id(principal)


@functools.lru_cache(maxsize=4096)
def _identity(principal: str, account: str | None, principal_id: str | None) -> tuple[tuple[str, str], ...]:
    if account is None:
        return ()
    out = [("aws:principalaccount", account)]
    if principal == root_of(account):
        kind = "Account"
    elif principal.startswith(f"arn:aws:iam::{account}:user/"):
        kind = "User"
        out.append(("aws:username", principal.rsplit("/", 1)[1]))
    elif role_of(principal) is not None or principal.startswith(f"arn:aws:iam::{account}:role/"):
        kind = "AssumedRole"  # a session (or, in the library only, a role acting itself)
    else:
        return tuple(out)
    return (*out, ("aws:principaltype", kind), ("aws:userid", user_id(principal, account, principal_id)))


def _identity_keys(principal: str, account: str | None, principal_id: str | None) -> dict[str, str]:
    """aws:PrincipalAccount, aws:PrincipalType, aws:userid and aws:username, as IAM sets them."""
    return dict(_identity(principal, account, principal_id))


class LazyContext(Mapping[str, Any]):
    """A request's condition keys, built on first use: most requests meet
    only statements without conditions and no grant, and never read them."""

    __slots__ = ("_build", "_built")

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        self._build: Callable[[], dict[str, Any]] | None = build
        self._built: dict[str, Any] = {}

    def _keys(self) -> dict[str, Any]:
        if self._build is not None:
            self._built, self._build = self._build(), None
        return self._built

    def __getitem__(self, key: str) -> Any:
        return self._keys()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._keys()

    def get(self, key: str, default: Any = None) -> Any:
        return self._keys().get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def __repr__(self) -> str:
        return f"LazyContext({self._keys()!r})"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # AWS's "because ..." clause when denied; what allowed it otherwise


def _principal_in(names: Sequence[str], principal: str) -> bool:
    account = account_of(principal)
    role = role_of(principal)
    for name in names:
        if name == "*" or name == principal or (role is not None and name == role):
            return True
        if account and (name == account or name == root_of(account)) and principal == root_of(account):
            return True
    return False


def _delegates(names: Sequence[str], principal: str) -> bool:
    """The statement names the principal's account (root ARN or account id)."""
    account = account_of(principal)
    return account is not None and account != "" and any(n in (account, root_of(account)) for n in names)


def _any_match(patterns: Sequence[str], value: str, ignore_case: bool) -> bool:
    return any(wildcard_match(p, value, ignore_case=ignore_case) for p in patterns)


def _action_ok(s: Statement, action: str) -> bool:
    if s.actions is not None:
        return _any_match(s.actions, action, True)
    return not _any_match(s.not_actions or (), action, True)


def _resource_ok(s: Statement, resource: str, context: Mapping[str, Any] | None = None) -> bool:
    """With `context` None, a statement whose resources hold policy
    variables passes here and is matched per request (`_holds`)."""
    if s.variable_resources and context is None:
        return True
    if s.resources is not None:
        return any(_matches(p, resource, context, False) for p in s.resources)
    return not any(_matches(p, resource, context, False) for p in s.not_resources or ())


def _to_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _to_date(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return datetime.fromtimestamp(v, tz=timezone.utc)
    if isinstance(v, str):
        try:
            d = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
    return None


#: Numeric* and Date* operators: one comparison each, after converting both sides.
_ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "Equals": operator.eq, "LessThan": operator.lt, "LessThanEquals": operator.le,
    "GreaterThan": operator.gt, "GreaterThanEquals": operator.ge}
_ORDERED: tuple[tuple[str, Callable[[Any], Any]], ...] = (("Numeric", _to_number), ("Date", _to_date))


@functools.lru_cache(maxsize=1024)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IpAddress condition's value (an address or a CIDR range), or None."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(found, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1
    return mapped if mapped is not None else found


def address_in(address: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Is `address` (text; `::ffff:a.b.c.d` is the IPv4 address) in `network`? False for no address."""
    found = _address(address)
    return found is not None and found.version == network.version and found in network


def _positive(op: str, actual: Any, wanted: Any) -> bool:
    """Does one request value match one policy value under the non-negated form of op?"""
    base = op.replace("Not", "", 1) if op in _NEGATED else op
    if wanted is None:  # a policy variable without a value: nothing equals it or is like it
        return False
    if isinstance(wanted, re.Pattern):  # a Like operator's value with its variables resolved
        return isinstance(actual, str) and wanted.fullmatch(actual) is not None
    if base == "IpAddress":
        network = _network(str(wanted))
        return network is not None and address_in(str(actual), network)
    if base in ("StringEquals", "ArnEquals", "BinaryEquals"):
        return isinstance(actual, str) and actual == str(wanted)
    if base == "StringEqualsIgnoreCase":
        return isinstance(actual, str) and actual.lower() == str(wanted).lower()
    if base in ("StringLike", "ArnLike"):
        return isinstance(actual, str) and wildcard_match(str(wanted), actual)
    if base == "Bool":
        asked = actual if isinstance(actual, bool) else str(actual).lower() == "true"
        allowed = wanted if isinstance(wanted, bool) else str(wanted).lower() == "true"
        return asked == allowed
    for family, convert in _ORDERED:
        if base.startswith(family):
            a, w = convert(actual), convert(wanted)
            return a is not None and w is not None and bool(_ORDERINGS[base[len(family):]](a, w))
    return False


def _one_value(c: Condition, actual: Any, wanted: Sequence[Any]) -> bool:
    hit = any(_positive(c.operator, actual, w) for w in wanted)
    return not hit if c.operator in _NEGATED else hit


_LIKE = frozenset({"StringLike", "StringNotLike", "ArnLike", "ArnNotLike"})


def _wanted(c: Condition, context: Mapping[str, Any]) -> tuple[Any, ...]:
    """The condition's values with their policy variables resolved: a
    string, a compiled pattern for a Like operator, or None (no value,
    which matches nothing)."""
    out: list[Any] = []
    for value in c.values:
        if isinstance(value, Template):
            pieces = value.resolve(context)
            if pieces is None:
                value = None
            elif c.operator in _LIKE:
                value = _resolved_pattern(pieces, False)
            else:
                value = "".join(text for text, _ in pieces)
        out.append(value)
    return tuple(out)


def condition_holds(c: Condition, context: Mapping[str, Any]) -> bool:
    present = c.key in context and context[c.key] is not None
    if c.operator == "Null":
        want_absent = any(str(v).lower() == "true" for v in c.values)
        return (not present) == want_absent
    if not present:
        if c.qualifier == "ForAllValues":
            return True
        if c.qualifier == "ForAnyValue":  # no context key: false, even for a negated operator
            return c.if_exists
        return c.if_exists or c.operator in _NEGATED
    actual = context[c.key]
    values = list(actual) if isinstance(actual, (list, tuple, set, frozenset)) else [actual]
    wanted = _wanted(c, context) if c.variables else c.values
    if c.qualifier == "ForAllValues":
        return all(_one_value(c, v, wanted) for v in values)
    if c.qualifier == "ForAnyValue":
        return any(_one_value(c, v, wanted) for v in values)
    if c.operator in _NEGATED:  # a plain negated operator on a set: none may match
        return all(_one_value(c, v, wanted) for v in values) if values else True
    return any(_one_value(c, v, wanted) for v in values)


def _applies(s: Statement, req: Request) -> bool:
    return _action_ok(s, req.action) and _resource_ok(s, req.resource) and _holds(s, req.resource, req.context)


def _holds(s: Statement, resource: str, context: Mapping[str, Any]) -> bool:
    """What a candidate statement decides per request: its resources, if
    they hold policy variables, and its conditions."""
    if s.variable_resources and not _resource_ok(s, resource, context):
        return False
    return all(condition_holds(c, context) for c in s.conditions)


def _key_policy_principal(s: Statement, principal: str) -> tuple[bool, bool]:
    """(names the principal itself, names the principal's account)."""
    if s.principals is not None:
        return _principal_in(s.principals, principal), _delegates(s.principals, principal)
    excluded = _principal_in(s.not_principals or (), principal)
    return not excluded, False


#: Grant operations that take no encryption context: AWS does not apply
#: a grant's encryption-context constraints to them.
_UNCONSTRAINED_GRANT_OPERATIONS = frozenset({"DescribeKey", "RetireGrant"})


def grant_allows(grant: Grant, req: Request) -> bool:
    op = req.action.split(":", 1)[1]
    if op not in grant.operations or grant.grantee is None or \
            (grant.grantee != req.principal and grant.grantee != role_of(req.principal)):
        return False
    # AWS: a SourceArn constraint is the global aws:SourceArn condition in the
    # grant, for every operation but RetireGrant. keyledger's callers never make
    # a request on behalf of an AWS resource, so such a grant allows them nothing.
    if grant.source_arn is not None and op != "RetireGrant" and \
            req.context.get("aws:sourcearn") != grant.source_arn:
        return False
    if op in _UNCONSTRAINED_GRANT_OPERATIONS:
        return True
    if op == "CreateGrant":
        # AWS: a grant made under a grant gets at most the operations of the
        # grant it came from, with constraints at least as strict; otherwise
        # a [Decrypt, CreateGrant] grantee could grant itself Encrypt.
        if req.new_grant_operations is None or not set(req.new_grant_operations) <= set(grant.operations):
            return False
        if grant.context_equals is None and grant.context_subset is None:
            return True
        return _at_least_as_constrained(grant, req.new_grant_constraints or (None, None))
    if grant.context_equals is not None or grant.context_subset is not None:
        # An encryption-context constraint on an operation or key that takes
        # no encryption context (CreateGrant refuses to make one; an older
        # log may hold one) is a constraint nobody can meet: it allows nothing.
        if op in keyspecs.GRANT_OPERATIONS_WITHOUT_CONTEXT or req.encryption_context is None or \
                req.context.get("kms:keyspec", keyspecs.SYMMETRIC_DEFAULT) != keyspecs.SYMMETRIC_DEFAULT:
            return False
    # In a grant constraint the keys are not case sensitive, the values are.
    ctx = {k.lower(): v for k, v in (req.encryption_context or {}).items()}
    if grant.context_equals is not None and \
            ctx != {k.lower(): v for k, v in grant.context_equals.items()}:
        return False
    if grant.context_subset is not None and \
            any(ctx.get(k.lower()) != v for k, v in grant.context_subset.items()):
        return False
    return True


def _lower(pairs: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in pairs.items()}


def _at_least_as_constrained(parent: Grant, child: tuple[Mapping[str, str] | None, Mapping[str, str] | None],
                             ) -> bool:
    """A grantee whose grant has encryption-context constraints may create
    grants only with the same or stricter constraints (AWS: the new grant
    can never open more than the one it came from)."""
    equals, subset = (None if c is None else _lower(c) for c in child)
    if parent.context_equals is not None:
        return equals == _lower(parent.context_equals)
    required = _lower(parent.context_subset or {})
    given = equals if equals is not None else subset
    return given is not None and all(given.get(k) == v for k, v in required.items())


#: how many (principal, action, resource) triples a policy remembers
MEMO_ENTRIES = 1024


def _candidates(policy: Policy, principal: str, action: str, resource: str, *, key_policy: bool,
                memo: bool = True) -> tuple[tuple[Statement, bool, bool], ...]:
    """The statements of `policy` whose principal (a key policy's; an IAM
    policy has none), action and resource match, in order, each with (names
    the principal itself, names its account): what `_applies` decides before
    the conditions, which alone depend on the rest of the request. Pure, so
    remembered per policy (bounded; `memo=False` computes afresh)."""
    triple = (principal if key_policy else None, action, resource)
    found = policy._memo.get(triple) if memo else None
    if found is None:
        out = []
        for s in policy.statements:
            itself, its_account = _key_policy_principal(s, principal) if key_policy else (True, False)
            if (itself or its_account) and _action_ok(s, action) and _resource_ok(s, resource):
                out.append((s, itself, its_account))
        found = tuple(out)
        if memo:
            if len(policy._memo) >= MEMO_ENTRIES:
                policy._memo.clear()
            policy._memo[triple] = found
    return found


def evaluate(req: Request, *, key_policy: Policy | None, iam_policies: Sequence[Policy],
             grants: Sequence[Grant] | Callable[[], Sequence[Grant]] = (), memo: bool = True) -> Decision:
    """The decision for one request. `key_policy` is None for calls without a
    key. `memo=False` decides without the policies' remembered candidates
    (the same decision: tests hold the two to it)."""
    account = account_of(req.principal)
    is_root = account is not None and req.principal == root_of(account)
    direct = delegated = False
    context = req.context
    if key_policy is not None:
        for s, itself, its_account in _candidates(key_policy, req.principal, req.action, req.resource,
                                                  key_policy=True, memo=memo):
            if (s.conditions or s.variable_resources) and not _holds(s, req.resource, context):
                continue
            if s.effect == "Deny":
                return Decision(False, "with an explicit deny in a resource-based policy")
            direct = direct or itself
            delegated = delegated or its_account
    iam_allows = is_root
    for policy in iam_policies:
        for s, _, _ in _candidates(policy, req.principal, req.action, req.resource, key_policy=False, memo=memo):
            if (s.conditions or s.variable_resources) and not _holds(s, req.resource, context):
                continue
            if s.effect == "Deny":
                return Decision(False, "with an explicit deny in an identity-based policy")
            iam_allows = True
    if key_policy is None:
        return Decision(True, "an identity-based policy allows it") if iam_allows else \
            Decision(False, f"because no identity-based policy allows the {req.action} action")
    if direct:
        return Decision(True, "the key policy allows the principal")
    if delegated and iam_allows:
        return Decision(True, "the key policy delegates to IAM and an identity-based policy allows it")
    for grant in grants() if callable(grants) else grants:
        if grant_allows(grant, req):
            return Decision(True, f"grant {grant.grant_id} allows it")
    if delegated:
        return Decision(False, f"because no identity-based policy allows the {req.action} action")
    return Decision(False, f"because no resource-based policy allows the {req.action} action")


def denial_message(req: Request, decision: Decision) -> str:
    return (f"User: {req.principal} is not authorized to perform: {req.action} on resource: "
            f"{req.resource} {decision.reason}")


@dataclass(frozen=True)
class Match:
    source: str  # "key policy" | "IAM policy <name>" | "grant <id>"
    statement: str  # the Sid, or "Statement[i]"
    effect: str  # Allow | Deny
    via: str  # "principal" | "account delegation" | "identity" | "grant"


def explain(req: Request, *, key_policy: Policy | None, iam_policies: Mapping[str, Policy],
            grants: Sequence[Grant] = ()) -> tuple[Decision, list[Match]]:
    """The decision (exactly `evaluate`'s) and every statement and grant
    that applied to the request: what `keyledger policy simulate` prints."""
    decision = evaluate(req, key_policy=key_policy, iam_policies=list(iam_policies.values()), grants=grants)
    matches: list[Match] = []
    if key_policy is not None:
        for i, s in enumerate(key_policy.statements):
            itself, its_account = _key_policy_principal(s, req.principal)
            if (itself or its_account) and _applies(s, req):
                matches.append(Match("key policy", s.sid or f"Statement[{i}]", s.effect,
                                     "principal" if itself else "account delegation"))
    for name, policy in iam_policies.items():
        for i, s in enumerate(policy.statements):
            if _applies(s, req):
                matches.append(Match(f"IAM policy {name}", s.sid or f"Statement[{i}]", s.effect, "identity"))
    if key_policy is not None:
        for grant in grants:
            if grant_allows(grant, req):
                matches.append(Match(f"grant {grant.grant_id}", "-", "Allow", "grant"))
    return decision, matches
