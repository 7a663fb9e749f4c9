"""One node of a cluster in this process: the store's replicated log, and
the thread that keeps the node applied, reported and the tail compacted."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from keyledger import crypto
from keyledger.cluster.etcd import EtcdError, b64
from keyledger.cluster.log import EtcdLog
from keyledger.errors import LedgerError
from keyledger.secret import Secret
from keyledger.store import Appended, Batch, Behind, LogDiverged, LogGap, LogUnavailable, Store

log = logging.getLogger("keyledger.cluster")

TOKEN_HEADER = "x-keyledger-node-token"
TOKEN_WINDOW = 120.0  # seconds a peer token stays valid
SNAPSHOT_PATH = "/cluster/snapshot"


def peer_token(root: Secret, now: float | None = None) -> str:
    """Proof that the caller holds the cluster's root key (every node does),
    bound to a time: what a node shows a peer to be given a snapshot."""
    stamp = str(int(time.time() if now is None else now))
    return f"{stamp}.{hmac.new(_token_key(root), stamp.encode(), hashlib.sha256).hexdigest()}"


def check_token(root: Secret, token: str | None, now: float | None = None) -> bool:
    if not token or "." not in token:
        return False
    stamp, _, mac = token.partition(".")
    if not stamp.isdigit() or abs((time.time() if now is None else now) - int(stamp)) > TOKEN_WINDOW:
        return False
    want = hmac.new(_token_key(root), stamp.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, mac)


def _token_key(root: Secret) -> bytes:
    # a key of its own, derived from the root key: the root key itself never signs
    return hmac.new(root.reveal(), b"keyledger cluster peer token v1", hashlib.sha256).digest()


def fetch_snapshot(sources: list[str], root: Secret | list[Secret], directory: Path) -> Path:
    """A copy of a peer's data.mdb in `directory`, from the first source that
    gives one: a snapshot file, a peer's home directory (read here) or a
    peer's `keyledger serve` URL (GET /cluster/snapshot with a peer token).
    `root`: the root key to prove, or keys to try in turn (a node behind a
    root-key rotation proves the staged key its peers now hold)."""
    roots = root if isinstance(root, list) else [root]
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / "data.mdb"
    failures = []
    for source in sources:
        try:
            if "://" not in source and os.path.isfile(source):  # a snapshot file (a peer's copy_to, an archive)
                shutil.copyfile(source, target)
                return target
            if "://" not in source:  # a peer's home (another process may have it open)
                peer = Store(source, readonly=True, create=False)
                try:
                    return Path(peer.copy_to(str(directory)))
                finally:
                    peer.close()
            for i, key in enumerate(roots):
                request = urllib.request.Request(source.rstrip("/") + SNAPSHOT_PATH,
                                                 headers={TOKEN_HEADER: peer_token(key)})
                try:
                    with urllib.request.urlopen(request, timeout=30) as response, \
                            open(target, "wb", opener=_private) as out:
                        shutil.copyfileobj(response, out, 1 << 20)
                        out.flush()
                        os.fsync(out.fileno())
                except urllib.error.HTTPError as exc:
                    if exc.code == 403 and i + 1 < len(roots):
                        continue  # the peer holds another root key: try the next
                    raise
                return target
        except (OSError, LedgerError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"{source}: {exc}")
    raise LedgerError("no peer gave a snapshot" + (f" ({'; '.join(failures)})" if failures else
                                                    " (no peer is known: give one with --bootstrap-from)"))


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


class Node:
    """The store's `ReplicatedLog` for one node, plus its upkeep thread:
    catch up (woken by a watch on the head), report the applied position,
    compact the tail, and re-bootstrap from a peer's snapshot if the node
    fell behind the compacted tail. `state` says which."""

    def __init__(self, store: Store, etcd_log: EtcdLog, *, root: Secret | Callable[[], Secret], url: str | None,
                 source: str | None, checkpoint_public: bytes | None, node_timeout: float, compact_interval: float,
                 report_interval: float, on_adopted: Callable[[], None] | None = None,
                 staged_root: Callable[[], Secret | None] | None = None) -> None:
        self.store, self.log = store, etcd_log
        self.node, self.timeout = etcd_log.node, etcd_log.timeout
        self.url, self.source = url, source
        # the root key as it is now (a root-key rotation replaces it), and the one staged for the next
        self._root_of: Callable[[], Secret] = root if callable(root) else (lambda: root)
        self._staged_root = staged_root
        self._checkpoint_public = checkpoint_public
        self.node_timeout, self.compact_interval, self.report_interval = node_timeout, compact_interval, report_interval
        self.on_adopted = on_adopted
        self.state = "starting"
        self.error: str | None = None
        self.rebootstraps = 0
        self._gap = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher = etcd_log.etcd.sibling()  # same members, same TLS context, its own connections
        self._upkeep = EtcdLog(etcd_log.etcd.sibling(), etcd_log.layout,
                               etcd_log.node, timeout=etcd_log.timeout)

    # -- ReplicatedLog -----------------------------------------------------------

    def append(self, after: int, batch: Batch) -> Appended | Behind:
        return self.log.append(after, batch)

    def read(self, start: int) -> list[tuple[int, Batch]]:
        return self.log.read(start)

    def close(self) -> None:
        self._stop.set()
        self._watcher.interrupt()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None
        try:  # its last word: still holding the tail back for a while, but not up
            self._upkeep.report({**self.position(), "state": "stopped"})
        except (EtcdError, LedgerError, OSError) as exc:
            log.info("node %s could not report itself stopped: %s", self.node, exc)
        self.log.close()
        self._watcher.close()
        self._upkeep.close()

    # -- upkeep ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"keyledger-node-{self.node}", daemon=True)
        self._thread.start()

    def position(self) -> dict[str, Any]:
        head = self.store.head()
        return {"applied_seq": head.seq, "applied_revision": self.store.applied_revision(),
                "head_hash": head.hash.hex(), "url": self.url, "state": self.state, "pid": os.getpid(),
                "staged_root_check": self._staged_check()}

    def _staged_check(self) -> str | None:
        """The check value of the root key staged on this node (not a secret:
        etcd's identity of the cluster holds the current key's)."""
        staged = self._staged_root() if self._staged_root is not None else None
        return None if staged is None else crypto.root_check(staged).hex()

    def staged_root_checks(self) -> dict[str, str | None]:
        """Each live node's staged root key check, as it last reported it
        (this node's as it is now): what a rotation on a cluster checks
        first, so no node that is up is left unable to follow it."""
        now = time.time()
        out = {name: r.get("staged_root_check") for name, r in self.log.reports().items()
               if now - float(r.get("time", 0)) < self.node_timeout and r.get("state") != "stopped"}
        out[self.node] = self._staged_check()
        return out

    def catch_up(self) -> None:
        """Apply what the log holds past this node (re-bootstrapping first if
        it fell behind the compacted tail)."""
        if self._gap:
            self.state = "re-bootstrapping"
            self.rebootstrap()
            self._gap = False
        try:
            self.store.catch_up(self._upkeep)
        except LogGap:
            self._gap = True
            self.state = "behind-compaction"
            raise
        seq = self.store.head().seq
        head_seq = self._upkeep.at_head[0]
        self.state = "ready" if seq >= head_seq else "catching-up"
        self.error = None

    def _loop(self) -> None:
        last_report = last_compact = 0.0
        while not self._stop.is_set():
            try:
                self.catch_up()
                now = time.monotonic()
                if now - last_report >= self.report_interval:
                    self._upkeep.report(self.position())
                    last_report = now
                if self.compact_interval and now - last_compact >= self.compact_interval:
                    last_compact = now
                    done = self._upkeep.compact(node_timeout=self.node_timeout)
                    if done.get("deleted"):
                        log.info("compacted the cluster's log below seq %s", done.get("floor"))
                self._watcher.wait_for_change(self.log.layout.head, self.store.applied_revision(),
                                              timeout=self.report_interval)
            except LogGap as exc:
                self.error = str(exc)
                log.warning("node %s: %s; copying a peer's snapshot", self.node, exc)
            except LogDiverged as exc:
                self.state, self.error = "diverged", str(exc)
                log.error("node %s stopped applying: %s", self.node, exc)
                self._stop.wait(5.0)
            except (LogUnavailable, EtcdError) as exc:
                if self.state != "behind-compaction":
                    self.state = "unavailable"
                self.error = str(exc)
                self._stop.wait(0.5)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive one failure; logged
                self.state, self.error = "failing", f"{type(exc).__name__}: {exc}"
                log.exception("node %s: upkeep failed", self.node)
                self._stop.wait(1.0)

    def rebootstrap(self) -> None:
        """Replace this node's ledger with a peer's snapshot, then catch up."""
        self.log.report({**self.position(), "applied_seq": 0, "state": "re-bootstrapping"})  # hold compaction
        sources = [self.source] if self.source else self.peer_urls()
        staging = Path(self.store.path) / f".bootstrap-{os.getpid()}"
        try:
            staged = self._staged_root() if self._staged_root is not None else None
            data = fetch_snapshot(sources, [self._root] + ([staged] if staged is not None else []), staging)
            meta = {"checkpoint_public": self._checkpoint_public} if self._checkpoint_public else {}
            self.store.adopt(str(data), meta)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.rebootstraps += 1
        if self.on_adopted is not None:
            self.on_adopted()
        log.warning("node %s re-bootstrapped from a peer's snapshot at seq %d", self.node, self.store.head().seq)

    @property
    def _root(self) -> Secret:
        return self._root_of()

    def publish_root(self, check: bytes) -> None:
        """After a root-key rotation committed here: the cluster's identity in
        etcd names the new key's check, so nodes that join later must hold it
        (and join from a peer's snapshot, not by replaying the rotations).
        Every node that applies the rotation does it, each a compare-and-swap
        that changes nothing once one has; a failure is logged, and the
        nodes that apply it after this one try again."""
        etcd = self._upkeep.etcd
        try:
            for _ in range(5):
                kv = etcd.get(self.log.layout.meta)
                if kv is None:
                    return
                identity = dict(msgspec.json.decode(kv.value))
                if identity.get("root_check") == check.hex():
                    return
                identity.update(root_check=check.hex(), rotated=True)
                ok, _, _ = etcd.txn([{"key": b64(self.log.layout.meta), "target": "MOD", "result": "EQUAL",
                                      "mod_revision": str(kv.mod_revision)}],
                                    [{"request_put": {"key": b64(self.log.layout.meta),
                                                      "value": b64(msgspec.json.encode(identity))}}], [])
                if ok:
                    return
        except EtcdError as exc:
            log.warning("node %s could not publish the new root key's check: %s", self.node, exc)

    def peer_urls(self) -> list[str]:
        now = time.time()
        peers = [(r.get("applied_seq", 0), r["url"]) for name, r in self.log.reports().items()
                 if name != self.node and r.get("url") and now - float(r.get("time", 0)) < self.node_timeout
                 and r.get("state") == "ready"]
        return [url for _, url in sorted(peers, reverse=True)]

    def snapshot(self, token: str | None, directory: str) -> str:
        """A compacted copy of this node's ledger for a peer that proved it
        holds the root key; raises PermissionError otherwise."""
        if not check_token(self._root, token):
            raise PermissionError("not a node of this cluster")
        return self.store.copy_to(directory)
