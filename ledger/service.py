"""The service: every AWS KMS operation as a method, one write each.

A call validates its input, then runs as one work item in the store's write
path: resolve the key (any of the four KeyId forms), append the automatic
rotations or deletion that fell due for it, `decide` (ledger.commands), and
append the events, which fold into the projections in the same transaction.
A refused call appends a `RequestDenied` record and raises the AWS-named
error. Responses are built from what was decided, never from a re-read.
"""

from __future__ import annotations

import base64
import copy
import binascii
import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from keyledger import checkpoint as checkpoint_
from keyledger import commands as cmd
from keyledger import policy as authz
from keyledger import crypto
from keyledger import events as ev
from keyledger import responses as r
from keyledger.errors import (
    AccessDeniedException, AlreadyExistsException, IncorrectKeyException, InvalidCiphertextException,
    InvalidKeyUsageException, InvalidMarkerException, KMSError, KMSInternalException, LedgerError,
    MalformedPolicyDocumentException, NotFoundException,
)
from keyledger.secret import Secret
from keyledger.store import Store, WriteView
from keyledger.projections import alias_row, grant_row, key_row, merkle, principal_row
from keyledger.projections.state import AliasState, KeyState

T = TypeVar("T")
Clock = Callable[[], datetime]
Rng = Callable[[int], bytes]


def to_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("the clock must return timezone-aware datetimes")
    delta = when - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc).replace(microsecond=us % 1_000_000)


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
    return _text_marker(value, lambda name: cmd.check_alias_name(name) == name)


def _tag_marker(value: bytes) -> bool:
    return _text_marker(value, lambda tag_key: 1 <= len(tag_key) <= 128)


def _rotation_marker(value: bytes) -> bool:
    return len(value) == 4 and int.from_bytes(value, "big") > 0


class _Request:
    """One request inside its write transaction."""

    def __init__(self, svc: KeyLedger, view: WriteView, operation: str, now: int, request_id: str) -> None:
        self.svc, self.view, self.operation, self.now, self.request_id = svc, view, operation, now, request_id
        self.key_hint: str | None = None  # what the caller named, for the denial record
        self.request_alias: str | None = None  # the alias the caller named the key by
        self._iam: list[authz.Policy] | None = None

    def emit(self, events: list[ev.Event], *, operation: str | None = None,
             principal: str | None = None) -> None:
        self.view.append(events, operation=operation or self.operation,
                         principal=principal or self.svc.caller, request_id=self.request_id, time=self.now)
        for e in events:
            if isinstance(e, ev.KeyDeleted):  # crypto-shred in the same transaction
                self.view.put_kek(e.key_id, None)
                self.svc._forget(e.key_id)

    def arn(self, key_id: str) -> str:
        return cmd.key_arn(self.svc.region, self.svc.account, key_id)

    def alias_arn(self, name: str) -> str:
        return cmd.alias_arn(self.svc.region, self.svc.account, name)

    def alias(self, name: str) -> AliasState | None:
        """The alias, after its key's due maintenance: a key whose deletion
        fell due takes its aliases with it, even before anything touched it."""
        found = self.view.get("aliases", alias_row(name))
        if found is not None:
            self.maintain(found.key_id)
            found = self.view.get("aliases", alias_row(name))
        return found

    def key(self, key_input: str) -> KeyState:
        """Resolve any KeyId form to a live key, after its due maintenance."""
        if self.key_hint is None:
            self.key_hint = key_input
        kind, ident = cmd.parse_key_id(key_input, self.svc.region, self.svc.account)
        if kind == "alias":
            alias = self.alias(ident)
            if alias is None:
                raise NotFoundException(f"Alias {self.alias_arn(ident)} is not found.")
            ident = alias.key_id
            self.request_alias = alias.alias_name
        if self.key_hint == key_input:  # denials are indexed under the key, not the alias
            self.key_hint = ident
        return self.touch(ident)

    # -- authorization ----------------------------------------------------------

    def iam_policies(self) -> list[authz.Policy]:
        if self._iam is None:
            found = self.view.get("principals", principal_row(self.svc.caller))
            self._iam = [authz.parse(doc, key_policy=False) for doc in found.policies.values()] \
                if found is not None else []
        return self._iam

    def grants(self, key_id: str) -> list[authz.Grant]:
        return [authz.Grant(g.grant_id, g.grantee_principal, g.operations, g.context_equals, g.context_subset)
                for _, g in self.view.scan("grants", prefix=f"{key_id}#".encode())]

    def conditions(self, state: KeyState | None, encryption_context: Mapping[str, str] | None,
                   extra: Mapping[str, Any] | None) -> dict[str, Any]:
        return authz.request_context(self.svc.caller, from_us(self.now), state,
                                     encryption_context=encryption_context,
                                     request_alias=self.request_alias, extra=extra)

    def decide_access(self, action: str, state: KeyState | None, *,
                      encryption_context: Mapping[str, str] | None = None,
                      extra: Mapping[str, Any] | None = None, resource: str | None = None,
                      key_policy: str | None = None, new_grant_constraints: tuple[Any, Any] | None = None,
                      ) -> tuple[authz.Request, authz.Decision]:
        if resource is None:
            resource = self.arn(state.key_id) if state is not None else "*"
        request = authz.Request(self.svc.caller, action, resource,
                                self.conditions(state, encryption_context, extra), encryption_context,
                                new_grant_constraints)
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

    def touch(self, key_id: str) -> KeyState:
        arn = self.arn(key_id)
        cmd.require_exists(self.view.get("keys", key_row(key_id)), arn)
        return cmd.require_exists(self.maintain(key_id), arn)

    def maintain(self, key_id: str) -> KeyState | None:
        """Append the automatic rotations and the deletion that fell due for
        a key; its state afterwards (which may now be Deleted)."""
        state = self.view.get("keys", key_row(key_id))
        if state is None or state.state == cmd.DELETED:
            return state
        for date in cmd.due_rotation_dates(state, self.now):
            material = self.mint(key_id, len(state.versions) + 1)
            self.emit([ev.KeyRotated(key_id, "AUTOMATIC", date, material)],
                      operation="RotateKey", principal=ev.SERVICE_PRINCIPAL)
            state = self.view.get("keys", key_row(key_id))
        if cmd.deletion_due(state, self.now):
            self.emit(cmd.delete_key(state), operation="DeleteKey", principal=ev.SERVICE_PRINCIPAL)
            state = self.view.get("keys", key_row(key_id))
        return state

    def kek(self, key_id: str) -> Secret:
        kek = self.svc._keks.get(key_id)
        if kek is None:
            wrapped = self.view.kek(key_id)
            if wrapped is None:
                raise KMSInternalException(f"The key material of {self.arn(key_id)} is missing.")
            kek = self.svc._keks[key_id] = crypto.unwrap_kek(self.svc._root, key_id, wrapped)
        return kek

    def mint(self, key_id: str, version: int, kek: Secret | None = None) -> ev.WrappedMaterial:
        """Fresh material for a new version, wrapped under the key's KEK."""
        rng = self.svc._rng
        material = Secret(rng(crypto.MATERIAL_BYTES))
        wrapped = crypto.wrap_material(kek or self.kek(key_id), key_id, version, material,
                                       nonce=rng(crypto.NONCE_BYTES))
        return ev.WrappedMaterial(version, wrapped, crypto.kcv(material))

    def material(self, state: KeyState, version: int) -> Secret:
        cache = self.svc._materials
        found = cache.get((state.key_id, version))
        if found is not None:
            return found
        info = state.version(version)
        if info is None:
            raise InvalidCiphertextException("The ciphertext is invalid.")
        material = crypto.unwrap_material(self.kek(state.key_id), state.key_id, version, info.wrapped)
        if not crypto.kcv_matches(material, info.kcv):
            raise LedgerError(f"version {version} of key {state.key_id} fails its key check value")
        cache[(state.key_id, version)] = material
        return material

    def seal(self, state: KeyState, plaintext: bytes, context: dict[str, str]) -> tuple[bytes, int]:
        version = state.current.version
        rng = self.svc._rng
        blob = crypto.seal(self.material(state, version), state.key_id, version, plaintext,
                           crypto.canonical_context(context), salt=rng(crypto.SALT_BYTES),
                           nonce=rng(crypto.NONCE_BYTES))
        return blob, version

    def open(self, blob: bytes, context: dict[str, str], key_id_param: str | None,
             action: str = "kms:Decrypt") -> tuple[KeyState, int, bytes]:
        """(key, version, plaintext) of a ciphertext, after every check."""
        key_id, version = crypto.parse_header(blob)
        if key_id_param is not None:
            named = self.key(key_id_param)
            if named.key_id != key_id:
                raise IncorrectKeyException(
                    "The key ID in the request does not identify a KMS key that can perform this operation.")
        state = self.view.get("keys", key_row(key_id))
        if state is None:  # no such key ever existed here: indistinguishable from garbage
            raise InvalidCiphertextException("The ciphertext is invalid.")
        if self.key_hint is None:
            self.key_hint = key_id
        state = self.touch(key_id)
        self.authorize(action, state, encryption_context=context)
        cmd.require_enabled(state, self.arn(key_id))
        plaintext = crypto.open_(self.material(state, version), blob, crypto.canonical_context(context))
        return state, version, plaintext


def _request_tags(tags: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"aws:requesttag/" + k.lower(): v for k, v in tags.items()}
    out["aws:tagkeys"] = list(tags)
    return out


def _lockout_check(req: _Request, key_id: str, document: str) -> None:
    """AWS's policy lockout safety check: the caller must still be allowed
    to change the policy afterwards."""
    probe = KeyState(key_id=key_id, created=req.now, description="", key_usage=cmd.ENCRYPT_DECRYPT,
                     key_spec=cmd.SYMMETRIC_DEFAULT, origin="AWS_KMS", state=cmd.ENABLED,
                     state_changed=req.now, versions=(), policy=document)
    _, decision = req.decide_access("kms:PutKeyPolicy", probe)
    if not decision.allowed:
        raise MalformedPolicyDocumentException(
            "The new key policy will not allow you to update the key policy in the future.")


def _principal_id(arn: str) -> str:
    """A stable unique id like IAM's (AIDA... for users, AROA... for roles),
    the same one CloudTrail renderings show as principalId."""
    prefix = "AROA" if ":role/" in arn else "AIDA"
    return prefix + hashlib.sha256(arn.encode()).hexdigest()[:17].upper()


def _check_policy_name(name: str) -> None:
    if name != "default":
        raise NotFoundException(f"No such policy exists: {name!r} (the only key policy is 'default')")


_TOKEN_PREFIX = "KLGT1"


def _grant_token(key_id: str, grant_id: str) -> str:
    """Grant tokens name the grant; grants here are usable the moment they
    commit, so the token needs no secret, only a checkable shape."""
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(f"{key_id}:{grant_id}".encode()).decode().rstrip("=")


def _parse_grant_token(token: str) -> tuple[str, str]:
    from keyledger.errors import InvalidGrantTokenException
    try:
        if not token.startswith(_TOKEN_PREFIX):
            raise ValueError
        raw = token[len(_TOKEN_PREFIX):]
        key_id, grant_id = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode().split(":")
        if not cmd.is_key_uuid(key_id) or len(grant_id) != 64:
            raise ValueError
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise InvalidGrantTokenException("The grant token is not valid.") from None
    return key_id, grant_id


def _digest(blob: bytes) -> bytes:
    return hashlib.sha256(blob).digest()


def _check_algorithm(algorithm: str) -> None:
    cmd.check_enum("encryptionAlgorithm", algorithm,
                   ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"))
    if algorithm != cmd.SYMMETRIC_DEFAULT:
        raise InvalidKeyUsageException(f"{algorithm} is not supported by symmetric encryption keys.")


def _check_grant_tokens(grant_tokens: list[str] | None) -> None:
    """Grant tokens are accepted (grants are effective at once here) but
    must be well-formed."""
    if grant_tokens is not None:
        if len(grant_tokens) > 10:
            raise cmd.ValidationException("1 validation error detected: Value at 'grantTokens' failed to "
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


class KeyLedger:
    """The embedded AWS KMS. Obtain one with `ledger.open(...)`."""

    def __init__(self, store: Store, root: Secret, *, region: str, account: str,
                 clock: Clock | None = None, rng: Rng | None = None, caller: str | None = None,
                 signer: Secret | None = None) -> None:
        self.store = store
        self.region, self.account = region, account
        self._keyring = {"root": root}  # shared by as_caller()/planned() copies
        self._clock = clock or _utcnow
        self._rng = rng or os.urandom
        self.caller = caller or f"arn:aws:iam::{account}:root"
        self._keks: dict[str, Secret] = {}
        self._materials: dict[tuple[str, int], Secret] = {}
        self._cache_lock = threading.Lock()
        self._planning = False
        self._signer = signer  # the Ed25519 checkpoint key (never the root key)

    @property
    def _root(self) -> Secret:
        return self._keyring["root"]

    def __repr__(self) -> str:
        return f"KeyLedger(home={self.store.path!r}, region={self.region!r}, account={self.account!r})"

    def close(self) -> None:
        self.store.close()

    def as_caller(self, principal: str) -> KeyLedger:
        """The same ledger (store, caches, clock) acting for another principal."""
        other = copy.copy(self)
        other.caller = principal
        return other

    def __enter__(self) -> KeyLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> int:
        return to_us(self._clock())

    def _forget(self, key_id: str) -> None:
        with self._cache_lock:
            self._keks.pop(key_id, None)
            for k in [k for k in self._materials if k[0] == key_id]:
                self._materials.pop(k, None)

    def _run(self, operation: str, body: Callable[[_Request], T], *, key_hint: str | None = None) -> T:
        now = self.now()
        request_id = str(uuid.uuid4())

        def work(view: WriteView) -> tuple[Any, KMSError | None]:
            req = _Request(self, view, operation, now, request_id)
            req.key_hint = key_hint
            try:
                return body(req), None
            except KMSError as exc:
                req.emit([ev.RequestDenied(operation, exc.code, exc.message, req.key_hint)])
                return None, exc

        if self._planning:
            return Planned(operation, request_id, work)  # type: ignore[return-value]
        return Planned.finish((self.store.submit(work), None))

    def planned(self) -> KeyLedger:
        """The same ledger whose methods return a `Planned` request instead of
        running it, so a caller (the HTTP server's event loop) can commit many
        requests with one `store.submit_many` and one thread hand-off."""
        other = copy.copy(self)
        other._planning = True
        return other

    def _metadata(self, s: KeyState) -> r.KeyMetadata:
        return r.KeyMetadata(
            aws_account_id=self.account, key_id=s.key_id, arn=cmd.key_arn(self.region, self.account, s.key_id),
            creation_date=from_us(s.created), enabled=s.state == cmd.ENABLED, description=s.description,
            key_usage=s.key_usage, key_state=s.state, origin=s.origin, key_spec=s.key_spec,
            customer_master_key_spec=s.key_spec,
            deletion_date=from_us(s.deletion_date) if s.deletion_date is not None else None,
            pending_deletion_window_in_days=s.pending_window_days)

    def _arn(self, key_id: str) -> str:
        return cmd.key_arn(self.region, self.account, key_id)

    # -- checkpoints --------------------------------------------------------------

    def checkpoint(self) -> checkpoint_.Checkpoint:
        """Sign and store a checkpoint of the log as it is now, after proving
        that the log still extends the latest stored checkpoint: the tree's
        right edge at the old size (from stored subtrees) must give the old
        signed root; the records since then must chain, and folding their
        hashes onto that edge must give both the stored head's frontier and
        the root the stored subtrees give. Never signs a fork, a rolled-back
        log, or a tree that disagrees with its records."""
        if self._signer is None:
            raise LedgerError("this ledger has no checkpoint key (checkpoint.key)")
        meta = self.store.meta()
        origin = meta["origin"].decode()
        public = meta["checkpoint_public"]
        with self.store.snapshot() as snap:
            head = snap.head()
            stored = snap.checkpoints()
            start, prev_hash, frontier = 0, ev.GENESIS_HASH, ()
            if stored:
                last = checkpoint_.verify(stored[-1], origin, public)
                if last.size > head.seq:
                    raise LedgerError(f"the log has {head.seq} records, fewer than the checkpoint of "
                                      f"size {last.size}: refusing to sign a rolled-back log")
                start = last.size
                if start:
                    prev_hash = snap.raw_record(start - 1).hash
                    frontier = merkle.frontier_of(start, snap.node)
                    if merkle.root_of_frontier(frontier) != last.root:
                        raise LedgerError(f"the log does not extend the checkpoint of size {last.size}")
            for raw in snap.raw_records(start):
                if raw.prev_hash != prev_hash or ev.chain_hash(prev_hash, raw.body) != raw.hash:
                    raise LedgerError(f"record {raw.seq} does not verify: refusing to sign a checkpoint")
                frontier, _ = merkle.push(frontier, raw.seq, merkle.leaf_hash(raw.body))
                prev_hash = raw.hash
            root = merkle.root_of_frontier(frontier)
            if head.frontier != frontier or merkle.root(head.seq, snap.node) != root:
                raise LedgerError("the stored Merkle tree does not match the records: refusing to sign")
        signed = checkpoint_.sign(origin, head.seq, root, self._signer)
        self.store.put_checkpoint(head.seq, signed.note)
        return signed

    def rotate_root_key(self) -> int:
        """Re-wrap every KEK under a fresh root key and destroy the old one.

        Deleting a key drops its KEK row, but LMDB copies pages on write, so
        the old (wrapped) row can linger in free pages, and in backups, until
        it is overwritten. Once the root key that wrapped it is gone, those
        copies are noise: this completes crypto-shredding. Only the account
        root may do it, and only for a file-held root key (an environment
        key must be rotated by whoever holds it). Returns the KEKs re-wrapped.
        """
        from pathlib import Path

        from keyledger import NEXT_ROOT_KEY_FILE, ROOT_KEY_ENV, ROOT_KEY_FILE, _fsync_dir

        if self.caller != authz.root_of(self.account):
            raise AccessDeniedException(f"User: {self.caller} is not authorized to rotate the root key: "
                                        "only the account root may")
        if os.environ.get(ROOT_KEY_ENV):
            raise LedgerError(f"the root key comes from {ROOT_KEY_ENV}; rotate it where it is kept")
        home = Path(self.store.path)
        pending = home / NEXT_ROOT_KEY_FILE
        new = Secret(self._rng(32))
        fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, new.reveal())
            os.fsync(fd)
        finally:
            os.close(fd)
        old = self._root

        def body(req: _Request) -> int:
            rows = req.view.keks()
            for key_id, wrapped in rows:
                kek = crypto.unwrap_kek(old, key_id, wrapped)
                req.view.put_kek(key_id, crypto.wrap_kek(new, key_id, kek, nonce=self._rng(crypto.NONCE_BYTES)))
            check = crypto.root_check(new)
            req.view.put_meta("root_check", check)
            req.emit([ev.RootKeyRotated(len(rows), check)])
            return len(rows)

        try:
            count = self._run("RotateRootKey", body)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        os.replace(pending, home / ROOT_KEY_FILE)
        _fsync_dir(home)
        self._keyring["root"] = new
        with self._cache_lock:
            self._keks.clear()
        return count

    def verifier_key(self) -> str:
        meta = self.store.meta()
        return checkpoint_.verifier_key(meta["origin"].decode(), meta["checkpoint_public"])

    # -- keys -------------------------------------------------------------------

    def create_key(self, *, description: str = "", key_usage: str = "ENCRYPT_DECRYPT",
                   key_spec: str | None = None, customer_master_key_spec: str | None = None,
                   origin: str = "AWS_KMS", tags: Any = None, multi_region: bool = False,
                   policy: str | None = None, bypass_policy_lockout_safety_check: bool = False,
                   ) -> r.CreateKeyResponse:
        policy_document = policy

        def body(req: _Request) -> r.CreateKeyResponse:
            spec = key_spec or customer_master_key_spec or cmd.SYMMETRIC_DEFAULT
            cmd.check_description(description)
            cmd.check_create_params(key_usage, spec, origin, multi_region)
            tag_map = cmd.check_tags(tags)
            req.authorize("kms:CreateKey", None, extra={
                **_request_tags(tag_map), "kms:keyspec": spec, "kms:keyusage": key_usage, "kms:keyorigin": origin,
                "kms:bypasspolicylockoutsafetycheck": bypass_policy_lockout_safety_check})
            key_id = str(uuid.UUID(bytes=self._rng(16), version=4))
            document = authz.default_key_policy(self.account) if policy_document is None else policy_document
            authz.parse(document)
            if policy_document is not None and not bypass_policy_lockout_safety_check:
                _lockout_check(req, key_id, document)  # only a given policy (AWS: the default cannot lock out)
            kek = Secret(self._rng(32))
            wrapped_kek = crypto.wrap_kek(self._root, key_id, kek, nonce=self._rng(crypto.NONCE_BYTES))
            events = cmd.create_key(key_id, description=description, key_usage=key_usage, key_spec=spec,
                                    origin=origin, tags=tag_map, material=req.mint(key_id, 1, kek),
                                    policy=document)
            # Only once decide has accepted the key: a refused CreateKey must
            # leave no KEK row behind for a key that never existed.
            req.view.put_kek(key_id, wrapped_kek)
            req.emit(events)
            return r.CreateKeyResponse(self._metadata(req.view.get("keys", key_row(key_id))))
        return self._run("CreateKey", body)

    def describe_key(self, key_id: str, *, grant_tokens: list[str] | None = None) -> r.DescribeKeyResponse:
        def body(req: _Request) -> r.DescribeKeyResponse:
            _check_grant_tokens(grant_tokens)
            state = req.key(key_id)
            req.authorize("kms:DescribeKey", state)
            req.emit([ev.MetadataRead("DescribeKey", state.key_id)])
            return r.DescribeKeyResponse(self._metadata(state))
        return self._run("DescribeKey", body, key_hint=key_id)

    def list_keys(self, *, limit: int | None = None, marker: str | None = None) -> r.ListKeysResponse:
        def body(req: _Request) -> r.ListKeysResponse:
            n = cmd.check_limit(limit, 1000)
            after = _decode_marker(marker, _key_marker)
            req.authorize("kms:ListKeys", None)
            entries: list[r.KeyListEntry] = []
            last = after
            truncated = False
            while True:
                rows = req.view.scan("keys", after=last, limit=n + 1)
                for row, state in rows:
                    state = req.maintain(state.key_id)  # a key whose deletion fell due is gone
                    if state.state == cmd.DELETED:
                        last = row
                        continue
                    if len(entries) == n:
                        truncated = True
                        break
                    entries.append(r.KeyListEntry(state.key_id, self._arn(state.key_id)))
                    last = row
                if truncated or len(rows) < n + 1:
                    break
            req.emit([ev.MetadataRead("ListKeys")])
            return r.ListKeysResponse(entries, truncated, _encode_marker(last) if truncated and last else None)
        return self._run("ListKeys", body)

    def update_key_description(self, key_id: str, description: str) -> None:
        def body(req: _Request) -> None:
            cmd.check_description(description)
            state = req.key(key_id)
            req.authorize("kms:UpdateKeyDescription", state)
            req.emit(cmd.update_description(state, req.arn(state.key_id), description))
        return self._run("UpdateKeyDescription", body, key_hint=key_id)

    def _key_change(self, operation: str, key_id: str,
                    decide: Callable[[KeyState, str], list[ev.Event]]) -> None:
        """The plain shape of a state change: resolve, authorize kms:<operation>, decide, append."""
        def body(req: _Request) -> None:
            state = req.key(key_id)
            req.authorize(f"kms:{operation}", state)
            req.emit(decide(state, req.arn(state.key_id)))
        return self._run(operation, body, key_hint=key_id)

    def enable_key(self, key_id: str) -> None:
        return self._key_change("EnableKey", key_id, cmd.enable_key)

    def disable_key(self, key_id: str) -> None:
        return self._key_change("DisableKey", key_id, cmd.disable_key)

    def schedule_key_deletion(self, key_id: str, *, pending_window_in_days: int | None = None,
                              ) -> r.ScheduleKeyDeletionResponse:
        def body(req: _Request) -> r.ScheduleKeyDeletionResponse:
            days = cmd.DEFAULT_PENDING_WINDOW if pending_window_in_days is None else pending_window_in_days
            cmd.check_range("pendingWindowInDays", days, *cmd.PENDING_WINDOW_RANGE)
            state = req.key(key_id)
            req.authorize("kms:ScheduleKeyDeletion", state, extra={"kms:schedulekeydeletionpendingwindowindays": days})
            events = cmd.schedule_deletion(state, req.arn(state.key_id), days, req.now)
            req.emit(events)
            return r.ScheduleKeyDeletionResponse(req.arn(state.key_id), from_us(events[0].deletion_date),
                                                 cmd.PENDING_DELETION, days)
        return self._run("ScheduleKeyDeletion", body, key_hint=key_id)

    def cancel_key_deletion(self, key_id: str) -> r.CancelKeyDeletionResponse:
        def body(req: _Request) -> r.CancelKeyDeletionResponse:
            state = req.key(key_id)
            req.authorize("kms:CancelKeyDeletion", state)
            req.emit(cmd.cancel_deletion(state, req.arn(state.key_id)))
            return r.CancelKeyDeletionResponse(req.arn(state.key_id))
        return self._run("CancelKeyDeletion", body, key_hint=key_id)

    # -- tags -------------------------------------------------------------------

    def tag_resource(self, key_id: str, tags: Any) -> None:
        def body(req: _Request) -> None:
            tag_map = cmd.check_tags(tags)
            state = req.key(key_id)
            req.authorize("kms:TagResource", state, extra=_request_tags(tag_map))
            req.emit(cmd.tag(state, req.arn(state.key_id), tag_map))
        return self._run("TagResource", body, key_hint=key_id)

    def untag_resource(self, key_id: str, tag_keys: list[str]) -> None:
        def body(req: _Request) -> None:
            keys = cmd.check_tag_keys(tag_keys)
            state = req.key(key_id)
            req.authorize("kms:UntagResource", state, extra={"aws:tagkeys": keys})
            req.emit(cmd.untag(state, req.arn(state.key_id), keys))
        return self._run("UntagResource", body, key_hint=key_id)

    def list_resource_tags(self, key_id: str, *, limit: int | None = None,
                           marker: str | None = None) -> r.ListResourceTagsResponse:
        def body(req: _Request) -> r.ListResourceTagsResponse:
            n = cmd.check_limit(limit, 50)
            after = _decode_marker(marker, _tag_marker)
            state = req.key(key_id)
            req.authorize("kms:ListResourceTags", state)
            keys = sorted(k for k in state.tags if after is None or k.encode() > after)
            page = keys[:n]
            req.emit([ev.MetadataRead("ListResourceTags", state.key_id)])
            truncated = len(keys) > n
            return r.ListResourceTagsResponse([r.Tag(k, state.tags[k]) for k in page], truncated,
                                              _encode_marker(page[-1].encode()) if truncated else None)
        return self._run("ListResourceTags", body, key_hint=key_id)

    # -- aliases ----------------------------------------------------------------

    def create_alias(self, alias_name: str, target_key_id: str) -> None:
        def body(req: _Request) -> None:
            name = cmd.check_alias_name(alias_name)
            target = self._target(req, target_key_id)
            req.authorize("kms:CreateAlias", target)
            req.emit(cmd.create_alias(name, req.alias(name), target, req.arn(target.key_id), req.alias_arn(name)))
        return self._run("CreateAlias", body, key_hint=target_key_id)

    def update_alias(self, alias_name: str, target_key_id: str) -> None:
        def body(req: _Request) -> None:
            name = cmd.check_alias_name(alias_name)
            target = self._target(req, target_key_id)
            req.authorize("kms:UpdateAlias", target)
            existing = req.alias(name)
            if existing is not None and existing.key_id != target.key_id:
                old = req.view.get("keys", key_row(existing.key_id))
                if old is not None:
                    req.authorize("kms:UpdateAlias", old)
            req.emit(cmd.update_alias(name, req.alias(name), target, req.arn(target.key_id), req.alias_arn(name)))
        return self._run("UpdateAlias", body, key_hint=target_key_id)

    def _target(self, req: _Request, target_key_id: str) -> KeyState:
        kind, _ = cmd.parse_key_id(target_key_id, self.region, self.account)
        if kind == "alias":
            raise cmd.ValidationException("TargetKeyId must be a key ID or key ARN, not an alias")
        return req.key(target_key_id)

    def delete_alias(self, alias_name: str) -> None:
        def body(req: _Request) -> None:
            name = cmd.check_alias_name(alias_name)
            existing = req.alias(name)
            if existing is not None:
                req.key_hint = existing.key_id
                req.authorize("kms:DeleteAlias", req.view.get("keys", key_row(existing.key_id)))
            req.emit(cmd.delete_alias(name, existing, req.alias_arn(name)))
        return self._run("DeleteAlias", body)

    def list_aliases(self, *, key_id: str | None = None, limit: int | None = None,
                     marker: str | None = None) -> r.ListAliasesResponse:
        def body(req: _Request) -> r.ListAliasesResponse:
            n = cmd.check_limit(limit, 100)
            after = _decode_marker(marker, _alias_marker)
            req.authorize("kms:ListAliases", None)
            if key_id is not None:
                state = req.key(key_id)
                names = [a for a in state.aliases if after is None or a.encode() > after]
                rows = [(a.encode(), req.alias(a)) for a in names[:n + 1]]
            else:
                rows, last = [], after
                while len(rows) < n + 1:
                    page = req.view.scan("aliases", after=last, limit=n + 1)
                    for row, _ in page:  # aliases of a key whose deletion fell due go with it
                        alias = req.alias(row.decode())
                        if alias is not None:
                            rows.append((row, alias))
                        last = row
                    if len(page) < n + 1:
                        break
            truncated = len(rows) > n
            rows = rows[:n]
            req.emit([ev.MetadataRead("ListAliases", state.key_id if key_id is not None else None)])
            entries = [r.AliasListEntry(a.alias_name, req.alias_arn(a.alias_name), a.key_id,
                                        from_us(a.created), from_us(a.updated)) for _, a in rows]
            return r.ListAliasesResponse(entries, truncated, _encode_marker(rows[-1][0]) if truncated else None)
        return self._run("ListAliases", body, key_hint=key_id)

    # -- rotation ---------------------------------------------------------------

    def enable_key_rotation(self, key_id: str, *, rotation_period_in_days: int | None = None) -> None:
        def body(req: _Request) -> None:
            if rotation_period_in_days is not None:
                cmd.check_range("rotationPeriodInDays", rotation_period_in_days, *cmd.ROTATION_PERIOD_RANGE)
            state = req.key(key_id)
            period = cmd.DEFAULT_ROTATION_PERIOD if rotation_period_in_days is None else rotation_period_in_days
            req.authorize("kms:EnableKeyRotation", state, extra={"kms:rotationperiodindays": period})
            req.emit(cmd.enable_rotation(state, req.arn(state.key_id), rotation_period_in_days))
        return self._run("EnableKeyRotation", body, key_hint=key_id)

    def disable_key_rotation(self, key_id: str) -> None:
        return self._key_change("DisableKeyRotation", key_id, cmd.disable_rotation)

    def get_key_rotation_status(self, key_id: str) -> r.GetKeyRotationStatusResponse:
        def body(req: _Request) -> r.GetKeyRotationStatusResponse:
            state = req.key(key_id)
            req.authorize("kms:GetKeyRotationStatus", state)
            req.emit([ev.MetadataRead("GetKeyRotationStatus", state.key_id)])
            nxt = state.next_rotation
            return r.GetKeyRotationStatusResponse(
                key_rotation_enabled=state.rotation_enabled, key_id=req.arn(state.key_id),
                rotation_period_in_days=state.rotation_period_days if state.rotation_enabled else None,
                next_rotation_date=from_us(nxt) if nxt is not None else None)
        return self._run("GetKeyRotationStatus", body, key_hint=key_id)

    def rotate_key_on_demand(self, key_id: str) -> r.RotateKeyOnDemandResponse:
        def body(req: _Request) -> r.RotateKeyOnDemandResponse:
            state = req.key(key_id)
            req.authorize("kms:RotateKeyOnDemand", state)
            cmd.check_on_demand(state, req.arn(state.key_id))
            material = req.mint(state.key_id, len(state.versions) + 1)
            req.emit(cmd.rotate_on_demand(state, req.arn(state.key_id), req.now, material))
            return r.RotateKeyOnDemandResponse(state.key_id)
        return self._run("RotateKeyOnDemand", body, key_hint=key_id)

    def list_key_rotations(self, key_id: str, *, limit: int | None = None,
                           marker: str | None = None) -> r.ListKeyRotationsResponse:
        def body(req: _Request) -> r.ListKeyRotationsResponse:
            n = cmd.check_limit(limit, 1000)
            after = _decode_marker(marker, _rotation_marker)
            start = int.from_bytes(after, "big") if after else 0
            state = req.key(key_id)
            req.authorize("kms:ListKeyRotations", state)
            later = [v for v in state.versions[1:] if v.version > start]
            page = later[:n]
            req.emit([ev.MetadataRead("ListKeyRotations", state.key_id)])
            truncated = len(later) > n
            return r.ListKeyRotationsResponse(
                [r.RotationsListEntry(state.key_id, from_us(v.created), v.rotation_type or "") for v in page],
                truncated, _encode_marker(page[-1].version.to_bytes(4, "big")) if truncated else None)
        return self._run("ListKeyRotations", body, key_hint=key_id)

    def rotate_due(self) -> dict[str, int]:
        """The sweep: append every automatic rotation and key deletion that
        has fallen due, for all keys. Returns counts."""
        def body(req: _Request) -> dict[str, int]:
            before = len(req.view.appended)
            for _, state in req.view.scan("keys"):
                if state.state != cmd.DELETED:
                    req.maintain(state.key_id)  # not touch: a key it deletes is no error
            done = req.view.appended[before:]
            return {"rotated": sum(isinstance(x.event, ev.KeyRotated) for x in done),
                    "deleted": sum(isinstance(x.event, ev.KeyDeleted) for x in done)}
        return self._run("RotateDue", body)

    # -- key policies -------------------------------------------------------------

    def put_key_policy(self, key_id: str, policy: str, *, policy_name: str = "default",
                       bypass_policy_lockout_safety_check: bool = False) -> None:
        def body(req: _Request) -> None:
            _check_policy_name(policy_name)
            authz.parse(policy)
            state = req.key(key_id)
            req.authorize("kms:PutKeyPolicy", state,
                          extra={"kms:bypasspolicylockoutsafetycheck": bypass_policy_lockout_safety_check})
            cmd.require_not_pending(state, req.arn(state.key_id))
            if not bypass_policy_lockout_safety_check:
                _lockout_check(req, state.key_id, policy)
            req.emit([ev.KeyPolicyPut(state.key_id, policy_name, policy)])
        return self._run("PutKeyPolicy", body, key_hint=key_id)

    def get_key_policy(self, key_id: str, *, policy_name: str = "default") -> r.GetKeyPolicyResponse:
        def body(req: _Request) -> r.GetKeyPolicyResponse:
            _check_policy_name(policy_name)
            state = req.key(key_id)
            req.authorize("kms:GetKeyPolicy", state)
            req.emit([ev.MetadataRead("GetKeyPolicy", state.key_id)])
            return r.GetKeyPolicyResponse(state.policy or authz.default_key_policy(self.account), policy_name)
        return self._run("GetKeyPolicy", body, key_hint=key_id)

    def list_key_policies(self, key_id: str, *, limit: int | None = None,
                          marker: str | None = None) -> r.ListKeyPoliciesResponse:
        def body(req: _Request) -> r.ListKeyPoliciesResponse:
            cmd.check_limit(limit, 1000)
            if marker is not None:
                raise InvalidMarkerException("The marker is not valid.")
            state = req.key(key_id)
            req.authorize("kms:ListKeyPolicies", state)
            req.emit([ev.MetadataRead("ListKeyPolicies", state.key_id)])
            return r.ListKeyPoliciesResponse(["default"])
        return self._run("ListKeyPolicies", body, key_hint=key_id)

    def simulate_policy(self, principal: str, action: str, *, key_id: str | None = None,
                        encryption_context: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The decision for `principal` doing `action` (on `key_id`, with
        `encryption_context`) and every statement or grant that applied:
        `keyledger policy simulate`. Changes nothing; the query is logged."""
        def body(req: _Request) -> dict[str, Any]:
            cmd.check_principal_arn("principal", principal)
            if not isinstance(action, str) or ":" not in action:
                raise cmd.ValidationException("action must look like kms:Decrypt")
            context = cmd.check_context("encryptionContext", encryption_context) \
                if encryption_context is not None else None
            req.authorize("iam:SimulatePrincipalPolicy", None, resource=principal)
            state = req.key(key_id) if key_id is not None else None
            who = _Request(self.as_caller(principal), req.view, req.operation, req.now, req.request_id)
            who.request_alias = req.request_alias
            request = authz.Request(principal, action, req.arn(state.key_id) if state else "*",
                                    who.conditions(state, context, None), context)
            found = req.view.get("principals", principal_row(principal))
            iam = {name: authz.parse(doc, key_policy=False) for name, doc in found.policies.items()} \
                if found is not None else {}
            key_policy = authz.parse(state.policy or authz.default_key_policy(self.account)) if state else None
            decision, matches = authz.explain(request, key_policy=key_policy, iam_policies=iam,
                                              grants=who.grants(state.key_id) if state else ())
            req.emit([ev.MetadataRead("SimulatePrincipalPolicy", state.key_id if state else None)])
            return {"Principal": principal, "Action": action, "Resource": request.resource,
                    "Decision": "allowed" if decision.allowed else "denied",
                    "Reason": decision.reason,
                    "MatchedStatements": [{"Source": m.source, "Statement": m.statement, "Effect": m.effect,
                                           "Via": m.via} for m in matches]}
        return self._run("SimulatePrincipalPolicy", body, key_hint=key_id)

    # -- grants -------------------------------------------------------------------

    def create_grant(self, key_id: str, grantee_principal: str, operations: list[str], *,
                     retiring_principal: str | None = None, constraints: Mapping[str, Any] | None = None,
                     name: str | None = None, grant_tokens: list[str] | None = None) -> r.CreateGrantResponse:
        def body(req: _Request) -> r.CreateGrantResponse:
            ops = cmd.check_grant_operations(operations)
            cmd.check_principal_arn("granteePrincipal", grantee_principal)
            if retiring_principal is not None:
                cmd.check_principal_arn("retiringPrincipal", retiring_principal)
            equals, subset = cmd.check_grant_constraints(constraints)
            if name is not None:
                cmd.check_grant_name(name)
            _check_grant_tokens(grant_tokens)
            state = req.key(key_id)
            req.authorize("kms:CreateGrant", state, extra={
                "kms:grantoperations": ops, "kms:granteeprincipal": grantee_principal,
                "kms:retiringprincipal": retiring_principal}, new_grant_constraints=(equals, subset))
            cmd.require_not_pending(state, req.arn(state.key_id))
            if name is not None:  # CreateGrant is idempotent on a name with the same grant
                for _, g in req.view.scan("grants", prefix=f"{state.key_id}#".encode()):
                    if (g.name, g.grantee_principal, set(g.operations), g.retiring_principal,
                            g.context_equals, g.context_subset) == (name, grantee_principal, set(ops),
                                                                    retiring_principal, equals, subset):
                        req.emit([ev.MetadataRead("CreateGrant", state.key_id)])
                        return r.CreateGrantResponse(_grant_token(state.key_id, g.grant_id), g.grant_id)
            grant_id = self._rng(32).hex()
            req.emit([ev.GrantCreated(state.key_id, grant_id, grantee_principal, ops, retiring_principal,
                                      name, equals, subset)])
            return r.CreateGrantResponse(_grant_token(state.key_id, grant_id), grant_id)
        return self._run("CreateGrant", body, key_hint=key_id)

    def _grant_entry(self, g: Any) -> r.GrantListEntry:
        constraints = None
        if g.context_equals is not None or g.context_subset is not None:
            constraints = r.GrantConstraints(g.context_subset, g.context_equals)
        return r.GrantListEntry(g.key_id, g.grant_id, g.grantee_principal, list(g.operations),
                                authz.root_of(self.account), from_us(g.created), g.name,
                                g.retiring_principal, constraints)

    def list_grants(self, key_id: str, *, limit: int | None = None, marker: str | None = None,
                    grant_id: str | None = None, grantee_principal: str | None = None) -> r.ListGrantsResponse:
        def body(req: _Request) -> r.ListGrantsResponse:
            n = cmd.check_limit(limit, 100)
            after = _decode_marker(marker, lambda v: len(v) == 64)
            state = req.key(key_id)
            req.authorize("kms:ListGrants", state, extra={"kms:granteeprincipal": grantee_principal})
            prefix = f"{state.key_id}#".encode()
            rows = [g for _, g in req.view.scan("grants", prefix=prefix,
                                                 after=prefix + after if after else None)
                    if (grant_id is None or g.grant_id == grant_id)
                    and (grantee_principal is None or g.grantee_principal == grantee_principal)]
            page = rows[:n]
            req.emit([ev.MetadataRead("ListGrants", state.key_id)])
            truncated = len(rows) > n
            return r.ListGrantsResponse([self._grant_entry(g) for g in page], truncated,
                                        _encode_marker(page[-1].grant_id.encode()) if truncated else None)
        return self._run("ListGrants", body, key_hint=key_id)

    def list_retirable_grants(self, retiring_principal: str, *, limit: int | None = None,
                              marker: str | None = None) -> r.ListGrantsResponse:
        def body(req: _Request) -> r.ListGrantsResponse:
            n = cmd.check_limit(limit, 100)
            cmd.check_principal_arn("retiringPrincipal", retiring_principal)
            after = _decode_marker(marker, lambda v: b"#" in v)
            req.authorize("kms:ListRetirableGrants", None)
            rows = [(row, g) for row, g in req.view.scan("grants", after=after)
                    if g.retiring_principal == retiring_principal]
            page = rows[:n]
            req.emit([ev.MetadataRead("ListRetirableGrants")])
            truncated = len(rows) > n
            return r.ListGrantsResponse([self._grant_entry(g) for _, g in page], truncated,
                                        _encode_marker(page[-1][0]) if truncated else None)
        return self._run("ListRetirableGrants", body)

    def retire_grant(self, *, grant_token: str | None = None, key_id: str | None = None,
                     grant_id: str | None = None) -> None:
        def body(req: _Request) -> None:
            if grant_token is not None:
                token_key, token_grant = _parse_grant_token(grant_token)
                if grant_id is not None and grant_id != token_grant:
                    raise cmd.ValidationException("GrantId does not match the grant token")
                target_key, target_grant = token_key, token_grant
            elif key_id is not None and grant_id is not None:
                target_key, target_grant = req.key(key_id).key_id, grant_id
            else:
                raise cmd.ValidationException("Specify GrantToken, or KeyId and GrantId")
            req.key_hint = target_key
            grant = req.view.get("grants", grant_row(target_key, target_grant))
            if grant is None:
                raise NotFoundException(f"Grant ID {target_grant} not found")
            caller = self.caller
            allowed = caller in (grant.retiring_principal, authz.root_of(self.account)) or \
                (caller == grant.grantee_principal and "RetireGrant" in grant.operations)
            if not allowed:
                raise AccessDeniedException(
                    f"User: {caller} is not authorized to perform: kms:RetireGrant on resource: "
                    f"{req.arn(target_key)} because it is not the grant's retiring principal or grantee")
            req.emit([ev.GrantRetired(target_key, target_grant)])
        return self._run("RetireGrant", body, key_hint=key_id)

    def revoke_grant(self, key_id: str, grant_id: str) -> None:
        def body(req: _Request) -> None:
            state = req.key(key_id)
            req.authorize("kms:RevokeGrant", state)
            if req.view.get("grants", grant_row(state.key_id, grant_id)) is None:
                raise NotFoundException(f"Grant ID {grant_id} not found")
            req.emit([ev.GrantRevoked(state.key_id, grant_id)])
        return self._run("RevokeGrant", body, key_hint=key_id)

    # -- IAM principals (ledger state, changed only through events) ------------------

    def _iam_arn(self, kind: str, name: str) -> str:
        cmd.check_iam_name(name)
        return f"arn:aws:iam::{self.account}:{kind}/{name}"

    def create_user(self, user_name: str) -> r.User:
        return self._create_principal("user", user_name)

    def create_role(self, role_name: str) -> r.User:
        return self._create_principal("role", role_name)

    def _create_principal(self, kind: str, name: str) -> r.User:
        operation = "CreateUser" if kind == "user" else "CreateRole"

        def body(req: _Request) -> r.User:
            arn = self._iam_arn(kind, name)
            req.authorize(f"iam:{operation}", None, resource=arn)
            if req.view.get("principals", principal_row(arn)) is not None:
                raise AlreadyExistsException(f"{kind.capitalize()} with name {name} already exists.")
            req.emit([ev.PrincipalCreated(arn, kind)])
            return r.User(name, arn, from_us(req.now), user_id=_principal_id(arn))
        return self._run(operation, body)

    def _principal(self, req: _Request, principal: str) -> Any:
        found = req.view.get("principals", principal_row(principal))
        if found is None:
            raise NotFoundException(f"The principal {principal} cannot be found.")
        return found

    def put_principal_policy(self, principal: str, policy_name: str, policy_document: str) -> None:
        """Attach (or replace) a named identity-based policy (`keyledger iam attach-policy`)."""
        def body(req: _Request) -> None:
            cmd.check_iam_name(policy_name)
            authz.parse(policy_document, key_policy=False)
            req.authorize("iam:PutUserPolicy", None, resource=principal)
            self._principal(req, principal)
            req.emit([ev.PrincipalPolicyPut(principal, policy_name, policy_document)])
        return self._run("PutUserPolicy", body)

    def delete_principal_policy(self, principal: str, policy_name: str) -> None:
        """Detach a named identity-based policy (`keyledger iam detach-policy`)."""
        def body(req: _Request) -> None:
            req.authorize("iam:DeleteUserPolicy", None, resource=principal)
            found = self._principal(req, principal)
            if policy_name not in found.policies:
                raise NotFoundException(f"The policy {policy_name} of {principal} cannot be found.")
            req.emit([ev.PrincipalPolicyDeleted(principal, policy_name)])
        return self._run("DeleteUserPolicy", body)

    def list_users(self) -> r.ListUsersResponse:
        def body(req: _Request) -> r.ListUsersResponse:
            req.authorize("iam:ListUsers", None)
            users = [r.User(p.principal.split("/", 1)[1], p.principal, from_us(p.created),
                            user_id=_principal_id(p.principal))
                     for _, p in req.view.scan("principals") if p.kind == "user"]
            req.emit([ev.MetadataRead("ListUsers")])
            return r.ListUsersResponse(users)
        return self._run("ListUsers", body)

    def list_principal_policies(self, principal: str) -> r.ListUserPoliciesResponse:
        def body(req: _Request) -> r.ListUserPoliciesResponse:
            req.authorize("iam:ListUserPolicies", None, resource=principal)
            found = self._principal(req, principal)
            req.emit([ev.MetadataRead("ListUserPolicies")])
            return r.ListUserPoliciesResponse(sorted(found.policies))
        return self._run("ListUserPolicies", body)

    def get_principal_policy(self, principal: str, policy_name: str) -> r.GetUserPolicyResponse:
        def body(req: _Request) -> r.GetUserPolicyResponse:
            req.authorize("iam:GetUserPolicy", None, resource=principal)
            found = self._principal(req, principal)
            if policy_name not in found.policies:
                raise NotFoundException(f"The policy {policy_name} of {principal} cannot be found.")
            req.emit([ev.MetadataRead("GetUserPolicy")])
            return r.GetUserPolicyResponse(principal.split("/", 1)[-1], policy_name, found.policies[policy_name])
        return self._run("GetUserPolicy", body)

    def record_access_key(self, principal: str, access_key_id: str) -> None:
        """Log that an access key id was issued to a principal (the secret
        lives only in the server's credentials file, never in the log)."""
        def body(req: _Request) -> None:
            req.authorize("iam:CreateAccessKey", None, resource=principal)
            self._principal(req, principal)
            req.emit([ev.AccessKeyCreated(principal, access_key_id)])
        return self._run("CreateAccessKey", body)

    def record_denied(self, operation: str, error: KMSError) -> None:
        """Log a request refused before it reached the ledger (e.g. a bad
        SigV4 signature at the HTTP server), as a RequestDenied record."""
        def body(req: _Request) -> None:
            req.emit([ev.RequestDenied(operation, error.code, error.message)])
        return self._run(operation, body)

    # -- data plane -------------------------------------------------------------

    def encrypt(self, key_id: str, plaintext: bytes, *, encryption_context: Mapping[str, str] | None = None,
                grant_tokens: list[str] | None = None, encryption_algorithm: str = "SYMMETRIC_DEFAULT",
                ) -> r.EncryptResponse:
        def body(req: _Request) -> r.EncryptResponse:
            data = cmd.check_bytes("plaintext", plaintext)
            cmd.check_length("plaintext", data, 1, cmd.MAX_PLAINTEXT)
            context = cmd.check_context("encryptionContext", encryption_context)
            _check_algorithm(encryption_algorithm)
            _check_grant_tokens(grant_tokens)
            state = req.key(key_id)
            req.authorize("kms:Encrypt", state, encryption_context=context)
            cmd.require_enabled(state, req.arn(state.key_id))
            blob, version = req.seal(state, data, context)
            req.emit([ev.Encrypted(state.key_id, version, context, _digest(blob))])
            return r.EncryptResponse(blob, req.arn(state.key_id))
        return self._run("Encrypt", body, key_hint=key_id)

    def decrypt(self, ciphertext_blob: bytes, *, encryption_context: Mapping[str, str] | None = None,
                key_id: str | None = None, grant_tokens: list[str] | None = None,
                encryption_algorithm: str = "SYMMETRIC_DEFAULT") -> r.DecryptResponse:
        def body(req: _Request) -> r.DecryptResponse:
            blob = cmd.check_bytes("ciphertextBlob", ciphertext_blob)
            cmd.check_length("ciphertextBlob", blob, 1, cmd.MAX_CIPHERTEXT)
            context = cmd.check_context("encryptionContext", encryption_context)
            _check_algorithm(encryption_algorithm)
            _check_grant_tokens(grant_tokens)
            state, version, plaintext = req.open(blob, context, key_id)
            req.emit([ev.Decrypted(state.key_id, version, context, _digest(blob))])
            return r.DecryptResponse(req.arn(state.key_id), plaintext)
        return self._run("Decrypt", body, key_hint=key_id)

    def re_encrypt(self, ciphertext_blob: bytes, destination_key_id: str, *,
                   source_encryption_context: Mapping[str, str] | None = None,
                   source_key_id: str | None = None,
                   destination_encryption_context: Mapping[str, str] | None = None,
                   source_encryption_algorithm: str = "SYMMETRIC_DEFAULT",
                   destination_encryption_algorithm: str = "SYMMETRIC_DEFAULT",
                   grant_tokens: list[str] | None = None) -> r.ReEncryptResponse:
        def body(req: _Request) -> r.ReEncryptResponse:
            blob = cmd.check_bytes("ciphertextBlob", ciphertext_blob)
            cmd.check_length("ciphertextBlob", blob, 1, cmd.MAX_CIPHERTEXT)
            src_ctx = cmd.check_context("sourceEncryptionContext", source_encryption_context)
            dst_ctx = cmd.check_context("destinationEncryptionContext", destination_encryption_context)
            _check_algorithm(source_encryption_algorithm)
            _check_algorithm(destination_encryption_algorithm)
            _check_grant_tokens(grant_tokens)
            src, src_version, plaintext = req.open(blob, src_ctx, source_key_id, "kms:ReEncryptFrom")
            req.request_alias = None
            dst = req.key(destination_key_id)
            req.authorize("kms:ReEncryptTo", dst, encryption_context=dst_ctx)
            cmd.require_enabled(dst, req.arn(dst.key_id))
            new_blob, dst_version = req.seal(dst, plaintext, dst_ctx)
            req.emit([ev.ReEncrypted(src.key_id, src_version, src_ctx, _digest(blob),
                                     dst.key_id, dst_version, dst_ctx, _digest(new_blob))])
            return r.ReEncryptResponse(new_blob, req.arn(src.key_id), req.arn(dst.key_id))
        return self._run("ReEncrypt", body, key_hint=destination_key_id)

    def _data_key(self, req: _Request, key_id: str, context_in: Mapping[str, str] | None,
                  number_of_bytes: int | None, key_spec: str | None, with_plaintext: bool,
                  grant_tokens: list[str] | None) -> tuple[bytes, bytes, str]:
        size = cmd.check_key_spec_params(key_spec, number_of_bytes)
        context = cmd.check_context("encryptionContext", context_in)
        _check_grant_tokens(grant_tokens)
        state = req.key(key_id)
        req.authorize("kms:GenerateDataKey" if with_plaintext else "kms:GenerateDataKeyWithoutPlaintext",
                      state, encryption_context=context)
        cmd.require_enabled(state, req.arn(state.key_id))
        data_key = self._rng(size)
        blob, version = req.seal(state, data_key, context)
        req.emit([ev.DataKeyGenerated(state.key_id, version, context, _digest(blob), size, with_plaintext)])
        return blob, data_key, req.arn(state.key_id)

    def generate_data_key(self, key_id: str, *, encryption_context: Mapping[str, str] | None = None,
                          number_of_bytes: int | None = None, key_spec: str | None = None,
                          grant_tokens: list[str] | None = None) -> r.GenerateDataKeyResponse:
        def body(req: _Request) -> r.GenerateDataKeyResponse:
            blob, data_key, arn = self._data_key(req, key_id, encryption_context, number_of_bytes,
                                                 key_spec, True, grant_tokens)
            return r.GenerateDataKeyResponse(blob, data_key, arn)
        return self._run("GenerateDataKey", body, key_hint=key_id)

    def generate_data_key_without_plaintext(
            self, key_id: str, *, encryption_context: Mapping[str, str] | None = None,
            number_of_bytes: int | None = None, key_spec: str | None = None,
            grant_tokens: list[str] | None = None) -> r.GenerateDataKeyWithoutPlaintextResponse:
        def body(req: _Request) -> r.GenerateDataKeyWithoutPlaintextResponse:
            blob, _, arn = self._data_key(req, key_id, encryption_context, number_of_bytes,
                                          key_spec, False, grant_tokens)
            return r.GenerateDataKeyWithoutPlaintextResponse(blob, arn)
        return self._run("GenerateDataKeyWithoutPlaintext", body, key_hint=key_id)

    def generate_random(self, *, number_of_bytes: int) -> r.GenerateRandomResponse:
        def body(req: _Request) -> r.GenerateRandomResponse:
            cmd.check_range("numberOfBytes", number_of_bytes, 1, 1024)
            req.authorize("kms:GenerateRandom", None)
            req.emit([ev.RandomGenerated(number_of_bytes)])
            return r.GenerateRandomResponse(self._rng(number_of_bytes))
        return self._run("GenerateRandom", body)
