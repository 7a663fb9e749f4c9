"""Typed results of the service, shaped like the AWS KMS API responses.

Field names are snake_case in Python and PascalCase on the wire
(`to_aws(response)` gives the AWS JSON shape). Responses that carry
plaintext or a data key redact it from their repr.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from keyledger.secret import Secret


class _Response(msgspec.Struct, frozen=True, rename="pascal"):
    pass


_SECRET_FIELDS = frozenset({"plaintext", "shared_secret", "private_key_plaintext", "import_token"})


class _Secretive(_Response, frozen=True):
    def __repr__(self) -> str:
        shown = ", ".join(f"{f}=<redacted>" if f in _SECRET_FIELDS else f"{f}={getattr(self, f)!r}"
                          for f in self.__struct_fields__)
        return f"{type(self).__name__}({shown})"


class MultiRegionKey(_Response, frozen=True):
    """One key of a multi-Region set: its ARN and region."""

    arn: str
    region: str


class MultiRegionConfiguration(_Response, frozen=True):
    """DescribeKey of a multi-Region key: whether this one is the PRIMARY or a
    REPLICA, the primary, and every replica."""

    multi_region_key_type: str
    primary_key: MultiRegionKey
    replica_keys: list[MultiRegionKey]


class KeyMetadata(_Response, frozen=True):
    """A key as DescribeKey, CreateKey and AWS show it (`KeyMetadata` on the
    wire): its ARN, state, spec, usage and the algorithms that usage allows."""

    aws_account_id: str = msgspec.field(name="AWSAccountId")
    key_id: str = ""
    arn: str = ""
    creation_date: datetime | None = None
    enabled: bool = False
    description: str = ""
    key_usage: str = "ENCRYPT_DECRYPT"
    key_state: str = "Enabled"
    deletion_date: datetime | None = None
    origin: str = "AWS_KMS"
    key_manager: str = "CUSTOMER"
    customer_master_key_spec: str = "SYMMETRIC_DEFAULT"
    key_spec: str = "SYMMETRIC_DEFAULT"
    encryption_algorithms: list[str] | None = msgspec.field(default_factory=lambda: ["SYMMETRIC_DEFAULT"])
    multi_region: bool = False
    # the algorithm lists of the key's usage, as AWS shows them (keyspecs.metadata_algorithms)
    signing_algorithms: list[str] | None = None
    mac_algorithms: list[str] | None = None
    key_agreement_algorithms: list[str] | None = None
    encapsulation_algorithms: list[str] | None = None  # ML-KEM keys only
    pending_deletion_window_in_days: int | None = None  # AWS: only in PendingReplicaDeletion
    current_key_material_id: str | None = None  # symmetric AWS_KMS keys; changes on rotation
    expiration_model: str | None = None  # EXTERNAL keys only
    valid_to: datetime | None = None  # EXTERNAL keys whose material expires: the earliest ValidTo
    multi_region_configuration: MultiRegionConfiguration | None = None  # multi-Region keys only


class ReplicateKeyResponse(_Response, frozen=True):
    """ReplicateKey: the replica's metadata, policy and tags (None: it has none)."""

    replica_key_metadata: KeyMetadata
    replica_policy: str
    replica_tags: list[Tag] | None = None


class CreateKeyResponse(_Response, frozen=True):
    """CreateKey: the new key's metadata."""

    key_metadata: KeyMetadata


class DescribeKeyResponse(_Response, frozen=True):
    """DescribeKey: the key's metadata."""

    key_metadata: KeyMetadata


class KeyListEntry(_Response, frozen=True):
    """One key of a ListKeys page: its id and ARN."""

    key_id: str
    key_arn: str


class ListKeysResponse(_Response, frozen=True):
    """ListKeys: one page of keys; `next_marker` (set when `truncated`) asks
    for the next."""

    keys: list[KeyListEntry]
    truncated: bool
    next_marker: str | None = None


class ScheduleKeyDeletionResponse(_Response, frozen=True):
    """ScheduleKeyDeletion: the key's ARN, when it will be deleted, and its
    state (PendingDeletion)."""

    key_id: str
    deletion_date: datetime | None  # None while a multi-Region primary waits for its replicas
    key_state: str
    pending_window_in_days: int


class CancelKeyDeletionResponse(_Response, frozen=True):
    """CancelKeyDeletion: the key's ARN (the key is now Disabled)."""

    key_id: str


class Tag(_Response, frozen=True):
    """One tag of a key (ListResourceTags)."""

    tag_key: str
    tag_value: str


class ListResourceTagsResponse(_Response, frozen=True):
    """ListResourceTags: one page of the key's tags, sorted by key."""

    tags: list[Tag]
    truncated: bool
    next_marker: str | None = None


class AliasListEntry(_Response, frozen=True):
    """One alias of a ListAliases page, with the key it points at."""

    alias_name: str
    alias_arn: str
    target_key_id: str | None = None
    creation_date: datetime | None = None
    last_updated_date: datetime | None = None


class ListAliasesResponse(_Response, frozen=True):
    """ListAliases: one page of aliases."""

    aliases: list[AliasListEntry]
    truncated: bool
    next_marker: str | None = None


class GetKeyRotationStatusResponse(_Response, frozen=True):
    """GetKeyRotationStatus: whether the key rotates automatically, and when
    it will next."""

    key_rotation_enabled: bool
    key_id: str
    rotation_period_in_days: int | None = None
    next_rotation_date: datetime | None = None
    on_demand_rotation_start_date: datetime | None = None


class CustomKeyStoresListEntry(_Response, frozen=True):
    """One custom key store (a ledger has none: the type exists for the shape)."""

    custom_key_store_id: str
    custom_key_store_name: str


class CreateCustomKeyStoreResponse(_Response, frozen=True):
    """CreateCustomKeyStore: the new store's id (never made by a ledger)."""

    custom_key_store_id: str


class DescribeCustomKeyStoresResponse(_Response, frozen=True):
    """DescribeCustomKeyStores: the account's custom key stores (none)."""

    custom_key_stores: list[CustomKeyStoresListEntry]
    truncated: bool
    next_marker: str | None = None


class KeyLastUsageData(_Response, frozen=True):
    """The key's last successful cryptographic use: the operation, its time,
    the CloudTrail eventID `audit log --format cloudtrail` gives its record,
    and the request id."""

    operation: str
    timestamp: datetime
    cloud_trail_event_id: str
    kms_request_id: str


class GetKeyLastUsageResponse(_Response, frozen=True):
    """GetKeyLastUsage: when and how the key was last used (no KeyLastUsage
    if it never was), and since when that is tracked (the key's creation:
    the log holds every use)."""

    key_id: str
    tracking_start_date: datetime
    key_creation_date: datetime
    key_last_usage: KeyLastUsageData | None = None


class RotateKeyOnDemandResponse(_Response, frozen=True):
    """RotateKeyOnDemand: the key's ARN."""

    key_id: str


class RotationsListEntry(_Response, frozen=True):
    """One key material of ListKeyRotations: its id, whether it is CURRENT,
    and when and how (AUTOMATIC, ON_DEMAND) it came."""

    key_id: str  # the bare key id, as AWS lists it
    key_material_id: str | None = None
    key_material_state: str | None = None  # CURRENT | NON_CURRENT
    rotation_date: datetime | None = None  # absent for the first key material
    rotation_type: str | None = None
    # symmetric EXTERNAL keys only
    key_material_description: str | None = None
    import_state: str | None = None  # IMPORTED | PENDING_IMPORT
    expiration_model: str | None = None
    valid_to: datetime | None = None


class ListKeyRotationsResponse(_Response, frozen=True):
    """ListKeyRotations: one page of the key's rotations, oldest first."""

    rotations: list[RotationsListEntry]
    truncated: bool
    next_marker: str | None = None


class EncryptResponse(_Response, frozen=True):
    """Encrypt: the ciphertext (it names its key and version, so Decrypt
    needs no KeyId) and the key's ARN."""

    ciphertext_blob: bytes
    key_id: str
    encryption_algorithm: str = "SYMMETRIC_DEFAULT"


class DecryptResponse(_Secretive, frozen=True):
    """Decrypt: the plaintext (redacted from repr), the key that opened it and
    the key material (version) used."""

    key_id: str
    plaintext: bytes
    encryption_algorithm: str = "SYMMETRIC_DEFAULT"
    key_material_id: str | None = None


class ReEncryptResponse(_Response, frozen=True):
    """ReEncrypt: the new ciphertext, and the source and destination keys."""

    ciphertext_blob: bytes
    source_key_id: str
    key_id: str
    source_encryption_algorithm: str = "SYMMETRIC_DEFAULT"
    destination_encryption_algorithm: str = "SYMMETRIC_DEFAULT"
    source_key_material_id: str | None = None
    destination_key_material_id: str | None = None


class GenerateDataKeyResponse(_Secretive, frozen=True):
    """GenerateDataKey: the data key in clear (`plaintext`, redacted from repr)
    and sealed under the key (`ciphertext_blob`: keep this one)."""

    ciphertext_blob: bytes
    plaintext: bytes
    key_id: str
    key_material_id: str | None = None


class GenerateDataKeyWithoutPlaintextResponse(_Response, frozen=True):
    """GenerateDataKeyWithoutPlaintext: the sealed data key only."""

    ciphertext_blob: bytes
    key_id: str
    key_material_id: str | None = None


class GenerateRandomResponse(_Secretive, frozen=True):
    """GenerateRandom: the random bytes (redacted from repr)."""

    plaintext: bytes


class SignResponse(_Response, frozen=True):
    """Sign: the signature (ECDSA in DER, RSA and ML-DSA raw) and the key's ARN."""

    key_id: str
    signature: bytes
    signing_algorithm: str


class VerifyResponse(_Response, frozen=True):
    """Verify: always SignatureValid=True (an invalid signature raises
    KMSInvalidSignatureException, as AWS does)."""

    key_id: str
    signature_valid: bool
    signing_algorithm: str


class GetPublicKeyResponse(_Response, frozen=True):
    """GetPublicKey: the DER SubjectPublicKeyInfo and what the key allows."""

    key_id: str
    public_key: bytes
    customer_master_key_spec: str
    key_spec: str
    key_usage: str
    encryption_algorithms: list[str] | None = None
    signing_algorithms: list[str] | None = None
    key_agreement_algorithms: list[str] | None = None
    encapsulation_algorithms: list[str] | None = None


class GenerateMacResponse(_Response, frozen=True):
    """GenerateMac: the HMAC tag and the key's ARN."""

    mac: bytes
    mac_algorithm: str
    key_id: str


class VerifyMacResponse(_Response, frozen=True):
    """VerifyMac: always MacValid=True (a mismatch raises
    KMSInvalidMacException, as AWS does)."""

    key_id: str
    mac_valid: bool
    mac_algorithm: str


class DeriveSharedSecretResponse(_Secretive, frozen=True):
    """DeriveSharedSecret: the raw ECDH shared secret (redacted from repr)."""

    key_id: str
    shared_secret: bytes
    key_agreement_algorithm: str
    key_origin: str = "AWS_KMS"


class EncapsulateResponse(_Secretive, frozen=True):
    """Encapsulate: a fresh 32-byte shared secret (redacted from repr) and its
    ML-KEM ciphertext, which only the key's private key opens (Decapsulate)."""

    key_id: str
    shared_secret: bytes
    shared_secret_ciphertext_blob: bytes
    encapsulation_algorithm: str


class DecapsulateResponse(_Secretive, frozen=True):
    """Decapsulate: the 32-byte shared secret of a ciphertext (redacted from
    repr); a ciphertext not made for this key gives a pseudo-random one."""

    key_id: str
    shared_secret: bytes
    encapsulation_algorithm: str


class GenerateDataKeyPairResponse(_Secretive, frozen=True):
    """GenerateDataKeyPair: the private key in PKCS#8 DER, in clear
    (`private_key_plaintext`, redacted from repr) and sealed under the KMS key."""

    private_key_ciphertext_blob: bytes
    private_key_plaintext: bytes
    public_key: bytes
    key_id: str
    key_pair_spec: str


class GenerateDataKeyPairWithoutPlaintextResponse(_Response, frozen=True):
    """GenerateDataKeyPairWithoutPlaintext: the public key and the private key
    sealed under the KMS key (never in clear)."""

    private_key_ciphertext_blob: bytes
    public_key: bytes
    key_id: str
    key_pair_spec: str


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def to_aws(response: _Response | None) -> dict[str, Any]:
    """The AWS JSON shape: PascalCase names, base64 blobs, ISO 8601 dates,
    absent (not null) optional members."""
    if response is None:
        return {}
    shape: dict[str, Any] = _strip_none(msgspec.to_builtins(response))
    return shape


class GetKeyPolicyResponse(_Response, frozen=True):
    """GetKeyPolicy: the policy document (JSON text)."""

    policy: str
    policy_name: str = "default"


class ListKeyPoliciesResponse(_Response, frozen=True):
    """ListKeyPolicies: the policy names, always ["default"]."""

    policy_names: list[str]
    truncated: bool = False


class CreateGrantResponse(_Response, frozen=True):
    """CreateGrant: the grant's id, and a token that names it (usable at once
    here: grants take effect when they commit)."""

    grant_token: str
    grant_id: str


class GrantConstraints(_Response, frozen=True):
    """A grant's constraints: at most one of EncryptionContextEquals (the
    request's context must be this one) and EncryptionContextSubset (it must
    contain this one), and SourceArn (the request must be made on behalf of
    this AWS resource)."""

    encryption_context_subset: dict[str, str] | None = None
    encryption_context_equals: dict[str, str] | None = None
    source_arn: str | None = None


class GrantListEntry(_Response, frozen=True, kw_only=True):
    """One grant of ListGrants / ListRetirableGrants: its grantee is a
    principal (GranteePrincipal) or a service principal (GranteeServicePrincipal)."""

    key_id: str
    grant_id: str
    grantee_principal: str | None = None
    operations: list[str]
    issuing_account: str
    creation_date: datetime
    name: str | None = None
    retiring_principal: str | None = None
    constraints: GrantConstraints | None = None
    grantee_service_principal: str | None = None
    retiring_service_principal: str | None = None


class ListGrantsResponse(_Response, frozen=True):
    """ListGrants, ListRetirableGrants: one page of grants."""

    grants: list[GrantListEntry]
    truncated: bool
    next_marker: str | None = None


class IamTag(_Response, frozen=True):
    """One tag of an IAM user or role (IAM names its members Key and Value)."""

    key: str
    value: str


class User(_Response, frozen=True):
    """An IAM user or role (CreateUser, CreateRole, GetUser, GetRole, ListUsers, ListRoles)."""

    user_name: str
    arn: str
    create_date: datetime
    path: str = "/"
    user_id: str = ""
    # a role's: its trust policy (CreateRole's AssumeRolePolicyDocument) and
    # its sessions' longest life in seconds
    assume_role_policy_document: str | None = None
    max_session_duration: int | None = None
    tags: list[IamTag] | None = None  # GetUser, GetRole and a creation with tags show them; lists do not
    description: str | None = None  # a role's


class AccessKeyMetadata(_Response, frozen=True):
    """One access key as IAM lists it (ListAccessKeys): never its secret.
    A credentials file's key has no status or date here (the file has them)."""

    user_name: str | None  # None: a key of the account root
    access_key_id: str
    status: str | None = None
    create_date: datetime | None = None


class AccessKeyLastUsed(_Response, frozen=True):
    """When, for which service and in which region an access key last signed a
    request ("N/A" and no date: never)."""

    service_name: str
    region: str
    last_used_date: datetime | None = None


class GetAccessKeyLastUsedResponse(_Response, frozen=True):
    """GetAccessKeyLastUsed (IAM)."""

    user_name: str | None  # None: a key of the account root
    access_key_last_used: AccessKeyLastUsed


class ListAccessKeysResponse(_Response, frozen=True):
    """ListAccessKeys (IAM), in the order the keys were issued."""

    access_key_metadata: list[AccessKeyMetadata]
    is_truncated: bool = False


class NewAccessKey(msgspec.Struct, frozen=True):
    """CreateAccessKey (IAM): the new key and, the only time it is shown,
    its secret (a `Secret`: `secret_access_key.reveal().decode()`)."""

    user_name: str | None  # None: a key of the account root
    access_key_id: str
    secret_access_key: Secret
    create_date: datetime
    status: str = "Active"

    def to_aws(self) -> dict[str, Any]:
        """`{"AccessKey": ...}` as IAM answers it, the secret in the clear."""
        return {"AccessKey": {**({"UserName": self.user_name} if self.user_name is not None else {}),
                              "AccessKeyId": self.access_key_id, "Status": self.status,
                              "SecretAccessKey": self.secret_access_key.reveal().decode(),
                              "CreateDate": self.create_date.strftime("%Y-%m-%dT%H:%M:%SZ")}}


class CallerIdentity(_Response, frozen=True):
    """GetCallerIdentity (STS): who is asking, as STS answers it."""

    user_id: str
    account: str
    arn: str


class SessionCredentials(msgspec.Struct, frozen=True):
    """Temporary credentials (STS AssumeRole): an access key id, its secret
    and the session token to send with every request (`X-Amz-Security-Token`),
    good until `expiration`. The secret and the token are `Secret`s."""

    access_key_id: str
    secret_access_key: Secret
    session_token: Secret
    expiration: datetime


class AssumedRoleUser(_Response, frozen=True):
    """Who a session is: `AROA...:<session name>` and its assumed-role ARN."""

    assumed_role_id: str
    arn: str


class AssumeRoleResponse(msgspec.Struct, frozen=True):
    """AssumeRole (STS): a session of the role, and its credentials (shown this once)."""

    credentials: SessionCredentials
    assumed_role_user: AssumedRoleUser

    def to_aws(self) -> dict[str, Any]:
        """As STS answers it (botocore's shape), the secret and token in the clear."""
        c = self.credentials
        return {"Credentials": {"AccessKeyId": c.access_key_id,
                                "SecretAccessKey": c.secret_access_key.reveal().decode(),
                                "SessionToken": c.session_token.reveal().decode(),
                                "Expiration": c.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")},
                "AssumedRoleUser": {"AssumedRoleId": self.assumed_role_user.assumed_role_id,
                                    "Arn": self.assumed_role_user.arn}}


class ListUserTagsResponse(_Response, frozen=True):
    """ListUserTags (IAM), and ListRoleTags: a user's or role's tags."""

    tags: list[IamTag]
    is_truncated: bool = False


class ListUsersResponse(_Response, frozen=True):
    """ListUsers (IAM): the ledger's users."""

    users: list[User]


class ListRolesResponse(_Response, frozen=True):
    """ListRoles (IAM): the ledger's roles (`User` with a role's ARN)."""

    roles: list[User]


class ListUserPoliciesResponse(_Response, frozen=True):
    """ListUserPolicies (IAM): the names of the principal's inline policies."""

    policy_names: list[str]


class GetUserPolicyResponse(_Response, frozen=True):
    """GetUserPolicy (IAM): one inline policy document of a user or role."""

    user_name: str
    policy_name: str
    policy_document: str


class GetParametersForImportResponse(_Secretive, frozen=True):
    """GetParametersForImport: a one-time wrapping public key (DER) and the
    import token sealed for it, both valid until `parameters_valid_to`."""

    key_id: str
    import_token: bytes
    public_key: bytes
    parameters_valid_to: datetime


class ImportKeyMaterialResponse(_Response, frozen=True):
    """ImportKeyMaterial: the key's ARN and, for symmetric keys, the id of
    the key material imported."""

    key_id: str
    key_material_id: str | None = None  # symmetric encryption keys


class DeleteImportedKeyMaterialResponse(_Response, frozen=True):
    """DeleteImportedKeyMaterial: the key's ARN and the id of the material deleted."""

    key_id: str
    key_material_id: str | None = None
