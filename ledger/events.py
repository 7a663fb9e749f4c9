"""Events and the record that wraps each one in the log.

Events are frozen msgspec Structs in one tagged union; each has an explicit,
permanent tag (never reused, never renamed) and is named in the past tense.
Schema evolution follows msgspec's rules: a new field gets a default, a
field's type never changes.

No event holds plaintext, a data key, or unwrapped key material: data-plane
events carry the key id, version, encryption context and a SHA-256 digest of
the ciphertext; key material appears only wrapped under the key's KEK.

A `Record` is one event in the log, with its position (`seq`), time
(microseconds since the Unix epoch, UTC), request id, principal and the AWS
operation of the request that produced it. Its canonical bytes are the
deterministic msgpack encoding; `hash = SHA-256(prev_hash || canonical)`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Union

import msgspec


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_us(when: datetime) -> int:
    """A timezone-aware datetime as microseconds since the epoch (records' time unit)."""
    if when.tzinfo is None:
        raise ValueError("the clock must return timezone-aware datetimes")
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=us)

FORMAT_VERSION = 1
GENESIS_HASH = b"\x00" * 32
SERVICE_PRINCIPAL = "kms.amazonaws.com"


class _Event(msgspec.Struct, frozen=True, tag_field="type"):
    """Base of the union. Each event repeats `frozen=True`: msgspec inherits
    it, but type checkers (dataclass_transform) only see what a class says."""


class WrappedMaterial(msgspec.Struct, frozen=True, omit_defaults=True):
    """One key version's material, AES-256-GCM-wrapped under the key's KEK
    (AAD = key id || version), with its key check value. For an asymmetric
    key the material is its PKCS#8 DER private key (wrapped the same way)
    and `public_key` its DER SubjectPublicKeyInfo, in clear: public."""

    version: int
    wrapped: bytes
    kcv: bytes
    public_key: bytes = b""  # omitted when empty, so symmetric records keep their bytes


# -- key lifecycle ----------------------------------------------------------

class KeyCreated(_Event, frozen=True, tag="KeyCreated"):
    key_id: str
    description: str
    key_usage: str
    key_spec: str
    origin: str
    tags: dict[str, str]
    material: WrappedMaterial
    policy: str = ""  # the key policy document ("" in no record this code writes)


class KeyPolicyPut(_Event, frozen=True, tag="KeyPolicyPut"):
    key_id: str
    policy_name: str
    policy: str


class KeyDescriptionUpdated(_Event, frozen=True, tag="KeyDescriptionUpdated"):
    key_id: str
    description: str


class KeyEnabled(_Event, frozen=True, tag="KeyEnabled"):
    key_id: str


class KeyDisabled(_Event, frozen=True, tag="KeyDisabled"):
    key_id: str


class KeyDeletionScheduled(_Event, frozen=True, tag="KeyDeletionScheduled"):
    key_id: str
    deletion_date: int
    pending_window_days: int


class KeyDeletionCancelled(_Event, frozen=True, tag="KeyDeletionCancelled"):
    key_id: str


class KeyDeleted(_Event, frozen=True, tag="KeyDeleted"):
    """The waiting period ended: the KEK is destroyed in the same
    transaction (crypto-shredding); the history stays in the log."""

    key_id: str


class KeyTagged(_Event, frozen=True, tag="KeyTagged"):
    key_id: str
    tags: dict[str, str]


class KeyUntagged(_Event, frozen=True, tag="KeyUntagged"):
    key_id: str
    tag_keys: list[str]


# -- rotation ---------------------------------------------------------------

class KeyRotationEnabled(_Event, frozen=True, tag="KeyRotationEnabled"):
    key_id: str
    rotation_period_days: int


class KeyRotationDisabled(_Event, frozen=True, tag="KeyRotationDisabled"):
    key_id: str


class KeyRotated(_Event, frozen=True, tag="KeyRotated"):
    key_id: str
    rotation_type: str  # "AUTOMATIC" | "ON_DEMAND"
    rotation_date: int  # for AUTOMATIC: the due time, which may precede the record
    material: WrappedMaterial


# -- aliases ----------------------------------------------------------------

class AliasCreated(_Event, frozen=True, tag="AliasCreated"):
    alias_name: str
    key_id: str


class AliasUpdated(_Event, frozen=True, tag="AliasUpdated"):
    alias_name: str
    key_id: str
    previous_key_id: str


class AliasDeleted(_Event, frozen=True, tag="AliasDeleted"):
    alias_name: str
    key_id: str


# -- principals and grants -----------------------------------------------------

class PrincipalCreated(_Event, frozen=True, tag="PrincipalCreated", omit_defaults=True):
    """A user or role was created. A role made through IAM's CreateRole
    carries its trust policy (who may assume it) and its maximum session
    length; a role without a trust policy cannot be assumed. (Fields with
    defaults: a user's record keeps the bytes it always had.) `unique_id`
    is IAM's id of this user or role (AIDA..., AROA...), drawn at random
    when it is made, so a user made again with the same name is another
    principal to a policy that names the id (`aws:userid`). Records made
    before ids were drawn have none: theirs is derived from the ARN."""

    principal: str  # arn:aws:iam::<account>:user/NAME or :role/NAME
    kind: str  # "user" | "role"
    trust_policy: str | None = None
    max_session_duration: int | None = None  # seconds; None: IAM's default, 3600
    unique_id: str | None = None
    description: str | None = None  # a role's (CreateRole's Description)


class PrincipalTagged(_Event, frozen=True, tag="PrincipalTagged"):
    """IAM's TagUser / TagRole (or tags given at creation): these tags are
    set, each replacing a tag whose key differs from it only by case."""

    principal: str
    tags: dict[str, str]


class PrincipalUntagged(_Event, frozen=True, tag="PrincipalUntagged"):
    """IAM's UntagUser / UntagRole: the tags with these keys (any case) are gone."""

    principal: str
    tag_keys: list[str]


class RoleTrustPolicyUpdated(_Event, frozen=True, tag="RoleTrustPolicyUpdated"):
    """IAM's UpdateAssumeRolePolicy: the role's trust policy is now `trust_policy`."""

    principal: str
    trust_policy: str


class RoleUpdated(_Event, frozen=True, tag="RoleUpdated", omit_defaults=True):
    """IAM's UpdateRole / UpdateRoleDescription: the role's description
    ("" for none) or its sessions' longest life, each when given."""

    principal: str
    description: str | None = None
    max_session_duration: int | None = None


class RoleAssumed(_Event, frozen=True, tag="RoleAssumed"):
    """STS AssumeRole: the caller (the record's principal) received temporary
    credentials for a session of `role`. Only the session's public names are
    here: its secret and its session token never reach the log."""

    role: str
    session_name: str
    access_key_id: str  # ASIA...
    expires: int  # microseconds since the epoch


class PrincipalPolicyPut(_Event, frozen=True, tag="PrincipalPolicyPut"):
    principal: str
    policy_name: str
    policy: str


class PrincipalPolicyDeleted(_Event, frozen=True, tag="PrincipalPolicyDeleted"):
    principal: str
    policy_name: str


class AccessKeyCreated(_Event, frozen=True, tag="AccessKeyCreated", omit_defaults=True):
    """An access key id was issued to a principal (its secret is never logged).
    `held`: the ledger holds the secret (wrapped under the root key in the
    `keks` table, row `iam/<id>`) and its status, so every node of a cluster
    authenticates it; otherwise a credentials file holds both."""

    principal: str
    access_key_id: str
    held: bool = False


class AccessKeyStatusChanged(_Event, frozen=True, tag="AccessKeyStatusChanged"):
    """An access key was made Active or Inactive (`keyledger iam update-access-key`)."""

    principal: str
    access_key_id: str
    status: str  # "Active" | "Inactive"


class AccessKeyDeleted(_Event, frozen=True, tag="AccessKeyDeleted"):
    """An access key was deleted: its id no longer authenticates anyone."""

    principal: str
    access_key_id: str


class PrincipalDeleted(_Event, frozen=True, tag="PrincipalDeleted"):
    """IAM deleted a user or role (DeleteUser, DeleteRole). It had no access
    keys and no identity policies left; the key policies and grants that
    named it now name its unique id instead (the events after this one in
    the same record batch), so a principal made later with the same name
    inherits none of its rights."""

    principal: str
    kind: str  # "user" | "role"
    unique_id: str  # the AIDA.../AROA... id that replaces its ARN


class KeyPolicyPrincipalDeleted(_Event, frozen=True, tag="KeyPolicyPrincipalDeleted"):
    """The key policy named a principal IAM deleted: AWS shows the policy
    with the principal's unique id in place of its ARN, which matches no
    caller. `policy` is the policy afterwards."""

    key_id: str
    principal: str
    policy: str


class GrantPrincipalDeleted(_Event, frozen=True, tag="GrantPrincipalDeleted"):
    """A grant's grantee or retiring principal was deleted: the grant now
    names the unique id instead, so it no longer applies to anyone by that
    name (the key's administrators can still revoke it)."""

    key_id: str
    grant_id: str
    principal: str
    unique_id: str


class GrantCreated(_Event, frozen=True, tag="GrantCreated"):
    key_id: str
    grant_id: str
    grantee_principal: str | None  # None: the grantee is a service principal
    operations: list[str]
    retiring_principal: str | None = None
    name: str | None = None
    context_equals: dict[str, str] | None = None
    context_subset: dict[str, str] | None = None
    grantee_service_principal: str | None = None  # "rds.amazonaws.com"
    retiring_service_principal: str | None = None
    source_arn: str | None = None  # the SourceArn grant constraint


class GrantRetired(_Event, frozen=True, tag="GrantRetired"):
    key_id: str
    grant_id: str


class GrantRevoked(_Event, frozen=True, tag="GrantRevoked"):
    key_id: str
    grant_id: str


# -- data plane -------------------------------------------------------------

class Encrypted(_Event, frozen=True, tag="Encrypted", omit_defaults=True):
    key_id: str
    key_version: int
    encryption_context: dict[str, str]
    ciphertext_digest: bytes
    encryption_algorithm: str = "SYMMETRIC_DEFAULT"  # RSAES_OAEP_* for an RSA key (omitted when default)
    via_service: str | None = None  # the integrated service that called (kms:ViaService), e.g. ssm.<region>...


class Decrypted(_Event, frozen=True, tag="Decrypted", omit_defaults=True):
    key_id: str
    key_version: int
    encryption_context: dict[str, str]
    ciphertext_digest: bytes
    encryption_algorithm: str = "SYMMETRIC_DEFAULT"
    via_service: str | None = None  # as in Encrypted (omitted for direct calls)


class ReEncrypted(_Event, frozen=True, tag="ReEncrypted", omit_defaults=True):
    """key_id/key_version/encryption_context/ciphertext_digest name the
    destination. The algorithms are RSAES_OAEP_* when a side is an RSA key
    (its version is then the key's only one); omitted when SYMMETRIC_DEFAULT,
    so older records encode exactly as before."""

    source_key_id: str
    source_key_version: int
    source_encryption_context: dict[str, str]
    source_ciphertext_digest: bytes
    key_id: str
    key_version: int
    encryption_context: dict[str, str]
    ciphertext_digest: bytes
    source_encryption_algorithm: str = "SYMMETRIC_DEFAULT"
    destination_encryption_algorithm: str = "SYMMETRIC_DEFAULT"


class DataKeyGenerated(_Event, frozen=True, tag="DataKeyGenerated"):
    key_id: str
    key_version: int
    encryption_context: dict[str, str]
    ciphertext_digest: bytes
    number_of_bytes: int
    plaintext_returned: bool


class DataKeyPairGenerated(_Event, frozen=True, tag="DataKeyPairGenerated"):
    """GenerateDataKeyPair(WithoutPlaintext): the private key was sealed
    under a symmetric key; the digests name the blob and the public key."""

    key_id: str
    key_version: int
    encryption_context: dict[str, str]
    ciphertext_digest: bytes
    key_pair_spec: str
    public_key_digest: bytes
    plaintext_returned: bool


# -- asymmetric and HMAC keys: digests only, never a message, key or secret ----

class Signed(_Event, frozen=True, tag="Signed"):
    key_id: str
    key_version: int
    signing_algorithm: str
    message_type: str
    message_digest: bytes  # SHA-256 of the Message as sent (for DIGEST: of the digest)
    signature_digest: bytes  # SHA-256 of the signature


class SignatureVerified(_Event, frozen=True, tag="SignatureVerified"):
    """A Verify that found the signature valid (an invalid one is a
    RequestDenied with KMSInvalidSignatureException, as AWS answers)."""

    key_id: str
    key_version: int
    signing_algorithm: str
    message_type: str
    message_digest: bytes
    signature_digest: bytes


class MacGenerated(_Event, frozen=True, tag="MacGenerated"):
    key_id: str
    key_version: int
    mac_algorithm: str
    message_digest: bytes
    mac_digest: bytes


class MacVerified(_Event, frozen=True, tag="MacVerified"):
    key_id: str
    key_version: int
    mac_algorithm: str
    message_digest: bytes
    mac_digest: bytes


class SharedSecretDerived(_Event, frozen=True, tag="SharedSecretDerived"):
    """DeriveSharedSecret: the peer's public key by digest; the secret is
    never recorded, not even as a digest: a digest of a secret is a test for it."""

    key_id: str
    key_version: int
    key_agreement_algorithm: str
    peer_public_key_digest: bytes


class SharedSecretEncapsulated(_Event, frozen=True, tag="SharedSecretEncapsulated"):
    """Encapsulate (ML-KEM): the ciphertext by digest (so forensics can find
    the record that made one); the shared secret is never recorded."""

    key_id: str
    key_version: int
    encapsulation_algorithm: str
    ciphertext_digest: bytes  # SHA-256 of the SharedSecretCiphertextBlob returned


class SharedSecretDecapsulated(_Event, frozen=True, tag="SharedSecretDecapsulated"):
    """Decapsulate (ML-KEM): the ciphertext by digest, never the secret. A
    ciphertext no one made for the key decapsulates too (implicit
    rejection), so this records a use of the key, not a matching secret."""

    key_id: str
    key_version: int
    encapsulation_algorithm: str
    ciphertext_digest: bytes  # SHA-256 of the SharedSecretCiphertextBlob given


class RandomGenerated(_Event, frozen=True, tag="RandomGenerated"):
    number_of_bytes: int


class RootKeyRotated(_Event, frozen=True, tag="RootKeyRotated"):
    """Every KEK was re-wrapped under a new root key and the old one was
    destroyed: copies of deleted keys' KEKs (LMDB free pages, backups) are
    now unrecoverable. Carries only a count and the new key's check value."""

    kek_count: int
    root_check: bytes


# -- reads and refusals -----------------------------------------------------

class MetadataRead(_Event, frozen=True, tag="MetadataRead"):
    """A read-only call (DescribeKey, ListKeys, ...): audited like any other."""

    operation: str
    key_id: str | None = None


class RequestDenied(_Event, frozen=True, tag="RequestDenied"):
    """A request refused by validation, state or authorization checks."""

    operation: str
    error_code: str
    error_message: str
    key_id: str | None = None


class UnauthenticatedRequestsRefused(_Event, frozen=True, tag="UnauthenticatedRequestsRefused"):
    """Requests from callers who proved no identity (missing or bad SigV4,
    unknown or inactive access key, throttled), refused by the HTTP server
    and summarized per source address and error code over an interval, so
    strangers cannot grow the log at line rate. Times are microseconds
    since the epoch; the lists are bounded samples (the first few)."""

    source_address: str
    error_code: str
    count: int
    first_time: int
    last_time: int
    error_message: str = ""
    operations: tuple[str, ...] = ()
    access_key_ids: tuple[str, ...] = ()
    request_ids: tuple[str, ...] = ()


# -- imported key material and AWS managed keys -----------------------------------

class ImportParametersIssued(_Event, frozen=True, tag="ImportParametersIssued"):
    """GetParametersForImport: a one-time RSA wrapping key pair. Its private
    key is wrapped under the key's KEK (AAD = key id || token id); the public
    key is public. The import token itself is not recorded: it only seals
    these under the KEK, so the log lets nobody forge or replay one."""

    key_id: str
    token_id: bytes
    wrapping_algorithm: str
    wrapping_key_spec: str
    valid_to: int  # the parameters expire then (24 hours later)
    public_key: bytes
    wrapped_private_key: bytes


class KeyMaterialImported(_Event, frozen=True, tag="KeyMaterialImported"):
    """ImportKeyMaterial. New material arrives wrapped under the KEK like
    any version's (with its KCV); a re-import of material the key already
    has carries none (it proved sameness against the KCV)."""

    key_id: str
    version: int  # the key material's version (its KeyMaterialId derives from it)
    import_type: str  # NEW_KEY_MATERIAL | EXISTING_KEY_MATERIAL
    expiration_model: str  # KEY_MATERIAL_EXPIRES | KEY_MATERIAL_DOES_NOT_EXPIRE
    valid_to: int | None
    description: str
    token_id: bytes
    material: WrappedMaterial | None = None
    pending_rotation: bool = False  # new material that waits for RotateKeyOnDemand


class ImportedKeyMaterialDeleted(_Event, frozen=True, tag="ImportedKeyMaterialDeleted"):
    """DeleteImportedKeyMaterial: the material is unusable until re-imported
    (material pending rotation is dropped altogether)."""

    key_id: str
    version: int


class ImportedKeyMaterialExpired(_Event, frozen=True, tag="ImportedKeyMaterialExpired"):
    """Imported material reached its ValidTo (appended by the service, like
    an automatic rotation; the record carries the append time)."""

    key_id: str
    version: int
    expiration_date: int


class AwsManagedKeyCreated(_Event, frozen=True, tag="AwsManagedKeyCreated"):
    """An AWS managed key (KeyManager AWS) and its `alias/aws/<service>`,
    created on the first use by an integrated service: rotation is on
    (every 365 days) and the policy is AWS's managed-key policy."""

    key_id: str
    service: str
    alias_name: str
    description: str
    material: WrappedMaterial
    policy: str


# -- the parameter store (SSM Parameter Store semantics) ---------------------------

class ParameterPut(_Event, frozen=True, tag="ParameterPut", omit_defaults=True):
    """PutParameter: a new version of a parameter (version 1 creates it).
    A String or StringList value is plain, as SSM keeps it; a SecureString
    value is here only as the ciphertext of the ledger's own Encrypt
    (encryption context PARAMETER_ARN), recorded just before in the same
    request. Past the 100th version the oldest one is dropped by the fold."""

    name: str
    version: int
    parameter_type: str  # String | StringList | SecureString
    value: str | None = None  # String and StringList only
    ciphertext: bytes | None = None  # SecureString only
    key_id: str | None = None  # SecureString: the key's id (so forensics of a key finds its parameters)
    requested_key_id: str | None = None  # SecureString: the KeyId as given (alias/aws/ssm by default)
    description: str = ""
    allowed_pattern: str = ""
    tier: str = "Standard"
    data_type: str = "text"
    tags: dict[str, str] = {}


class ParameterDeleted(_Event, frozen=True, tag="ParameterDeleted"):
    """DeleteParameter(s): the parameter and all its versions are gone."""

    name: str


class ParameterLabeled(_Event, frozen=True, tag="ParameterLabeled"):
    """LabelParameterVersion: the labels now name this version (moved from
    any other version of the parameter that had them)."""

    name: str
    version: int
    labels: list[str]


class ParameterUnlabeled(_Event, frozen=True, tag="ParameterUnlabeled"):
    """UnlabelParameterVersion: these labels (those the version had) no
    longer name it; the empty list when it had none of those asked for."""

    name: str
    version: int
    labels: list[str]


class ParameterTagged(_Event, frozen=True, tag="ParameterTagged"):
    """AddTagsToResource of a parameter: these tags added or overwritten."""

    name: str
    tags: dict[str, str]


class ParameterUntagged(_Event, frozen=True, tag="ParameterUntagged"):
    """RemoveTagsFromResource of a parameter: the keys it had that are gone."""

    name: str
    tag_keys: list[str]


class ParametersRead(_Event, frozen=True, tag="ParametersRead", omit_defaults=True):
    """A read of the parameter store (GetParameter(s), GetParametersByPath,
    GetParameterHistory, DescribeParameters, ListTagsForResource): which parameters it returned
    (names, never values); decryptions are their own Decrypted records."""

    operation: str
    names: list[str] = []


# -- multi-Region keys ----------------------------------------------------------
# A region field holds a *scope*: "" for the ledger's initial region (the one
# its records leave unnamed), else the region's name. A multi-Region key is
# one row per region (same key id); each event below says the whole set after
# it, so the fold updates every row from the event alone.

class ReplicaVersion(msgspec.Struct, frozen=True):
    """One version of a primary key, re-wrapped under the replica's own KEK."""

    material: WrappedMaterial
    created: int
    rotation_type: str | None = None


class KeyReplicated(_Event, frozen=True, tag="KeyReplicated"):
    """ReplicateKey, as the primary's region records it: the set gained
    `replica_region` (the replica's own record is `ReplicaKeyCreated`)."""

    key_id: str
    replica_region: str
    primary_region: str
    replica_regions: list[str]  # every replica after this one, sorted


class ReplicaKeyCreated(_Event, frozen=True, tag="ReplicaKeyCreated"):
    """ReplicateKey, as the replica's region records it: the replica with
    its own description, tags and policy, and the primary's shared
    properties (spec, usage, origin, rotation) and every version of its
    material, re-wrapped under the replica's KEK. An EXTERNAL key's replica
    waits for the same material to be imported (PendingImport)."""

    key_id: str
    primary_region: str
    replica_regions: list[str]
    description: str
    key_usage: str
    key_spec: str
    origin: str
    tags: dict[str, str]
    policy: str
    versions: list[ReplicaVersion]
    rotation_period_days: int | None = None  # automatic rotation on (shared with the primary)
    rotation_anchor: int | None = None
    on_demand_rotations: int = 0


class PrimaryRegionUpdated(_Event, frozen=True, tag="PrimaryRegionUpdated"):
    """UpdatePrimaryRegion: the key in `primary_region` is the primary now,
    the former primary one of the replicas."""

    key_id: str
    primary_region: str
    replica_regions: list[str]


class ReplicaKeyRemoved(_Event, frozen=True, tag="ReplicaKeyRemoved"):
    """A replica was deleted (its KeyDeleted comes just before): the set
    shrinks; a primary waiting for its replicas (PendingReplicaDeletion)
    starts its own waiting period when the last one goes."""

    key_id: str
    replica_region: str
    primary_region: str
    replica_regions: list[str]


Event = Union[
    KeyCreated, KeyPolicyPut, PrincipalCreated, PrincipalPolicyPut, PrincipalPolicyDeleted,
    AccessKeyCreated, GrantCreated, GrantRetired, GrantRevoked, RootKeyRotated,
    KeyDescriptionUpdated, KeyEnabled, KeyDisabled,
    KeyDeletionScheduled, KeyDeletionCancelled, KeyDeleted, KeyTagged,
    KeyUntagged, KeyRotationEnabled, KeyRotationDisabled, KeyRotated,
    AliasCreated, AliasUpdated, AliasDeleted, Encrypted, Decrypted,
    ReEncrypted, DataKeyGenerated, RandomGenerated, MetadataRead, RequestDenied,
    DataKeyPairGenerated, Signed, SignatureVerified, MacGenerated, MacVerified, SharedSecretDerived,
    SharedSecretEncapsulated, SharedSecretDecapsulated,
    AccessKeyStatusChanged, AccessKeyDeleted, UnauthenticatedRequestsRefused,
    ImportParametersIssued, KeyMaterialImported, ImportedKeyMaterialDeleted, ImportedKeyMaterialExpired,
    AwsManagedKeyCreated, ParameterPut, ParameterDeleted, ParameterLabeled, ParametersRead,
    ParameterUnlabeled, ParameterTagged, ParameterUntagged,
    KeyReplicated, ReplicaKeyCreated, PrimaryRegionUpdated, ReplicaKeyRemoved,
    PrincipalDeleted, KeyPolicyPrincipalDeleted, GrantPrincipalDeleted, RoleTrustPolicyUpdated, RoleAssumed,
    PrincipalTagged, PrincipalUntagged, RoleUpdated,
]

EVENT_TYPES: tuple[type, ...] = Event.__args__  # type: ignore[attr-defined]


class Record(msgspec.Struct, frozen=True):
    seq: int
    time: int  # microseconds since the Unix epoch, UTC
    request_id: str
    principal: str
    operation: str
    event: Event
    format: int = FORMAT_VERSION
    # The request's region, set only when it is not the ledger's initial
    # region: UNSET is never encoded, so every record of a one-region ledger
    # (and every record written before regions) keeps its bytes.
    region: str | msgspec.UnsetType = msgspec.UNSET
    # The IP address a request came from over the network (`keyledger serve`:
    # the TCP peer's), set only for such requests: a library or CLI call has
    # none, so its records keep the bytes they always had. CloudTrail's
    # sourceIPAddress.
    source: str | msgspec.UnsetType = msgspec.UNSET
    # The access key id whose signature proved the caller (AKIA... or a role
    # session's ASIA...), set only for a request signed with one: CloudTrail's
    # userIdentity.accessKeyId, so a leaked key's every use can be listed. An
    # id is no secret (AWS shows it in every trail); its secret never is here.
    access_key: str | msgspec.UnsetType = msgspec.UNSET

    @property
    def scope(self) -> str:
        """The record's region scope: "" for the ledger's initial region."""
        return self.region if isinstance(self.region, str) else ""


_encoder = msgspec.msgpack.Encoder(order="deterministic")
_decoder = msgspec.msgpack.Decoder(Record)


def canonical(record: Record) -> bytes:
    """The record's canonical bytes: what is hashed, stored and proved."""
    return _encoder.encode(record)


def decode(body: bytes) -> Record:
    return _decoder.decode(body)


def chain_hash(prev_hash: bytes, body: bytes) -> bytes:
    return hashlib.sha256(prev_hash + body).digest()


def key_ids_of(event: Event) -> tuple[str, ...]:
    """The keys an event concerns (for indexes and forensics)."""
    if isinstance(event, ReEncrypted):
        return (event.source_key_id, event.key_id)
    if isinstance(event, AliasUpdated) and event.previous_key_id != event.key_id:
        return (event.key_id, event.previous_key_id)  # the alias leaves the previous key
    key_id = getattr(event, "key_id", None)
    return (key_id,) if key_id else ()
