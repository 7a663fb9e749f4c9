"""Render records as AWS CloudTrail records (eventVersion 1.08).

The log already is the trail; this is how it reads to tools and people that
speak CloudTrail. Plaintext never was in the log, and the ciphertext digests
and wrapped material that are stay out of the rendering.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import msgspec

from keyledger import events as ev
from keyledger.policy import role_of, unique_id, user_id

READ_ONLY = {
    "DescribeKey", "ListKeys", "ListAliases", "GetKeyRotationStatus", "ListKeyRotations",
    "ListResourceTags", "GetKeyPolicy", "ListKeyPolicies", "ListGrants", "ListRetirableGrants",
    "Encrypt", "Decrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateRandom",
    "ReEncrypt", "ListUsers", "ListUserPolicies", "GetUserPolicy", "GetUser", "GetRole", "ListRoles",
    "ListRolePolicies", "GetRolePolicy", "ListAccessKeys", "GetCallerIdentity", "GetKeyLastUsage", "DescribeCustomKeyStores",
    # the other cryptographic operations (AWS's Sign example: "readOnly": true) and GetPublicKey
    "Sign", "Verify", "GenerateMac", "VerifyMac", "DeriveSharedSecret", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "Encapsulate", "Decapsulate", "GetPublicKey",
}
SERVICE_EVENTS = {"RotateKey", "DeleteKey"}
#: the records of IAM's and STS's operations, which keyledger keeps too, name their own services
EVENT_SOURCES = {
    **dict.fromkeys(("CreateUser", "DeleteUser", "GetUser", "ListUsers", "CreateRole", "DeleteRole", "GetRole",
                     "ListRoles", "UpdateAssumeRolePolicy", "PutUserPolicy", "GetUserPolicy", "DeleteUserPolicy",
                     "ListUserPolicies", "PutRolePolicy", "GetRolePolicy", "DeleteRolePolicy", "ListRolePolicies",
                     "CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey", "ListAccessKeys",
                     "SimulatePrincipalPolicy"), "iam.amazonaws.com"),
    "AssumeRole": "sts.amazonaws.com", "GetCallerIdentity": "sts.amazonaws.com",
}
_HIDDEN = {"material", "ciphertext_digest", "source_ciphertext_digest", "key_version", "source_key_version",
           "policy", "plaintext_returned", "via_service"}  # via_service: shown as invokedBy


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def event_time(us: int) -> str:
    return ev.from_us(us).strftime("%Y-%m-%dT%H:%M:%SZ")


def _account(principal: str, default: str) -> str:
    parts = principal.split(":")
    return parts[4] if len(parts) > 4 and parts[0] == "arn" else default


def user_identity(principal: str, account: str) -> dict[str, Any]:
    if principal == ev.SERVICE_PRINCIPAL:
        return {"accountId": account, "invokedBy": ev.SERVICE_PRINCIPAL}
    acct = _account(principal, account)
    if principal.endswith(":root"):
        return {"type": "Root", "principalId": acct, "arn": principal, "accountId": acct}
    if ":user/" in principal:
        return {"type": "IAMUser", "principalId": unique_id(principal), "arn": principal, "accountId": acct,
                "userName": principal.split(":user/", 1)[1]}
    role = role_of(principal)
    if role is not None:  # a session: AROA<its role's id>:<session name>, and the role that issued it
        return {"type": "AssumedRole", "principalId": user_id(principal, acct), "arn": principal,
                "accountId": acct,
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": unique_id(role), "arn": role,
                                                     "accountId": acct, "userName": role.split(":role/", 1)[1]}}}
    if ":role/" in principal or ":assumed-role/" in principal:
        stable = hashlib.sha256(principal.encode()).hexdigest()[:17].upper()
        return {"type": "AssumedRole", "principalId": f"AROA{stable}", "arn": principal, "accountId": acct}
    return {"type": "Unknown", "principalId": principal, "arn": principal, "accountId": acct}


def _key_arn(key_id: str, region: str, account: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def request_parameters(event: ev.Event, region: str, account: str) -> dict[str, Any] | None:
    fields = msgspec.structs.asdict(event)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in _HIDDEN or value is None:
            continue
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


def render(record: ev.Record, *, region: str, account: str, origin: str = "keyledger") -> dict[str, Any]:
    """One record as CloudTrail shows it; `region` is the ledger's initial
    region (a record made in another region names its own)."""
    region = record.region if isinstance(record.region, str) else region
    e = record.event
    service = record.principal == ev.SERVICE_PRINCIPAL
    key_ids = [k for k in ev.key_ids_of(e) if len(k) == 36 or k.startswith("mrk-")]
    out: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": user_identity(record.principal, account),
        "eventTime": event_time(record.time),
        "eventSource": EVENT_SOURCES.get(record.operation, "kms.amazonaws.com"),
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
    if isinstance(e, ev.KeyCreated):
        out["responseElements"] = {"keyMetadata": {
            "AWSAccountId": account, "keyId": e.key_id, "arn": _key_arn(e.key_id, region, account),
            "creationDate": event_time(record.time), "enabled": True, "description": e.description,
            "keyUsage": e.key_usage, "keyState": "Enabled", "origin": e.origin, "keyManager": "CUSTOMER",
            "customerMasterKeySpec": e.key_spec, "keySpec": e.key_spec,
            "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "multiRegion": e.key_id.startswith("mrk-")}}
    return out
