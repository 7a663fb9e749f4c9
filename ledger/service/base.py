"""The service's core: the ledger handle, its caches, and `_run` (one
operation as one work item in the store's write path)."""

from __future__ import annotations

import copy
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from keyledger import commands as cmd
from keyledger import crypto
from keyledger import events as ev
from keyledger import imported
from keyledger import keyspecs
from keyledger import responses as r
from keyledger.errors import (
    KMSError,
)
from keyledger.projections.state import KeyState
from keyledger.secret import Secret
from keyledger.events import from_us, to_us
from keyledger.service.request import (
    Clock,
    Planned,
    Rng,
    T,
    _drop_version,
    _Request,
    _utcnow,
    new_request_id,
)
from keyledger.store import Store, WriteView


_REGION = re.compile(r"^([a-z]+-){2,3}\d+$")  # the model's RegionType


def check_region(region: str) -> str:
    """A region name as AWS writes them (us-east-1, ap-southeast-2, us-gov-west-1)."""
    if not isinstance(region, str) or len(region) > 32 or not _REGION.fullmatch(region):
        raise ValueError(f"not a region name like us-east-1: {region!r}")
    return region


class ServiceBase:
    """State and plumbing shared by every operation group."""

    def __init__(self, store: Store, root: Secret, *, region: str, account: str,
                 clock: Clock | None = None, rng: Rng | None = None, caller: str | None = None,
                 signer: Secret | None = None, home_region: str | None = None) -> None:
        self.store = store
        # `region` is the region requests are made in; `home_region` the
        # ledger's initial region, whose records and rows carry no region name
        self.region, self.account = check_region(region), account
        self.home_region = home_region or region
        self.scope = "" if self.region == self.home_region else self.region
        self._keyring = {"root": root}  # shared by as_caller()/planned() copies
        self._clock = clock or _utcnow
        self._rng = rng or os.urandom
        self.caller = caller or f"arn:aws:iam::{account}:root"
        # caches, each entry under the wrapped bytes it was unwrapped from
        # (see _Request.kek / material): (kek row name) -> (wrapped KEK, KEK);
        # (key id, version, wrapped material) -> material / loaded key
        self._keks: dict[str, tuple[bytes, Secret]] = {}
        self._holders: dict[str, str] = {}  # access key id -> the principal it was issued to
        self._materials: dict[tuple[str, int, bytes], Secret] = {}
        self._private_keys: dict[tuple[str, int, bytes], crypto.PrivateKey] = {}  # asymmetric/HMAC keys
        self._cache_lock = threading.Lock()
        self._planning = False
        self._signer = signer  # the Ed25519 checkpoint key (never the root key)

    @property
    def _root(self) -> Secret:
        return self._keyring["root"]

    def __repr__(self) -> str:
        return f"KeyLedger(home={self.store.path!r}, region={self.region!r}, account={self.account!r})"

    def close(self) -> None:
        """Close the store; the handle (and every `as_caller` / `via_service` /
        `planned` copy of it) is unusable afterwards. `with keyledger.open(...)`
        closes it for you."""
        self.store.close()

    def in_region(self, region: str) -> Self:
        """The same ledger (store, caches, clock, caller) making its requests
        in another region of the account: its own keys, aliases and grants,
        ARNs naming it, and records that say it."""
        other = copy.copy(self)
        other.region = check_region(region)
        other.scope = "" if other.region == self.home_region else other.region
        return other

    def region_name(self, scope: str) -> str:
        """The region a row or record scope names ("" is the initial region)."""
        return scope or self.home_region

    def as_caller(self, principal: str) -> Self:
        """The same ledger (store, caches, clock) acting for another principal."""
        other = copy.copy(self)
        other.caller = principal
        return other

    #: the integrated service calling on the caller's behalf (kms:ViaService); None: a direct call
    via: str | None = None

    def via_service(self, service: str) -> Self:
        """The same ledger acting for the same caller through an integrated
        service (`ssm.us-east-1.amazonaws.com`): requests then carry
        `kms:ViaService`, which direct calls (library, CLI, server) never do."""
        if not isinstance(service, str) or not re.fullmatch(r"[a-z0-9-]+\.[a-z0-9-]+\.amazonaws\.com", service):
            raise ValueError(f"not a service endpoint name like ssm.us-east-1.amazonaws.com: {service!r}")
        other = copy.copy(self)
        other.via = service
        return other

    #: where the request came from over the network: (source IP address, over TLS); None: the library or CLI
    origin: tuple[str, bool] | None = None
    #: a role session's: when its token was issued (us since the epoch; aws:TokenIssueTime); see `as_session`
    token_issued: int | None = None
    #: the access key id that signed the caller's requests, kept in their records; see `from_address`
    access_key: str | None = None

    def from_address(self, source_ip: str, secure_transport: bool, token_issued: int | None = None,
                     access_key: str | None = None) -> Self:
        """The same ledger acting for the same caller on a request that came
        over the network from `source_ip` (TLS or not): its requests carry
        `aws:SourceIp` and `aws:SecureTransport`, which library and CLI calls
        never do; and `aws:TokenIssueTime` when signed with a role session's
        credentials issued at `token_issued`. `access_key`: the access key id
        whose signature proved the caller, kept in each record of its
        requests (CloudTrail's accessKeyId). The HTTP server makes one per
        client address, session and key."""
        other = copy.copy(self)
        other.origin = (source_ip, bool(secure_transport))
        if token_issued is not None:
            other.token_issued = token_issued
        if access_key is not None:
            other.access_key = access_key
        return other

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> int:
        """The ledger clock, in microseconds since the Unix epoch (UTC): the time
        every record of the next request gets. Tests inject `clock` to jump years."""
        if self._clock is _utcnow:  # the same clock (CLOCK_REALTIME), without building a datetime
            return time.time_ns() // 1000
        return to_us(self._clock())

    def _forget(self, key_id: str, kek_name: str | None = None) -> None:
        with self._cache_lock:
            self._keks.pop(kek_name or key_id, None)
            for k in [k for k in self._materials if k[0] == key_id]:
                self._materials.pop(k, None)
            for k in [k for k in self._private_keys if k[0] == key_id]:
                self._private_keys.pop(k, None)

    def _forget_material(self, key_id: str, version: int) -> None:
        """Drop a version's unwrapped material from the caches: the next use
        unwraps it again, after the state checks."""
        with self._cache_lock:
            _drop_version(self._materials, key_id, version)
            _drop_version(self._private_keys, key_id, version)

    def _run(self, operation: str, body: Callable[[_Request], T], *, key_hint: str | None = None) -> T:
        now = self.now()
        request_id = new_request_id()

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
        response: T = Planned.finish((self.store.submit(work), None))
        return response

    def _key_change(self, operation: str, key_id: str,
                    decide: Callable[[KeyState, str], list[ev.Event]]) -> None:
        """The plain shape of a state change: resolve, authorize kms:<operation>, decide, append."""
        def body(req: _Request) -> None:
            state = req.key(key_id)
            req.authorize(f"kms:{operation}", state)
            req.emit(decide(state, req.arn(state.key_id)))
        return self._run(operation, body, key_hint=key_id)

    def planned(self) -> Self:
        """The same ledger whose methods return a `Planned` request instead of
        running it, so a caller (the HTTP server's event loop) can commit many
        requests with one `store.submit_many` and one thread hand-off."""
        other = copy.copy(self)
        other._planning = True
        return other

    def _metadata(self, s: KeyState) -> r.KeyMetadata:
        return r.KeyMetadata(
            aws_account_id=self.account, key_id=s.key_id,
            arn=cmd.key_arn(self.region_name(s.region), self.account, s.key_id),
            creation_date=from_us(s.created), enabled=s.state == cmd.ENABLED, description=s.description,
            key_usage=s.key_usage, key_state=s.state, origin=s.origin, key_spec=s.key_spec,
            customer_master_key_spec=s.key_spec, **keyspecs.metadata_algorithms(s.key_spec, s.key_usage),
            deletion_date=from_us(s.deletion_date) if s.deletion_date is not None else None,
            # AWS: CurrentKeyMaterialId for symmetric encryption keys only; no
            # PendingDeletionWindowInDays outside PendingReplicaDeletion
            current_key_material_id=cmd.key_material_id(s.key_id, s.current.version)
            if s.key_spec == cmd.SYMMETRIC_DEFAULT and s.versions else None,
            key_manager=s.key_manager, **imported.metadata_fields(s), **self._multi_region(s))

    def _multi_region(self, s: KeyState) -> dict[str, Any]:
        """MultiRegion, MultiRegionConfiguration and (for a primary waiting for
        its replicas) PendingDeletionWindowInDays, as DescribeKey shows them."""
        if s.primary_region is None:
            return {}
        def key(scope: str) -> r.MultiRegionKey:
            return r.MultiRegionKey(cmd.key_arn(self.region_name(scope), self.account, s.key_id),
                                    self.region_name(scope))
        config = r.MultiRegionConfiguration("REPLICA" if s.is_replica else "PRIMARY", key(s.primary_region),
                                            [key(scope) for scope in s.replica_regions])
        out: dict[str, Any] = {"multi_region": True, "multi_region_configuration": config}
        if s.state == cmd.PENDING_REPLICA_DELETION:
            out["pending_deletion_window_in_days"] = s.pending_window_days
        return out

    def _arn(self, key_id: str) -> str:
        return cmd.key_arn(self.region, self.account, key_id)

