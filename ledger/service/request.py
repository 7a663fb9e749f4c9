"""One request inside its write transaction (`_Request`), the helpers every
operation shares, and `Planned` (a request run later by a batch)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from keyledger import commands as cmd
from keyledger import constraints
from keyledger import crypto
from keyledger import events as ev
from keyledger.events import from_us
from keyledger import imported
from keyledger import keyspecs
from keyledger import policy as authz
from keyledger.errors import (
    AccessDeniedException,
    DryRunOperationException,
    IncorrectKeyException,
    InvalidCiphertextException,
    InvalidMarkerException,
    KMSError,
    KMSInternalException,
    MalformedPolicyDocumentException,
    NotFoundException,
    ValidationException,
)
from keyledger.projections import alias_row, grant_row, key_row, principal_row
from keyledger.projections.state import AliasState, KeyState, PrincipalState
from keyledger.secret import Secret
from keyledger.store import WriteView

T = TypeVar("T")
Clock = Callable[[], datetime]
Rng = Callable[[int], bytes]


if TYPE_CHECKING:
    from keyledger.service.base import ServiceBase as KeyLedger


class _PublicRandom:
    """Random bytes that are public the moment they are used (request ids,
    message salts and nonces), drawn from `os.urandom` 4 KiB at a time
    instead of one getrandom syscall per value (each ~4 us on a VM, three
    per Encrypt). Never used for key material or data keys, which still
    come from the ledger's `rng` one draw each. One buffer per thread (no
    lock); a forked child starts with fresh buffers (a fork generation
    checked on every draw), so parent and child never share bytes."""

    SIZE = 4096

    def __init__(self) -> None:
        self._local = threading.local()
        self._generation = 0
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._generation += 1

    def __call__(self, n: int) -> bytes:
        local = self._local
        buf = getattr(local, "buf", None)
        if buf is None or local.generation != self._generation or len(buf) - local.pos < n:
            if n > self.SIZE:
                return os.urandom(n)
            buf = local.buf = os.urandom(self.SIZE)
            local.pos, local.generation = 0, self._generation
        pos = local.pos
        local.pos = pos + n
        return buf[pos:pos + n]


public_random = _PublicRandom()


def new_request_id() -> str:
    """A random (version 4) UUID, as str(uuid.uuid4()), from `public_random`."""
    b = bytearray(public_random(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _encode_marker(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode()


def _decode_marker(marker: str | None, valid: Callable[[bytes], bool]) -> bytes | None:
    """The position a marker names. A marker this listing could not have
    issued (`valid` says what its positions look like) is refused, as AWS
    refuses any marker it did not hand out, rather than silently paging
    from an arbitrary point."""
    if marker is None:
        return None
    try:
        value = base64.urlsafe_b64decode(marker.encode())
    except (binascii.Error, ValueError, AttributeError):
        raise InvalidMarkerException("The marker is not valid.") from None
    if not value or not valid(value):
        raise InvalidMarkerException("The marker is not valid.")
    return value


def _text_marker(value: bytes, check: Callable[[str], bool]) -> bool:
    try:
        return check(value.decode())
    except (UnicodeDecodeError, KMSError):
        return False


def _key_marker(value: bytes) -> bool:
    return _text_marker(value, cmd.is_key_uuid)


def _alias_marker(value: bytes) -> bool:
    def valid(name: str) -> bool:  # AWS's own alias/aws/* names are positions too (reserved only for creation)
        plain = "alias/" + name[len("alias/aws/"):] if name.startswith("alias/aws/") else name
        return cmd.check_alias_name(plain) == plain
    return _text_marker(value, valid)


def _tag_marker(value: bytes) -> bool:
    return _text_marker(value, lambda tag_key: 1 <= len(tag_key) <= 128)


def _rotation_marker(value: bytes) -> bool:
    return len(value) == 4 and int.from_bytes(value, "big") > 0


class _Request:
    """One request inside its write transaction."""

    def __init__(self, svc: "KeyLedger", view: WriteView, operation: str, now: int, request_id: str) -> None:
        self.svc, self.view, self.operation, self.now, self.request_id = svc, view, operation, now, request_id
        self.key_hint: str | None = None  # what the caller named, for the denial record
        self.request_alias: str | None = None  # the alias the caller named the key by
        self._identity: tuple[list[authz.Policy], Mapping[str, str], str | None] | None = None  # see `identity`

    def emit(self, events: Sequence[ev.Event], *, operation: str | None = None,
             principal: str | None = None) -> None:
        svc = self.svc
        # the network address of the caller's request (the service's own records, made while
        # serving it, came from no network)
        own = principal is None
        source = svc.origin[0] if svc.origin is not None and svc.origin[0] and own else msgspec.UNSET
        self.view.append(events, operation=operation or self.operation,
                         principal=principal or svc.caller, request_id=self.request_id, time=self.now,
                         region=svc.region if svc.scope else msgspec.UNSET, source=source,
                         access_key=svc.access_key if svc.access_key is not None and own else msgspec.UNSET)
        for e in events:
            if isinstance(e, ev.KeyDeleted):  # crypto-shred in the same transaction
                self.view.put_kek(self.kek_name(e.key_id), None)
                svc._forget(e.key_id, self.kek_name(e.key_id))

    @property
    def scope(self) -> str:
        """The request region's scope ("" for the ledger's initial region)."""
        return self.svc.scope

    def elsewhere(self, scope: str) -> "_Request":
        """The same request (transaction, time, request id, caller) acting in
        another region of the account: a multi-Region key's other keys."""
        other = _Request(self.svc.in_region(self.svc.region_name(scope)), self.view, self.operation, self.now,
                         self.request_id)
        other.key_hint = self.key_hint
        return other

    def kek_name(self, key_id: str) -> str:
        """The key's row in `keks`: per region, so deleting one replica of a
        multi-Region key shreds that replica's copy of the material only."""
        return key_row(key_id, self.svc.scope).decode()

    def arn(self, key_id: str) -> str:
        return cmd.key_arn(self.svc.region, self.svc.account, key_id)

    def alias_arn(self, name: str) -> str:
        return cmd.alias_arn(self.svc.region, self.svc.account, name)

    def alias(self, name: str) -> AliasState | None:
        """The alias, after its key's due maintenance: a key whose deletion
        fell due takes its aliases with it, even before anything touched it."""
        found: AliasState | None = self.view.get("aliases", alias_row(name, self.svc.scope))
        if found is not None:
            self.maintain(found.key_id)
            found = self.view.get("aliases", alias_row(name, self.svc.scope))
        return found

    def key(self, key_input: str) -> KeyState:
        """Resolve any KeyId form to a live key, after its due maintenance."""
        if self.key_hint is None:
            self.key_hint = key_input
        kind, ident = cmd.parse_key_id(key_input, self.svc.region, self.svc.account,
                                       aliases=self.operation in cmd.ALIAS_OPERATIONS)
        if kind == "alias":
            alias = self.alias(ident)
            if alias is None and self.operation == "DescribeKey":
                from keyledger.service import managed  # AWS: describing a predefined alias makes its key
                if managed.service_of_alias(ident) is not None:
                    alias = managed.create_in(self, managed.service_of_alias(ident))  # type: ignore[arg-type]
            if alias is None:
                raise NotFoundException(f"Alias {self.alias_arn(ident)} is not found.")
            ident = alias.key_id
            self.request_alias = alias.alias_name
        if self.key_hint == key_input:  # denials are indexed under the key, not the alias
            self.key_hint = ident
        return self.touch(ident)

    # -- authorization ----------------------------------------------------------

    def identity(self) -> tuple[list[authz.Policy], Mapping[str, str], str | None]:
        """The caller's identity policies, IAM tags and unique id (an
        assumed-role session's: its role's), from one read of its row per
        request. The id is None for a caller without a row, or whose row
        predates drawn ids: `authz.user_id` derives it from the ARN."""
        if self._identity is None:
            caller = self.svc.caller
            found = self.view.get("principals", principal_row(authz.role_of(caller) or caller))
            self._identity = ([authz.parse(doc, key_policy=False) for doc in found.policies.values()], found.tags,
                              found.unique_id) if found is not None else ([], {}, None)
        return self._identity

    def iam_policies(self) -> list[authz.Policy]:
        return self.identity()[0]

    def grants(self, key_id: str) -> list[authz.Grant]:
        return [authz.Grant.of(g)
                for _, g in self.view.scan("grants", prefix=grant_row(key_id, "", self.svc.scope))]

    def conditions(self, state: KeyState | None, encryption_context: Mapping[str, str] | None,
                   extra: Mapping[str, Any] | None) -> Mapping[str, Any]:
        """The request's condition keys as of now, built only if a statement
        with conditions or a grant reads them."""
        svc = self.svc
        caller, now, alias, via, origin = svc.caller, self.now, self.request_alias, svc.via, svc.origin
        issued = svc.token_issued

        def build() -> dict[str, Any]:
            _, tags, principal_id = self.identity()
            return authz.request_context(
                caller, from_us(now), state, encryption_context=encryption_context, request_alias=alias,
                via_service=via, extra=extra, region=svc.region, principal_tags=tags,
                source_ip=None if origin is None else origin[0],
                secure_transport=None if origin is None else origin[1],
                token_issued=None if issued is None else from_us(issued), principal_id=principal_id)
        return authz.LazyContext(build)

    def decide_access(self, action: str, state: KeyState | None, *,
                      encryption_context: Mapping[str, str] | None = None,
                      extra: Mapping[str, Any] | None = None, resource: str | None = None,
                      key_policy: str | None = None, new_grant_constraints: tuple[Any, Any] | None = None,
                      new_grant_operations: tuple[str, ...] | None = None,
                      ) -> tuple[authz.Request, authz.Decision]:
        if resource is None:
            resource = self.arn(state.key_id) if state is not None else "*"
        request = authz.Request(self.svc.caller, action, resource,
                                self.conditions(state, encryption_context, extra), encryption_context,
                                new_grant_constraints, new_grant_operations)
        document = key_policy if key_policy is not None else state.policy if state is not None else None
        compiled = authz.parse(document or authz.default_key_policy(self.svc.account)) \
            if state is not None or key_policy is not None else None
        decision = authz.evaluate(request, key_policy=compiled, iam_policies=self.iam_policies(),
                                   grants=(lambda: self.grants(state.key_id)) if state is not None else ())
        return request, decision

    def authorize(self, action: str, state: KeyState | None, **kwargs: Any) -> None:
        """Raise AccessDeniedException unless the caller may do `action`."""
        request, decision = self.decide_access(action, state, **kwargs)
        if not decision.allowed:
            if state is not None:  # the denial is recorded under the key that refused (ReEncrypt has two)
                self.key_hint = state.key_id
            raise AccessDeniedException(authz.denial_message(request, decision))

    def touch(self, key_id: str, read: KeyState | None = None) -> KeyState:
        # maintain reads the row first: a missing or deleted key is refused
        # exactly as a check before it would refuse it, with one read fewer
        return cmd.require_exists(self.maintain(key_id, read), self.arn(key_id))

    def maintain(self, key_id: str, read: KeyState | None = None) -> KeyState | None:
        """Append the automatic rotations and the deletion that fell due for
        a key; its state afterwards (which may now be Deleted). A multi-Region
        replica's rotations are its primary's: the primary is maintained
        first, and its rotations reach every replica. `read`: the key's row
        as this request just read it, in this transaction."""
        row = key_row(key_id, self.svc.scope)
        state: KeyState | None = self.view.get("keys", row) if read is None else read
        if state is None or state.state == cmd.DELETED:
            return state
        if state.is_replica and state.primary_region is not None:
            self.elsewhere(state.primary_region).maintain(key_id)
            state = self.view.get("keys", row)
        for date in cmd.due_rotation_dates(state, self.now):
            material = self.mint(key_id, len(state.versions) + 1, key_spec=state.key_spec)
            self.emit([ev.KeyRotated(key_id, "AUTOMATIC", date, material)],
                      operation="RotateKey", principal=ev.SERVICE_PRINCIPAL)
            self.rotate_replicas(self.view.get("keys", row), "AUTOMATIC", date)
            state = self.view.get("keys", row)
        for expiry in imported.expiries_due(state, self.now):  # imported material reached its ValidTo
            self.emit([expiry], operation="DeleteExpiredKeyMaterial", principal=ev.SERVICE_PRINCIPAL)
            self.svc._forget_material(key_id, expiry.version)  # and its loaded private key
            state = self.view.get("keys", row)
        if cmd.deletion_due(state, self.now):
            self.emit(cmd.delete_key(state), operation="DeleteKey", principal=ev.SERVICE_PRINCIPAL)
            if state.is_replica:  # the set forgets the replica (a primary waiting for it may start its wait)
                self.emit(cmd.remove_replica(state), operation="DeleteKey", principal=ev.SERVICE_PRINCIPAL)
            state = self.view.get("keys", row)
        return state

    def rotate_replicas(self, primary: KeyState, rotation_type: str, date: int) -> None:
        """The primary's newest version, re-wrapped under each live replica's
        KEK, as that replica's own KeyRotated in its region: every key of a
        multi-Region set has the same versions."""
        if primary.primary_region is None or not primary.replica_regions:
            return
        version = primary.current
        material = self.material(primary, version.version)
        for scope in primary.replica_regions:
            there = self.elsewhere(scope)
            replica: KeyState | None = self.view.get("keys", key_row(primary.key_id, scope))
            if replica is None or replica.state == cmd.DELETED:
                continue
            wrapped = crypto.wrap_material(there.kek(primary.key_id), primary.key_id, version.version, material,
                                           nonce=self.svc._rng(crypto.NONCE_BYTES))
            there.emit([ev.KeyRotated(primary.key_id, rotation_type, date,
                                      ev.WrappedMaterial(version.version, wrapped, version.kcv, version.public_key))],
                       operation="RotateKey" if rotation_type == "AUTOMATIC" else "RotateKeyOnDemand",
                       principal=ev.SERVICE_PRINCIPAL)

    def kek(self, key_id: str) -> Secret:
        """The key's KEK as this transaction sees it. The cache holds each
        KEK with the wrapped row it came from and answers only for that row:
        a work item may run again (the map grew, or another item of its batch
        failed), and its second run must not meet a KEK its first run made
        in a transaction that was thrown away."""
        name = self.kek_name(key_id)
        wrapped = self.view.kek(name)
        if wrapped is None:
            raise KMSInternalException(f"The key material of {self.arn(key_id)} is missing.")
        cached = self.svc._keks.get(name)
        if cached is not None and cached[0] == wrapped:
            return cached[1]
        kek = crypto.unwrap_kek(self.svc._root, key_id, wrapped)
        self.svc._keks[name] = (wrapped, kek)
        return kek

    def mint(self, key_id: str, version: int, kek: Secret | None = None,
             key_spec: str = keyspecs.SYMMETRIC_DEFAULT,
             pregenerated: tuple[Secret, bytes] | None = None) -> ev.WrappedMaterial:
        """Fresh material for a new version, made by the spec's recipe (or
        made before the write, `pregenerated`) and wrapped under the key's
        KEK (a private key as PKCS#8 DER, like any material); an asymmetric
        key's public key rides along in clear."""
        rng = self.svc._rng
        material, public_key = pregenerated or crypto.generate_key_material(keyspecs.spec(key_spec), rng)
        wrapped = crypto.wrap_material(kek or self.kek(key_id), key_id, version, material,
                                       nonce=rng(crypto.NONCE_BYTES))
        return ev.WrappedMaterial(version, wrapped, crypto.kcv(material), public_key)

    def private_key(self, state: KeyState, version: int) -> crypto.PrivateKey:
        """The usable private (or HMAC) key of a version, loaded once per ledger
        (per wrapped material, as `material`)."""
        info = state.version(version)
        if info is None:
            raise InvalidCiphertextException("The ciphertext is invalid.")
        cache = self.svc._private_keys
        found = cache.get((state.key_id, version, info.wrapped))
        if found is None:
            found = crypto.load_private_key(keyspecs.spec(state.key_spec), self.material(state, version))
            _replace(cache, (state.key_id, version, info.wrapped), found)
        return found

    def material(self, state: KeyState, version: int) -> Secret:
        """A version's material, unwrapped once per ledger. Cached under the
        wrapped material it came from, as this transaction reads it: a version
        minted by a run of a work item that was thrown away (and minted again,
        afresh, by its next run) is never served from the cache."""
        info = state.version(version)
        if info is None:
            raise InvalidCiphertextException("The ciphertext is invalid.")
        cache = self.svc._materials
        found = cache.get((state.key_id, version, info.wrapped))
        if found is not None:
            return found
        material = crypto.material_for(self.kek(state.key_id), state.key_id, version, info)
        _replace(cache, (state.key_id, version, info.wrapped), material)
        return material

    def seal(self, state: KeyState, plaintext: bytes, context: dict[str, str]) -> tuple[bytes, int]:
        version = state.current.version
        rng = self.svc._rng
        if rng is os.urandom:  # salt and nonce are public: one draw from the buffered source
            drawn = public_random(crypto.SALT_BYTES + crypto.NONCE_BYTES)
            salt, nonce = drawn[:crypto.SALT_BYTES], drawn[crypto.SALT_BYTES:]
        else:  # an injected source (known-answer tests) sees the draws it always saw
            salt, nonce = rng(crypto.SALT_BYTES), rng(crypto.NONCE_BYTES)
        blob = crypto.seal(self.material(state, version), state.key_id, version, plaintext,
                           crypto.canonical_context(context), salt=salt, nonce=nonce)
        return blob, version

    def key_id_of(self, key_input: str | None) -> str | None:
        """The key id a KeyId names, read without maintenance or refusal:
        None for a malformed id or a missing alias (the real resolution,
        later in the request, refuses them in its own words)."""
        if key_input is None:
            return None
        try:
            kind, ident = cmd.parse_key_id(key_input, self.svc.region, self.svc.account)
        except KMSError:
            return None
        if kind == "key":
            return ident
        found: AliasState | None = self.view.get("aliases", alias_row(ident, self.svc.scope))
        return None if found is None else found.key_id

    def open(self, blob: bytes, context: dict[str, str], key_id_param: str | None,
             action: str = "kms:Decrypt", extra: Callable[[str], Mapping[str, Any]] | None = None,
             ) -> tuple[KeyState, int, bytes]:
        """(key, version, plaintext) of a ciphertext, after every check.
        `extra`: more condition keys, given the key the ciphertext names."""
        key_id, version = crypto.parse_header(blob)
        if key_id_param is not None:
            named = self.key(key_id_param)
            if named.key_id != key_id and named.key_id.replace("-", "")[-32:] == key_id.replace("-", "")[-32:]:
                # the same 16 id bytes read as the other kind of id (a damaged format byte): garbage
                raise InvalidCiphertextException("The ciphertext is invalid.")
            if named.key_id != key_id:
                raise IncorrectKeyException(
                    "The key ID in the request does not identify a CMK that can perform this operation.")
        state = self.view.get("keys", key_row(key_id, self.svc.scope))
        if state is None:  # no such key ever existed here: indistinguishable from garbage
            raise InvalidCiphertextException("The ciphertext is invalid.")
        if self.key_hint is None:
            self.key_hint = key_id
        state = self.touch(key_id, state)
        self.authorize(action, state, encryption_context=context, extra=None if extra is None else extra(key_id))
        cmd.require_enabled(state, self.arn(key_id))
        plaintext = crypto.open_(self.material(state, version), blob, crypto.canonical_context(context))
        return state, version, plaintext


def _drop_version(cache: dict[tuple[str, int, bytes], Any], key_id: str, version: int) -> None:
    """Remove every entry of one key version, whatever wrapped bytes it was cached under."""
    for stale in [k for k in list(cache) if k[:2] == (key_id, version)]:  # list(): one atomic copy
        cache.pop(stale, None)


def _replace(cache: dict[tuple[str, int, bytes], Any], entry: tuple[str, int, bytes], value: Any) -> None:
    """Cache `value` as the one entry of its (key, version): an entry for
    other wrapped bytes (a discarded run's, or re-imported material's)
    goes, so unwrapped material that never reached the log is not kept."""
    _drop_version(cache, entry[0], entry[1])
    cache[entry] = value


def _request_tags(tags: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"aws:requesttag/" + k.lower(): v for k, v in tags.items()}
    out["aws:tagkeys"] = list(tags)
    return out


def _principals_exist(req: _Request, policy: authz.Policy) -> None:
    """AWS's rule for a key policy's principals: an IAM user or role of this
    account it names must exist (IAM resolves it to the principal's unique
    id, so a user deleted and made again never inherits the old one's
    rights), and a bare unique id (a deleted principal's, as GetKeyPolicy
    shows it) is no principal. The account root, `*`, other accounts,
    assumed-role sessions and service principals are not looked up."""
    prefix = f"arn:aws:iam::{req.svc.account}:"
    for statement in policy.statements:
        for name in (*(statement.principals or ()), *(statement.not_principals or ())):
            if authz.UNIQUE_ID.fullmatch(name):  # a deleted principal's, as GetKeyPolicy shows it
                raise MalformedPolicyDocumentException("Policy contains a statement with one or more invalid "
                                                       "principals.")
            if not name.startswith(prefix):
                continue
            kind, _, rest = name[len(prefix):].partition("/")
            if kind not in ("user", "role"):
                continue
            found = req.view.get("principals", principal_row(name)) if rest else None
            if found is None or found.kind != kind:
                raise MalformedPolicyDocumentException("Policy contains a statement with one or more invalid "
                                                       "principals.")


def _lockout_check(req: _Request, key_id: str, document: str) -> None:
    """AWS's policy lockout safety check: the caller must still be allowed
    to change the policy afterwards."""
    probe = KeyState(key_id=key_id, created=req.now, description="", key_usage=cmd.ENCRYPT_DECRYPT,
                     key_spec=cmd.SYMMETRIC_DEFAULT, origin="AWS_KMS", state=cmd.ENABLED,
                     state_changed=req.now, versions=(), policy=document)
    # the subsequent request the check imagines: PutKeyPolicy of the default policy, no bypass
    _, decision = req.decide_access("kms:PutKeyPolicy", probe, extra={"kms:policyname": "default"})
    if not decision.allowed:
        raise MalformedPolicyDocumentException(
            "The new key policy will not allow you to update the key policy in the future.")


def _principal_id(found: PrincipalState) -> str:
    """A user's or role's IAM unique id (AIDA..., AROA...) from its row:
    the one drawn when it was made, or for a row made before ids were
    drawn, the one derived from its ARN. CloudTrail renderings show the
    same id as principalId."""
    return authz.unique_id(found.principal, found.unique_id)


#: the key policy names AWS knows: the one you manage, and the one RAM manages
#: for a key shared through RAM (a ledger shares none, so no key has it)
POLICY_NAMES = ("default", "AWS_RAM")


def _check_policy_name(name: str) -> None:
    if name not in POLICY_NAMES:
        raise NotFoundException(f"No such policy exists: {name!r} (key policies are named 'default' and 'AWS_RAM')")


_TOKEN_PREFIX = "KLGT1"


def _grant_token(key_id: str, grant_id: str, nonce: bytes) -> str:
    """Grant tokens name the grant; grants here are usable the moment they
    commit, so the token needs no secret, only a checkable shape. `nonce`
    makes each CreateGrant's token its own, as AWS's are, even when a retry
    with the same name answers the existing grant."""
    raw = f"{key_id}:{grant_id}:{nonce.hex()}"
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parse_grant_token(token: str) -> tuple[str, str]:
    from keyledger.errors import InvalidGrantTokenException
    try:
        if not token.startswith(_TOKEN_PREFIX):
            raise ValueError
        raw = token[len(_TOKEN_PREFIX):]
        key_id, grant_id, *nonce = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode().split(":")
        if not cmd.is_key_uuid(key_id) or len(grant_id) != 64 or len(nonce) > 1:  # tokens without a nonce:
            raise ValueError                                                         # issued before it, still good
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise InvalidGrantTokenException("The grant token is not valid.") from None
    return key_id, grant_id


def _digest(blob: bytes) -> bytes:
    return hashlib.sha256(blob).digest()


def _dry_run(dry_run: bool | None) -> None:
    """DryRun: every check passed, so say so instead of doing the work (the
    refusal is recorded like any other)."""
    if dry_run:
        raise DryRunOperationException("The request would have succeeded, but the DryRun option is set.")


IGNORE_CIPHERTEXT = "IGNORE_CIPHERTEXT"


def _ignores_ciphertext(dry_run: bool | None, modifiers: Sequence[str] | None) -> bool:
    """DryRun with the IGNORE_CIPHERTEXT modifier (Decrypt, ReEncrypt): only the
    authorization is checked, against the key the request names, and the
    ciphertext (absent or not) is not read. Modifiers without DryRun are ignored."""
    return bool(dry_run) and modifiers is not None and IGNORE_CIPHERTEXT in modifiers


def _missing(member: str) -> ValidationException:
    """AWS's refusal of a member this request needs although the model leaves
    it optional (CiphertextBlob, or the KeyId an IGNORE_CIPHERTEXT dry run
    authorizes against): the model's own missing-member words."""
    return constraints.missing_members([member])


def _check_grant_tokens(grant_tokens: list[str] | None) -> None:
    """Grant tokens are accepted (grants are effective at once here) but
    must be well-formed."""
    if grant_tokens is not None:
        if len(grant_tokens) > 10:
            raise ValidationException("1 validation error detected: Value at 'grantTokens' failed to "
                                          "satisfy constraint: Member must have length less than or equal to 10")
        for token in grant_tokens:
            _parse_grant_token(token)


class Planned:
    """A validated-later request: `work` runs inside a write transaction and
    returns (response, error); `finish` turns that into the response or raises."""

    __slots__ = ("operation", "request_id", "work")

    def __init__(self, operation: str, request_id: str, work: Callable[[WriteView], Any]) -> None:
        self.operation, self.request_id, self.work = operation, request_id, work

    @staticmethod
    def finish(outcome: tuple[Any, BaseException | None]) -> Any:
        """The response, from one (result, error) pair of `Store.submit_many`."""
        result, failure = outcome
        if failure is not None:  # the work itself broke (a bug or a storage error)
            raise failure
        response, error = result
        if error is not None:
            raise error
        return response


