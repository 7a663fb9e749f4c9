"""Render records as AWS CloudTrail records (eventVersion 1.08).

The log already is the trail; this is how it reads to tools and people that
speak CloudTrail. Plaintext never was in the log, and the ciphertext digests
and wrapped material that are stay out of the rendering.
"""

from __future__ import annotations

import bisect
import hashlib
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from keyledger import events as ev
from keyledger.policy import role_of, unique_id, user_id

READ_ONLY = {
    "DescribeKey", "ListKeys", "ListAliases", "GetKeyRotationStatus", "ListKeyRotations",
    "ListResourceTags", "GetKeyPolicy", "ListKeyPolicies", "ListGrants", "ListRetirableGrants",
    "Encrypt", "Decrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateRandom",
    "ReEncrypt", "ListUsers", "ListUserPolicies", "GetUserPolicy", "GetUser", "GetRole", "ListRoles",
    "ListRolePolicies", "GetRolePolicy", "ListAccessKeys", "ListUserTags", "ListRoleTags", "GetCallerIdentity",
    "GetKeyLastUsage", "DescribeCustomKeyStores", "GetAccessKeyLastUsed",
    # SSM's reads (the parameter store)
    "GetParameter", "GetParameters", "GetParametersByPath", "GetParameterHistory", "DescribeParameters",
    # the other cryptographic operations (AWS's Sign example: "readOnly": true) and GetPublicKey
    "Sign", "Verify", "GenerateMac", "VerifyMac", "DeriveSharedSecret", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "Encapsulate", "Decapsulate", "GetPublicKey",
}
SERVICE_EVENTS = {"RotateKey", "DeleteKey"}
#: the records of IAM's and STS's operations, which keyledger keeps too, name their own services
EVENT_SOURCES = {
    **dict.fromkeys(("CreateUser", "DeleteUser", "GetUser", "ListUsers", "CreateRole", "DeleteRole", "GetRole",
                     "ListRoles", "UpdateRole", "UpdateRoleDescription", "UpdateAssumeRolePolicy", "PutUserPolicy",
                     "GetUserPolicy", "DeleteUserPolicy", "TagUser", "UntagUser", "ListUserTags", "TagRole",
                     "UntagRole", "ListRoleTags", "ListUserPolicies", "PutRolePolicy", "GetRolePolicy",
                     "DeleteRolePolicy", "ListRolePolicies",
                     "CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey", "ListAccessKeys", "GetAccessKeyLastUsed",
                     "SimulatePrincipalPolicy"), "iam.amazonaws.com"),
    "AssumeRole": "sts.amazonaws.com", "GetCallerIdentity": "sts.amazonaws.com",
    **dict.fromkeys(("PutParameter", "GetParameter", "GetParameters", "GetParametersByPath", "DeleteParameter",
                     "DeleteParameters", "GetParameterHistory", "LabelParameterVersion", "DescribeParameters",
                     "UnlabelParameterVersion", "AddTagsToResource", "ListTagsForResource",
                     "RemoveTagsFromResource"),
                    "ssm.amazonaws.com"),
}
_HIDDEN = {"material", "ciphertext_digest", "source_ciphertext_digest", "key_version", "source_key_version",
           "policy", "plaintext_returned", "via_service"}  # via_service: shown as invokedBy


def event_source(operation: str) -> str:
    """The service a record's operation belongs to, as CloudTrail names it
    (`kms.amazonaws.com`; IAM's, STS's and SSM's name their own)."""
    return EVENT_SOURCES.get(operation, "kms.amazonaws.com")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def event_time(us: int) -> str:
    return ev.from_us(us).strftime("%Y-%m-%dT%H:%M:%SZ")


def _account(principal: str, default: str) -> str:
    parts = principal.split(":")
    return parts[4] if len(parts) > 4 and parts[0] == "arn" else default


class Incarnations:
    """The unique id each user or role had when a record was made, from
    the records that made them (`PrincipalCreated`): a user deleted and
    made again under its name is another principal, with another id, and
    the trail shows each request under the id of its time. And when each
    role session's credentials were issued (`RoleAssumed`), by their
    access key id: CloudTrail's sessionContext.attributes.creationDate."""

    def __init__(self, records: Iterable[ev.Record]) -> None:
        made: dict[str, list[tuple[int, str]]] = {}
        self.sessions: dict[str, int] = {}  # ASIA... -> when issued (us)
        for record in records:
            e = record.event
            if isinstance(e, ev.PrincipalCreated):
                made.setdefault(e.principal, []).append((record.seq, unique_id(e.principal, e.unique_id)))
            elif isinstance(e, ev.RoleAssumed):
                self.sessions[e.access_key_id] = record.time
        self._made = {arn: sorted(ids) for arn, ids in made.items()}

    def at(self, seq: int) -> Callable[[str], str]:
        """A user's or role's id as of the record at `seq` (made before it)."""
        def id_of(arn: str) -> str:
            made = self._made.get(arn, ())
            i = bisect.bisect_left(made, (seq, ""))
            return made[i - 1][1] if i else unique_id(arn)
        return id_of


def user_identity(principal: str, account: str, id_of: Callable[[str], str] = unique_id) -> dict[str, Any]:
    """CloudTrail's userIdentity of `principal`; `id_of` gives a user's or
    role's unique id (by default, the one derived from its ARN)."""
    if principal == ev.SERVICE_PRINCIPAL:
        return {"accountId": account, "invokedBy": ev.SERVICE_PRINCIPAL}
    acct = _account(principal, account)
    if principal.endswith(":root"):
        return {"type": "Root", "principalId": acct, "arn": principal, "accountId": acct}
    if ":user/" in principal:
        return {"type": "IAMUser", "principalId": id_of(principal), "arn": principal, "accountId": acct,
                "userName": principal.split(":user/", 1)[1]}
    role = role_of(principal)
    if role is not None:  # a session: AROA<its role's id>:<session name>, and the role that issued it
        role_id = id_of(role)
        return {"type": "AssumedRole", "principalId": user_id(principal, acct, role_id), "arn": principal,
                "accountId": acct,
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": role_id, "arn": role,
                                                     "accountId": acct, "userName": role.split(":role/", 1)[1]}}}
    if ":role/" in principal or ":assumed-role/" in principal:
        stable = hashlib.sha256(principal.encode()).hexdigest()[:17].upper()
        return {"type": "AssumedRole", "principalId": f"AROA{stable}", "arn": principal, "accountId": acct}
    return {"type": "Unknown", "principalId": principal, "arn": principal, "accountId": acct}


def _signed(identity: dict[str, Any], record: ev.Record, incarnations: Incarnations | None) -> dict[str, Any]:
    """The access key that signed the request (userIdentity.accessKeyId)
    and, for a role session's, when its credentials were issued."""
    key = record.access_key
    if not isinstance(key, str):
        return identity
    identity["accessKeyId"] = key
    issued = None if incarnations is None else incarnations.sessions.get(key)
    context = identity.get("sessionContext")
    if context is not None and issued is not None:
        context["attributes"] = {"creationDate": event_time(issued), "mfaAuthenticated": "false"}
    return identity


def _key_arn(key_id: str, region: str, account: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def request_parameters(event: ev.Event, region: str, account: str) -> dict[str, Any] | None:
    fields = msgspec.structs.asdict(event)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in _HIDDEN or value is None or (name == "unique_id" and isinstance(event, ev.PrincipalCreated)):
            continue  # (a new user's or role's id is in the response elements, as CloudTrail has it)
        if name in ("key_id", "source_key_id") and isinstance(value, str) and len(value) == 36:
            value = _key_arn(value, region, account)
        if name in ("operation", "error_code", "error_message"):
            continue
        key = {"key_id": "keyId", "source_key_id": "sourceKeyId"}.get(name, _camel(name))
        if isinstance(event, ev.ReEncrypted) and name == "key_id":
            key = "destinationKeyId"
        if isinstance(event, ev.ReEncrypted) and name == "encryption_context":
            key = "destinationEncryptionContext"
        out[key] = value
    if isinstance(event, (ev.Encrypted, ev.Decrypted, ev.DataKeyGenerated)):  # ReEncrypted names both sides
        out.setdefault("encryptionAlgorithm", "SYMMETRIC_DEFAULT")
    return out or None


def event_id(origin: str, seq: int) -> str:
    """A record's CloudTrail eventID: a name-based UUID of the ledger's
    checkpoint origin and the seq, the same on every rendering."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{origin}/{seq}"))


def render(record: ev.Record, *, region: str, account: str, origin: str = "keyledger",
           incarnations: Incarnations | None = None) -> dict[str, Any]:
    """One record as CloudTrail shows it; `region` is the ledger's initial
    region (a record made in another region names its own). Without
    `incarnations`, a user's or role's id is the one derived from its ARN."""
    region = record.region if isinstance(record.region, str) else region
    e = record.event
    service = record.principal == ev.SERVICE_PRINCIPAL
    key_ids = [k for k in ev.key_ids_of(e) if len(k) == 36 or k.startswith("mrk-")]
    out: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": _signed(user_identity(record.principal, account,
                                              unique_id if incarnations is None else incarnations.at(record.seq)),
                                record, incarnations),
        "eventTime": event_time(record.time),
        "eventSource": event_source(record.operation),
        "eventName": record.operation,
        "awsRegion": region,
        "sourceIPAddress": "AWS Internal" if service else record.source if isinstance(record.source, str)
        else "keyledger",  # a library or CLI call came over no network
        "userAgent": "AWS Internal" if service else "keyledger",
        "requestParameters": None if service else request_parameters(e, region, account),
        "responseElements": None,
        "requestID": record.request_id,
        "eventID": event_id(origin, record.seq),
        "readOnly": record.operation in READ_ONLY,
        "resources": [{"accountId": account, "type": "AWS::KMS::Key", "ARN": _key_arn(k, region, account)}
                      for k in key_ids],
        "eventType": "AwsServiceEvent" if service else "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "additionalEventData": {"keyledgerSeq": record.seq},
    }
    via = getattr(e, "via_service", None)
    if via:  # made by an integrated service for the user: CloudTrail names the service (ssm.amazonaws.com)
        invoker = via.split(".", 1)[0] + ".amazonaws.com"
        out["userIdentity"] = {**out["userIdentity"], "invokedBy": invoker}
        out["sourceIPAddress"] = out["userAgent"] = invoker
    if service:
        details: dict[str, Any] = {}
        if key_ids:
            details["keyId"] = _key_arn(key_ids[0], region, account)
        if isinstance(e, ev.KeyRotated):
            details["rotationType"] = e.rotation_type
            details["rotationDate"] = event_time(e.rotation_date)
        out["serviceEventDetails"] = details
    if isinstance(e, ev.RequestDenied):
        out["errorCode"] = e.error_code
        out["errorMessage"] = e.error_message
    if isinstance(e, ev.PrincipalCreated):
        kind = "role" if e.kind == "role" else "user"
        out["responseElements"] = {kind: {
            "path": "/", f"{kind}Name": e.principal.rsplit("/", 1)[1],
            f"{kind}Id": unique_id(e.principal, e.unique_id), "arn": e.principal,
            "createDate": event_time(record.time)}}
    if isinstance(e, ev.KeyCreated):
        out["responseElements"] = {"keyMetadata": {
            "AWSAccountId": account, "keyId": e.key_id, "arn": _key_arn(e.key_id, region, account),
            "creationDate": event_time(record.time), "enabled": True, "description": e.description,
            "keyUsage": e.key_usage, "keyState": "Enabled", "origin": e.origin, "keyManager": "CUSTOMER",
            "customerMasterKeySpec": e.key_spec, "keySpec": e.key_spec,
            "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "multiRegion": e.key_id.startswith("mrk-")}}
    return out
