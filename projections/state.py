"""The shapes the projections fold the log into.

These structs are what the live LMDB tables hold and what replay rebuilds;
`decide` reads them. Times are microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import msgspec


class VersionInfo(msgspec.Struct, frozen=True):
    version: int
    created: int  # creation date, or the rotation date for later versions
    rotation_type: str | None  # None for version 1, else AUTOMATIC | ON_DEMAND
    wrapped: bytes  # material wrapped under the key's KEK (never plaintext)
    kcv: bytes
    public_key: bytes = b""  # DER SubjectPublicKeyInfo of an asymmetric key (public, so in clear)


class ImportedMaterial(msgspec.Struct, frozen=True):
    """The import status of one key material of an EXTERNAL key."""

    version: int
    import_state: str  # IMPORTED | PENDING_IMPORT
    expiration_model: str  # KEY_MATERIAL_EXPIRES | KEY_MATERIAL_DOES_NOT_EXPIRE
    valid_to: int | None = None
    description: str = ""


class KeyState(msgspec.Struct, frozen=True):
    key_id: str
    created: int
    description: str
    key_usage: str
    key_spec: str
    origin: str
    state: str  # Enabled | Disabled | PendingDeletion | Deleted
    state_changed: int
    versions: tuple[VersionInfo, ...]
    tags: dict[str, str] = {}
    aliases: tuple[str, ...] = ()
    deletion_date: int | None = None
    pending_window_days: int | None = None
    rotation_enabled: bool = False
    rotation_period_days: int | None = None
    rotation_anchor: int | None = None  # the automatic schedule counts from here
    on_demand_rotations: int = 0
    deleted: int | None = None
    policy: str = ""
    key_manager: str = "CUSTOMER"  # AWS for AWS managed keys
    # EXTERNAL keys: one entry per key material (versions, then the one pending rotation)
    imports: tuple[ImportedMaterial, ...] = ()
    pending_rotation: VersionInfo | None = None  # imported NEW_KEY_MATERIAL awaiting RotateKeyOnDemand
    region: str = ""  # the region scope of this row ("" = the ledger's initial region)
    # multi-Region keys (mrk-...): the scope of the primary, and of every replica, sorted
    primary_region: str | None = None
    replica_regions: tuple[str, ...] = ()

    @property
    def is_replica(self) -> bool:
        """A multi-Region replica key: shared properties follow its primary."""
        return self.primary_region is not None and self.primary_region != self.region

    @property
    def current(self) -> VersionInfo:
        return self.versions[-1]

    def version(self, number: int) -> VersionInfo | None:
        if 1 <= number <= len(self.versions):
            return self.versions[number - 1]
        return None

    @property
    def next_rotation(self) -> int | None:
        if not self.rotation_enabled or self.rotation_anchor is None or self.rotation_period_days is None:
            return None
        return self.rotation_anchor + self.rotation_period_days * DAY_US


class AliasState(msgspec.Struct, frozen=True):
    alias_name: str
    key_id: str
    created: int
    updated: int


class UsageState(msgspec.Struct, frozen=True):
    """Per key version: how often it was used, and when last."""

    encrypt: int = 0
    decrypt: int = 0
    reencrypt_from: int = 0
    reencrypt_to: int = 0
    generate_data_key: int = 0
    last_used: int | None = None
    sign: int = 0
    verify: int = 0
    generate_mac: int = 0
    verify_mac: int = 0
    derive_shared_secret: int = 0
    generate_data_key_pair: int = 0
    encapsulate: int = 0  # ML-KEM Encapsulate
    decapsulate: int = 0  # ML-KEM Decapsulate


class HeldAccessKey(msgspec.Struct, frozen=True):
    """An access key whose secret the ledger holds: when it was issued, and
    whether it authenticates (AWS's Active / Inactive)."""
    created: int
    status: str = "Active"


class PrincipalState(msgspec.Struct, frozen=True):
    principal: str
    kind: str
    created: int
    policies: dict[str, str] = {}  # policy name -> IAM policy document
    access_keys: tuple[str, ...] = ()
    # the access keys of `access_keys` whose secret and status the ledger holds
    # (a field with a default: rows without such keys keep their digest)
    held_keys: dict[str, HeldAccessKey] = {}
    # a role's: who may assume it (None: nobody, a role made without IAM's
    # CreateRole) and its sessions' longest life in seconds (None: 3600)
    trust_policy: str | None = None
    max_session_duration: int | None = None
    tags: dict[str, str] = {}  # IAM's tags of the user or role (aws:PrincipalTag/<key>)
    # IAM's id of this incarnation (None: made before ids were drawn, derived from the ARN)
    unique_id: str | None = None
    description: str | None = None  # a role's


class GrantState(msgspec.Struct, frozen=True):
    key_id: str
    grant_id: str
    grantee_principal: str | None  # None: the grantee is a service principal
    operations: tuple[str, ...]
    created: int
    issuing_principal: str
    retiring_principal: str | None = None
    name: str | None = None
    context_equals: dict[str, str] | None = None
    context_subset: dict[str, str] | None = None
    # added with service-principal grants; a default leaves old rows' digest unchanged
    grantee_service_principal: str | None = None
    retiring_service_principal: str | None = None
    source_arn: str | None = None


DAY_US = 86_400 * 1_000_000


class ParameterVersion(msgspec.Struct, frozen=True):
    """One version of a parameter. A SecureString's value is only its
    ciphertext (Encrypt under the parameter's key, context PARAMETER_ARN)."""

    version: int
    parameter_type: str
    modified: int
    modified_by: str
    value: str | None = None
    ciphertext: bytes | None = None
    key_id: str | None = None  # the KeyId as SSM shows it (as given: alias/aws/ssm by default)
    description: str = ""
    allowed_pattern: str = ""
    tier: str = "Standard"
    data_type: str = "text"
    labels: tuple[str, ...] = ()


class ParameterState(msgspec.Struct, frozen=True):
    """A parameter of the parameter store: its versions (at most the last
    100), oldest first, and its tags."""

    name: str
    versions: tuple[ParameterVersion, ...]
    tags: dict[str, str] = {}

    @property
    def current(self) -> ParameterVersion:
        return self.versions[-1]

    def version(self, number: int) -> ParameterVersion | None:
        for v in self.versions:
            if v.version == number:
                return v
        return None

    def labeled(self, label: str) -> ParameterVersion | None:
        for v in self.versions:
            if label in v.labels:
                return v
        return None
