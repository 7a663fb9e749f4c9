"""AWS managed keys: `alias/aws/<service>`, made on the first use by an
integrated service.

An AWS managed key is a symmetric encryption key with KeyManager AWS,
created by the service that first needs it (one `AwsManagedKeyCreated`
record, principal `<service>.amazonaws.com`), rotated automatically every
365 days, and governed by AWS's managed-key policy: anyone in the account
may use it through that service (kms:ViaService + kms:CallerAccount), the
account may read its metadata, and nobody may manage it. So a customer's
DisableKey, ScheduleKeyDeletion, PutKeyPolicy, TagResource, EnableKeyRotation,
RotateKeyOnDemand, ... is refused by that policy with AWS's
AccessDeniedException, and aliases under `alias/aws/` are
NotAuthorizedException (commands.check_alias_name). Until a service makes
its key, ListAliases lists the predefined alias without a TargetKeyId, as
AWS does; DescribeKey of a predefined alias makes the key, as AWS does.
"""

from __future__ import annotations

import json
import uuid

from keyledger import commands as cmd
from keyledger import crypto
from keyledger import events as ev
from keyledger.projections import alias_row
from keyledger.projections.state import AliasState
from keyledger.secret import Secret
from keyledger.service.base import ServiceBase
from keyledger.service.request import _Request

#: service -> (the endpoint prefix kms:ViaService names, the service's name in
#: the policy's Sid, what the key's description says it protects)
SERVICES: dict[str, tuple[str, str, str]] = {
    "dynamodb": ("dynamodb", "Amazon DynamoDB", "Amazon DynamoDB tables"),
    "ebs": ("ec2", "EBS", "EBS volumes"),
    "lambda": ("lambda", "AWS Lambda", "Lambda functions"),
    "rds": ("rds", "RDS", "RDS database volumes"),
    "s3": ("s3", "Amazon S3", "S3 objects"),
    "secretsmanager": ("secretsmanager", "AWS Secrets Manager", "Secrets Manager secrets"),
    "sns": ("sns", "Amazon SNS", "SNS data"),
    "sqs": ("sqs", "Amazon SQS", "SQS messages"),
    "ssm": ("ssm", "Systems Manager", "SSM parameters"),
}
PREDEFINED_ALIASES = tuple(sorted(f"alias/aws/{s}" for s in SERVICES))


def via_service(service: str, region: str) -> str:
    """The kms:ViaService value of a service's calls: `ec2.us-east-1.amazonaws.com` for EBS."""
    return f"{SERVICES[service][0]}.{region}.amazonaws.com"


def service_principal(service: str) -> str:
    return f"{SERVICES[service][0]}.amazonaws.com"


def managed_key_policy(service: str, account: str, region: str) -> str:
    """AWS's policy for an AWS managed key: use through the service by
    anyone in the account, read-only metadata for the account, nothing else."""
    _, name, _ = SERVICES[service]
    return json.dumps({
        "Version": "2012-10-17", "Id": f"auto-{service}-2",
        "Statement": [
            {"Sid": f"Allow access through {name} for all principals in the account that are authorized "
                    f"to use {name}",
             "Effect": "Allow", "Principal": {"AWS": "*"},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                        "kms:CreateGrant", "kms:DescribeKey"],
             "Resource": "*",
             "Condition": {"StringEquals": {"kms:CallerAccount": account,
                                            "kms:ViaService": via_service(service, region)}}},
            {"Sid": "Allow direct access to key metadata to the account", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
             "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"], "Resource": "*"},
        ]}, indent=2)


def service_of_alias(alias_name: str) -> str | None:
    """The service of a predefined `alias/aws/<service>` alias (None for any other)."""
    if alias_name.startswith("alias/aws/") and alias_name[len("alias/aws/"):] in SERVICES:
        return alias_name[len("alias/aws/"):]
    return None


def create_in(req: _Request, service: str) -> AliasState:
    """The alias of the service's managed key, making the key first if needed
    (inside the caller's write transaction: at most one key per service)."""
    alias_name = f"alias/aws/{service}"
    found: AliasState | None = req.view.get("aliases", alias_row(alias_name, req.scope))
    if found is not None:
        return found
    svc = req.svc
    key_id = str(uuid.UUID(bytes=svc._rng(16), version=4))
    kek = Secret(svc._rng(32))
    wrapped_kek = crypto.wrap_kek(svc._root, key_id, kek, nonce=svc._rng(crypto.NONCE_BYTES))
    description = f"Default key that protects my {SERVICES[service][2]} when no other key is defined"
    event = ev.AwsManagedKeyCreated(key_id, service, alias_name, description, req.mint(key_id, 1, kek),
                                    managed_key_policy(service, svc.account, svc.region))
    req.view.put_kek(req.kek_name(key_id), wrapped_kek)
    req.emit([event], operation="CreateKey", principal=service_principal(service))
    made: AliasState = req.view.get("aliases", alias_row(alias_name, req.scope))
    return made


def with_predefined(req: _Request, rows: list[tuple[bytes, AliasState | None]],
                    after: bytes | None) -> list[tuple[bytes, AliasState | None]]:
    """ListAliases rows (name bytes, AliasState or None) merged, in order,
    with the predefined aliases whose key no service has made yet (None)."""
    virtual: list[tuple[bytes, AliasState | None]] = [
        (name.encode(), None) for name in PREDEFINED_ALIASES
        if (after is None or name.encode() > after) and req.view.get("aliases", alias_row(name, req.scope)) is None]
    return sorted(rows + virtual, key=lambda row: row[0]) if virtual else rows


class ManagedKeyOps(ServiceBase):
    """What integrated services call: the AWS managed key of a service."""

    def managed_key(self, service: str) -> str:
        """The key id of the AWS managed key `alias/aws/<service>` (ssm, s3,
        ebs, rds, secretsmanager, lambda, ...), created on first use. Meant
        for integrations, which then use the key through
        `via_service(...)`; not an AWS KMS operation, so no CLI command."""
        if service not in SERVICES:
            raise ValueError(f"no AWS managed key for {service!r}: one of {', '.join(sorted(SERVICES))}")

        def body(req: _Request) -> str:
            alias = create_in(req, service)
            state = req.maintain(alias.key_id)  # its yearly rotations fall due like any key's
            assert state is not None and state.state != cmd.DELETED
            return alias.key_id
        return self._run("CreateKey", body)

    def managed_key_via(self, service: str) -> str:
        """The kms:ViaService endpoint of a service in this ledger's region."""
        return via_service(service, self.region)


__all__ = ["ManagedKeyOps", "SERVICES", "PREDEFINED_ALIASES", "managed_key_policy", "create_in",
           "with_predefined", "service_of_alias"]
