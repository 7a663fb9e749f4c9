"""The only module that touches LMDB.

One LMDB environment is one ledger. Its tables:

- `records`: the append-only log, key = 8-byte big-endian seq (dense from 0),
  value = prev_hash (32) || hash (32) || canonical record bytes, where
  hash = SHA-256(prev_hash || canonical bytes). Written with append=True.
- `meta`: format version, region, account, the root-key check value, and
  the head (next seq, last hash, last time).
- `keys`, `aliases`, `usage`: the live projections, updated by
  `projections.apply` in the same transaction as the records they fold.
- `audit`: the RFC 6962 tree over the records (every complete interior
  subtree hash, key = "M" || level (1) || index (8)) and the audit indexes
  (projections.indexes, one namespace byte each), written in the append
  transaction. One table, so a small append dirties one extra B-tree.
- `checkpoints`: signed tree heads, key = tree size.
- `keks`: the one mutable secret table, key id -> KEK wrapped under the root
  key. Deleting a row crypto-shreds that key.

Writes go through `submit(work)`: group commit. Concurrent callers queue
their work; one of them (the leader) runs the whole queue in one write
transaction, each work item in its own nested transaction so that a failing
item leaves nothing behind, commits once (synced in `durable` mode), and
wakes the others. In `relaxed` mode commits are not synced; a background
thread syncs every `sync_interval` seconds, so an OS crash or power loss can
lose at most that window of acknowledged requests (a process crash loses
nothing: committed pages are already in the OS page cache).

The log side, for a node of a cluster (`keyledger.cluster`): with `log` set
to a `ReplicatedLog`, a commit is also an append to that log after the
revision this node has applied (`Batch`: the records as stored, and the keks
rows the batch sets). If another node appended first, the transaction is
aborted, the winner's batches are applied through the same record path
(verifying the chain) and the work runs again against the new state; if the
log cannot say whether the append happened, the node catches up and looks
for its own batch. `catch_up` applies what other nodes appended.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
import time as time_
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import lmdb
import msgspec

from keyledger import projections
from keyledger import events as ev
from keyledger.projections import indexes, merkle
from keyledger.errors import LedgerError
from keyledger import home

_SEQ = struct.Struct(">Q")
_HEAD = struct.Struct(">Q32sQ")  # next seq, last hash, last record time
_NODE = struct.Struct(">BQ")  # merkle (level, index)
_TABLES = ("records", "meta", "keks", "checkpoints", "audit", *projections.TABLES)


def _node_key(level: int, index: int) -> bytes:
    return indexes.MERKLE_NAMESPACE + _NODE.pack(level, index)
INITIAL_MAP_SIZE = 64 << 20
GROW_AT = 0.70  # grow the map once this fraction is used
DURABILITY_MODES = ("durable", "relaxed")


class Head:
    """Next seq, last hash, last time, and the Merkle tree's right edge."""

    __slots__ = ("seq", "hash", "time", "frontier")

    def __init__(self, seq: int, hash: bytes, time: int, frontier: merkle.Frontier = ()) -> None:
        self.seq, self.hash, self.time, self.frontier = seq, hash, time, frontier

    def pack(self) -> bytes:
        global _last_head
        packed = _HEAD.pack(self.seq, self.hash, self.time) + b"".join(
            [bytes((level,)) + h for level, h in self.frontier])
        _last_head = (packed, self)  # the next commit reads these bytes back: no unpack then
        return packed

    @classmethod
    def unpack(cls, data: bytes | None) -> Head:
        if data is None:
            return cls(0, ev.GENESIS_HASH, 0)
        last = _last_head
        if data == last[0]:  # byte-equal to the head last packed (a Head is never mutated)
            return last[1]
        seq, digest, time = _HEAD.unpack_from(data)
        rest = data[_HEAD.size:]
        frontier = tuple((rest[i], bytes(rest[i + 1:i + 33])) for i in range(0, len(rest), 33))
        return cls(seq, digest, time, frontier)


_last_head: tuple[bytes, Head] = (b"", Head(0, ev.GENESIS_HASH, 0))


class RawRecord:
    """A record as stored, before decoding (what audit tools verify)."""

    __slots__ = ("seq", "prev_hash", "hash", "body")

    def __init__(self, seq: int, value: bytes) -> None:
        self.seq = seq
        self.prev_hash = value[:32]
        self.hash = value[32:64]
        self.body = value[64:]


# -- the log side: what a replicated log beneath the store must do ----------------

BATCH_BYTES = 1 << 20  # one append's records at most (etcd refuses requests over 1.5 MiB)
REVISION = "cluster_rev"  # meta: the replicated log's revision this node has applied


class Batch(msgspec.Struct, frozen=True, array_like=True):
    """One commit as a replicated log carries it: the records exactly as
    stored, so a node that applies it re-checks the chain, and the keks rows
    the commit set (None: deleted), so every node can use every key and a
    deletion shreds on every node at the same point of the log."""

    id: bytes  # random: lets the writer recognise its own batch after an unanswered append
    node: str
    first_seq: int
    prev_hash: bytes
    records: list[bytes]  # prev_hash || hash || canonical record bytes, seq first_seq, first_seq + 1, ...
    keks: list[tuple[str, bytes | None]] = []


class LogUnavailable(LedgerError):
    """The replicated log did not answer; an append may or may not have happened."""


class LogGap(LedgerError):
    """The replicated log no longer holds the batches after this node's
    head (compacted): the node must copy a peer's snapshot (re-bootstrap)."""


class LogDiverged(LedgerError):
    """The replicated log does not continue this node's chain: never applied."""


class Appended:
    """`ReplicatedLog.append` succeeded: the batch is at `revision`."""

    __slots__ = ("revision",)

    def __init__(self, revision: int) -> None:
        self.revision = revision


class Behind:
    """`ReplicatedLog.append` lost: the log had moved past `after`;
    `entries` are the (revision, batch) pairs this node lacks (a first page).
    With no entries, `head_revision` is the revision of the head this node
    already has (the node that made the cluster wrote it without a batch)."""

    __slots__ = ("entries", "head_revision")

    def __init__(self, entries: list[tuple[int, Batch]], head_revision: int | None = None) -> None:
        self.entries = entries
        self.head_revision = head_revision


class ReplicatedLog(Protocol):
    """The tail of the log, ordered outside this process (DESIGN.md section 8):
    append a batch after an expected head, read a range, close."""

    node: str
    timeout: float  # how long a commit waits for an unavailable log before failing

    def append(self, after: int, batch: Batch) -> Appended | Behind:
        """Append `batch` if the log's last revision is `after`. Raises
        LogUnavailable when the outcome is unknown. An empty batch (no
        records, no keks) is not kept: it only checks that `after` is still
        the head (a decision that wrote nothing was made at the head)."""
        ...

    def read(self, start: int) -> list[tuple[int, Batch]]:
        """The batches from the one starting at seq `start` on (a page), with
        their revisions; [] at the head. Raises LogGap if that batch is gone."""
        ...

    def close(self) -> None:
        ...


class _Tables:
    """projections.Tables over a write transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> None:
        self._txn, self._dbs = txn, dbs

    def get(self, table: str, row: bytes) -> Any:
        data = self._txn.get(row, db=self._dbs[table])
        return None if data is None else projections.decode_row(table, data)

    def put(self, table: str, row: bytes, value: Any) -> None:
        if value is None:
            self._txn.delete(row, db=self._dbs[table])
        else:
            self._txn.put(row, projections.encode_row(value), db=self._dbs[table])

    def scan(self, table: str, *, after: bytes | None = None, prefix: bytes = b"",
             limit: int | None = None) -> list[tuple[bytes, Any]]:
        """Up to `limit` rows in key order, strictly after `after`, with `prefix`."""
        return list(_scan(self._txn, self._dbs[table], table, after, prefix, limit))


def _scan(txn: lmdb.Transaction[bytes], db: Any, table: str, after: bytes | None, prefix: bytes,
          limit: int | None) -> Iterator[tuple[bytes, Any]]:
    cur = txn.cursor(db=db)
    found = cur.set_range(max(after or b"", prefix))
    n = 0
    while found and (limit is None or n < limit):
        key = bytes(cur.key())
        if not key.startswith(prefix):
            break
        if after is None or key > after:
            yield key, projections.decode_row(table, cur.value())
            n += 1
        found = cur.next()


class WriteView(_Tables):
    """What a work item sees: the projections as of everything before it in
    the log, the keks table, and `append` to add records."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any], head: Head, audit: bool = True,
                 keep_raw: bool = False) -> None:
        super().__init__(txn, dbs)
        self.head = head
        self.appended: list[ev.Record] = []
        self._audit = audit
        # what a replicated log must carry besides the events (a node of a cluster)
        self.raw: list[bytes] | None = [] if keep_raw else None
        self.kek_changes: list[tuple[str, bytes | None]] = []
        self.meta_changes: list[str] = []

    def kek(self, key_id: str) -> bytes | None:
        return self._txn.get(key_id.encode(), db=self._dbs["keks"])

    def keks(self) -> list[tuple[str, bytes]]:
        return [(bytes(k).decode(), bytes(v)) for k, v in self._txn.cursor(db=self._dbs["keks"])]

    def put_meta(self, name: str, value: bytes) -> None:
        self.meta_changes.append(name)
        self._txn.put(name.encode(), value, db=self._dbs["meta"])

    def put_kek(self, key_id: str, wrapped: bytes | None) -> None:
        self.kek_changes.append((key_id, wrapped))
        if wrapped is None:
            self._txn.delete(key_id.encode(), db=self._dbs["keks"])
        else:
            self._txn.put(key_id.encode(), wrapped, db=self._dbs["keks"])

    def append(self, events: Sequence[ev.Event], *, operation: str, principal: str,
               request_id: str, time: int, region: str | msgspec.UnsetType = msgspec.UNSET) -> list[ev.Record]:
        """Append events as records and fold them into the projections
        (and, with audit tables on, the Merkle tree and the indexes)."""
        out = []
        head = self.head
        seq, prev, frontier = head.seq, head.hash, head.frontier
        time = max(time, head.time)  # the log's clock never runs backwards
        put, dbs = self._txn.put, self._dbs
        records_db, audit_db = dbs["records"], dbs["audit"]
        prefixes = indexes.prefixes(principal, operation)
        raw = self.raw
        for event in events:
            record = ev.Record(seq, time, request_id, principal, operation, event, region=region)
            body = ev.canonical(record)
            digest = ev.chain_hash(prev, body)
            seq_key = _SEQ.pack(seq)
            value = prev + digest + body
            if not put(seq_key, value, db=records_db, append=True, overwrite=False):
                raise LedgerError(f"out-of-order append at seq {seq}: the log is corrupt")
            projections.apply(self, record)
            if self._audit:
                frontier, made = merkle.push(frontier, seq, merkle.leaf_hash(body))
                for level, index, h in made:
                    put(_node_key(level, index), h, db=audit_db)
                for prefix in prefixes:
                    put(prefix + seq_key, b"", db=audit_db)
                for key in indexes.event_rows(event, seq_key):
                    put(key, b"", db=audit_db)
            if raw is not None:
                raw.append(value)
            seq, prev = seq + 1, digest
            out.append(record)
        self.head = Head(seq, prev, time, frontier)
        self.appended.extend(out)
        return out

    def apply_stored(self, values: Sequence[bytes]) -> list[ev.Record]:
        """Append records another node wrote (as stored: prev_hash || hash ||
        canonical bytes) through the same path as `append`, after checking
        that each continues this log's chain at its seq."""
        out = []
        for value in values:
            head = self.head
            stored = RawRecord(head.seq, value)
            if stored.prev_hash != head.hash or ev.chain_hash(head.hash, stored.body) != stored.hash:
                raise LogDiverged(f"record {head.seq} from the replicated log does not continue this "
                                  "node's hash chain")
            record = ev.decode(stored.body)
            if record.seq != head.seq or ev.canonical(record) != stored.body:
                raise LogDiverged(f"record {head.seq} from the replicated log is not canonical at its seq")
            self.head = Head(head.seq, head.hash, record.time, head.frontier)
            # `append` rebuilds the same bytes: the record's own time, request and principal
            made = self.append([record.event], operation=record.operation, principal=record.principal,
                               request_id=record.request_id, time=record.time, region=record.region)
            if self.head.hash != stored.hash:  # e.g. a record format this version does not write
                raise LogDiverged(f"record {head.seq} from the replicated log does not re-encode to its "
                                  "stored bytes (a node of another keyledger version?)")
            out.extend(made)
        return out


class Snapshot:
    """A read transaction's view: the log and the projections at one point."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> None:
        self._txn, self._dbs = txn, dbs

    def head(self) -> Head:
        return Head.unpack(self._txn.get(b"head", db=self._dbs["meta"]))

    def raw_records(self, start: int = 0, stop: int | None = None) -> Iterator[RawRecord]:
        """Stored records with seq in [start, stop), in key order."""
        cur = self._txn.cursor(db=self._dbs["records"])
        if not cur.set_range(_SEQ.pack(start)):
            return
        for key, value in cur:
            seq = _SEQ.unpack(key)[0]
            if stop is not None and seq >= stop:
                break
            yield RawRecord(seq, value)

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[ev.Record]:
        for raw in self.raw_records(start, stop):
            yield ev.decode(raw.body)

    def raw_record(self, seq: int) -> RawRecord | None:
        value = self._txn.get(_SEQ.pack(seq), db=self._dbs["records"])
        return None if value is None else RawRecord(seq, value)

    def node(self, level: int, index: int) -> bytes:
        if level == 0:  # leaves are not stored: they are their record's hash
            raw = self.raw_record(index)
            if raw is None:
                raise KeyError(f"no record {index}")
            return merkle.leaf_hash(raw.body)
        h = self._txn.get(_node_key(level, index), db=self._dbs["audit"])
        if h is None:
            raise KeyError(f"no merkle node at level {level}, index {index}")
        return h

    def index_seqs(self, index: str, term: bytes, *, lo: int = 0, hi: int | None = None,
                   reverse: bool = False) -> Iterator[int]:
        """Seqs in [lo, hi) whose records carry `term` in `index`, in order."""
        cur = self._txn.cursor(db=self._dbs["audit"])
        prefix = indexes.term_prefix(index, term)
        if reverse:
            top = prefix + _SEQ.pack(hi) if hi is not None else prefix + b"\xff" * 9
            found = cur.set_range(top)
            found = cur.prev() if found else cur.last()
            while found:
                key = cur.key()
                if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                    if key < prefix:
                        return
                    found = cur.prev()
                    continue
                seq = indexes.seq_of(key)
                if seq < lo:
                    return
                if hi is None or seq < hi:
                    yield seq
                found = cur.prev()
        else:
            found = cur.set_range(prefix + _SEQ.pack(lo))
            while found:
                key = cur.key()
                if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                    return
                seq = indexes.seq_of(key)
                if hi is not None and seq >= hi:
                    return
                yield seq
                found = cur.next()

    def kek(self, key_id: str) -> bytes | None:
        return self._txn.get(key_id.encode(), db=self._dbs["keks"])

    def get(self, table: str, row: bytes) -> Any:
        data = self._txn.get(row, db=self._dbs[table])
        return None if data is None else projections.decode_row(table, data)

    def checkpoints(self) -> list[bytes]:
        """Stored signed checkpoints, oldest (smallest tree) first."""
        return [bytes(v) for _, v in self._txn.cursor(db=self._dbs["checkpoints"])]

    def meta(self) -> dict[str, bytes]:
        return {bytes(k).decode(): bytes(v) for k, v in self._txn.cursor(db=self._dbs["meta"])}

    def raw_rows(self, table: str) -> Iterator[tuple[bytes, bytes]]:
        """Every row of a table, undecoded: audit reads rows that may not decode."""
        for k, v in self._txn.cursor(db=self._dbs[table]):
            yield bytes(k), bytes(v)

    def tables(self) -> dict[str, dict[bytes, Any]]:
        """Every live projection row, decoded."""
        return {table: {bytes(k): projections.decode_row(table, v)
                        for k, v in self._txn.cursor(db=self._dbs[table])}
                for table in projections.TABLES}


class _Ticket:
    """One caller's place in the commit queue."""

    __slots__ = ("works", "wake", "done")

    def __init__(self, works: list[_Work]) -> None:
        self.works = works
        self.wake = _waker()  # held: released once, by whoever wakes this caller
        self.done = False


_wakers = threading.local()


def _waker() -> threading.Lock:
    """This thread's wake-up lock, held: a waiting caller blocks acquiring it,
    the leader wakes it with one release (a C call, instead of an Event's
    Condition per ticket), and the wait leaves it held for the thread's next
    ticket."""
    lock: threading.Lock | None = getattr(_wakers, "lock", None)
    if lock is None:
        lock = _wakers.lock = threading.Lock()
        lock.acquire()
    return lock


def _wait(lock: threading.Lock) -> None:
    try:
        lock.acquire()
    except BaseException:  # interrupted: a late release must not wake this thread's next wait
        _wakers.lock = None
        raise


class _Work:
    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn: Callable[[WriteView], Any]) -> None:
        self.fn = fn
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class _RWLock:
    """Many readers or one map resizer (LMDB's set_mapsize needs no open txn)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._readers = 0
        self._resizing = False

    def acquire_shared(self) -> None:
        cv = self._cv
        cv.acquire()
        try:
            while self._resizing:
                cv.wait()
            self._readers += 1
        finally:
            cv.release()

    def release_shared(self) -> None:
        cv = self._cv
        cv.acquire()
        try:
            self._readers -= 1
            if not self._readers:  # the only change a waiting resizer can be waiting for
                cv.notify_all()
        finally:
            cv.release()

    @contextmanager
    def shared(self) -> Iterator[None]:
        self.acquire_shared()
        try:
            yield
        finally:
            self.release_shared()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cv:
            while self._resizing or self._readers:
                self._cv.wait()
            self._resizing = True
        try:
            yield
        finally:
            with self._cv:
                self._resizing = False
                self._cv.notify_all()


class Store:
    """One ledger's LMDB environment.

    `create`: make the home (0700) and data.mdb if they do not exist (the
    library's `keyledger.open` decides; this layer does as told).
    `readonly`: open an existing ledger without writing anything; where
    LMDB's lock file cannot be created or opened (a read-only mount, another
    user's ledger, a copy on write-protected media) it reads without one.
    Either way, data.mdb is checked against its own header first, so a cut
    file is refused with a message instead of crashing the process later.
    """

    def __init__(self, path: str, *, durability: str = "durable", sync_interval: float = 0.2,
                 readonly: bool = False, create: bool = True, map_size: int = INITIAL_MAP_SIZE,
                 audit_tables: bool = True) -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}")
        self.path = path
        self.durability = durability
        self.readonly = readonly
        # Only the benchmark turns this off, to price the Merkle tree and the
        # indexes; a ledger written without them cannot be audited or proved.
        self.audit_tables = audit_tables
        self.locked = True  # False: a read-only open without LMDB's lock file
        data = os.path.join(path, home.DATA_FILE)
        fresh = not os.path.exists(data)
        if fresh and (readonly or not create):
            home.check_home(Path(path), create=False)  # damaged (keys, no log) or not there
            raise home.LedgerNotFoundError(f"no ledger at {path} (no {home.DATA_FILE})")
        if fresh:
            home.make_private_dir(path)
        else:
            check_data_file(data)
        made = [name for name in (home.DATA_FILE, home.LOCK_FILE) if not os.path.exists(os.path.join(path, name))]
        self.env = self._open_env(map_size, readonly)
        for name in made:  # LMDB creates them with mode & ~umask: make it exactly 0600
            if os.path.exists(os.path.join(path, name)):
                home.make_private(os.path.join(path, name))
        try:
            self._check_tables(fresh=fresh, create=create)
            self._dbs = self._open_existing() if readonly else \
                {name: self.env.open_db(name.encode(), create=True) for name in _TABLES}
        except BaseException:
            self.env.close()
            raise
        self._rw = _RWLock()
        # a node of a cluster: the replicated log, and one writer at a time
        # between the commit leader and the node's catch-up thread (taken
        # after `_rw.shared()`, always in that order)
        self.log: ReplicatedLog | None = None
        self.on_applied: Callable[[list[ev.Record]], None] | None = None
        self._write_lock = threading.RLock()
        self._mu = threading.Lock()
        self._queue: list[_Ticket] = []
        self._leading = False
        self._closed = False
        self._syncer: threading.Thread | None = None
        if durability == "relaxed" and not readonly:
            self._sync_stop = threading.Event()
            self._syncer = threading.Thread(target=self._sync_loop, args=(sync_interval,),
                                            name="keyledger-sync", daemon=True)
            self._syncer.start()

    def _open_env(self, map_size: int, readonly: bool) -> lmdb.Environment:
        def attempt(lock: bool) -> lmdb.Environment:
            return lmdb.open(self.path, map_size=map_size, max_dbs=32, readonly=readonly,
                             sync=self.durability == "durable", metasync=True, max_readers=256,
                             lock=lock, mode=home.FILE_MODE)
        try:
            return attempt(True)
        except lmdb.Error as exc:
            if readonly and _denied(exc):
                # LMDB's lock file is the readers' table; an auditor who may
                # not write it reads without one. Safe on a copy or a mount
                # nobody writes; on a live ledger a lockless reader can see a
                # page the writer is reusing (its checks then fail, loudly).
                try:
                    env = attempt(False)
                except lmdb.Error as again:
                    raise _storage_error(again, self.path, readonly) from None
                self.locked = False
                return env
            raise _storage_error(exc, self.path, readonly) from None

    def _check_tables(self, *, fresh: bool, create: bool) -> None:
        """An existing data.mdb must be a keyledger ledger: its main table
        names only keyledger's tables, among them the log and the meta.
        (An LMDB file with no tables at all is one whose creation was cut
        short: `create` may finish it.)"""
        with self.env.begin() as txn:
            names = {bytes(k).decode("utf-8", "replace") for k, _ in txn.cursor()}
        if not names and (fresh or create) and not self.readonly:
            return
        if not {"records", "meta"} <= names:
            raise home.LedgerDamagedError(
                f"not a keyledger ledger: {os.path.join(self.path, home.DATA_FILE)} is an LMDB file "
                "without keyledger's tables")

    def _open_existing(self) -> dict[str, Any]:
        # No explicit txn: py-lmdb ends a read txn by resetting it (for reuse),
        # which closes any handle opened inside it; open_db's own txn keeps them.
        dbs = {}
        for name in _TABLES:
            try:
                dbs[name] = self.env.open_db(name.encode(), create=False)
            except lmdb.NotFoundError:
                raise home.LedgerDamagedError(
                    f"the ledger at {self.path} has no {name} table (written by an older keyledger? "
                    "open it once with write access to add it)") from None
        return dbs

    # -- lifecycle ------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.log is not None:
            self.log.close()
        if self._syncer is not None:
            self._sync_stop.set()
            self._syncer.join()
        if not self.readonly:
            self.env.sync(True)
        self.env.close()

    def _sync_loop(self, interval: float) -> None:
        while not self._sync_stop.wait(interval):
            with self._rw.shared():
                self.env.sync(True)

    # -- meta -------------------------------------------------------------------

    def meta(self) -> dict[str, bytes]:
        with self._read() as txn:
            return {bytes(k).decode(): bytes(v) for k, v in txn.cursor(db=self._dbs["meta"])}

    def init_meta(self, values: dict[str, bytes]) -> dict[str, bytes]:
        """Set meta values that are not set yet (first writer wins); return all."""
        with self._rw.shared(), self.env.begin(write=True) as txn:
            for k, v in values.items():
                txn.put(k.encode(), v, db=self._dbs["meta"], overwrite=False)
        return self.meta()

    # -- reads ------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[lmdb.Transaction[bytes]]:
        with self._rw.shared():
            try:
                txn = self.env.begin(buffers=False)
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)  # another process grew the map
                txn = self.env.begin(buffers=False)
            try:
                yield txn
            finally:
                txn.abort()

    def head(self) -> Head:
        with self._read() as txn:
            return Head.unpack(txn.get(b"head", db=self._dbs["meta"]))

    def get(self, table: str, row: bytes) -> Any:
        with self._read() as txn:
            data = txn.get(row, db=self._dbs[table])
        return None if data is None else projections.decode_row(table, data)

    def scan(self, table: str, *, after: bytes | None = None, prefix: bytes = b"",
             limit: int | None = None) -> list[tuple[bytes, Any]]:
        """Up to `limit` rows in key order, strictly after `after`, with `prefix`."""
        with self._read() as txn:
            return list(_scan(txn, self._dbs[table], table, after, prefix, limit))

    def kek(self, key_id: str) -> bytes | None:
        with self._read() as txn:
            return txn.get(key_id.encode(), db=self._dbs["keks"])

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """One consistent read view of the log and the projections."""
        with self._read() as txn:
            yield Snapshot(txn, self._dbs)

    def raw_records(self, start: int = 0, stop: int | None = None) -> Iterator[RawRecord]:
        with self.snapshot() as snap:
            yield from snap.raw_records(start, stop)

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[ev.Record]:
        with self.snapshot() as snap:
            yield from snap.records(start, stop)

    def put_checkpoint(self, tree_size: int, note: bytes) -> None:
        with self._rw.shared(), self.env.begin(write=True) as txn:
            txn.put(_SEQ.pack(tree_size), note, db=self._dbs["checkpoints"])

    def file_path(self) -> str:
        return os.path.join(self.path, "data.mdb")

    # -- the writer path (group commit) -----------------------------------------

    def submit_many(self, fns: list[Callable[[WriteView], Any]]) -> list[tuple[Any, BaseException | None]]:
        """Run several work items in the next commit; return (result, error)
        for each, in order, once the commit is durable (per durability mode)."""
        outcomes = []
        works = [_Work(fn) for fn in fns]
        self._enqueue(works)
        for work in works:
            outcomes.append((work.result, work.error))
        return outcomes

    def submit(self, fn: Callable[[WriteView], Any]) -> Any:
        """Run `fn` in the next write transaction and return its result once
        that transaction is committed (and synced, in durable mode). `fn`
        may run again if the map had to grow mid-batch, so it must have no
        side effects outside the view."""
        if self.readonly:
            raise LedgerError("this ledger is open read-only")
        work = _Work(fn)
        self._enqueue([work])
        if work.error is not None:
            raise work.error
        return work.result

    def _enqueue(self, works: list[_Work]) -> None:
        """Leader/follower group commit. Each caller waits on its own ticket,
        so a commit wakes exactly the callers it finished (no thundering
        herd); if more are queued, the leader hands leadership to the first
        of them by waking it with its work not done."""
        if self.readonly:
            raise LedgerError("this ledger is open read-only")
        ticket = _Ticket(works)
        with self._mu:
            self._queue.append(ticket)
            lead = not self._leading
            self._leading = True
        if not lead:
            _wait(ticket.wake)
            if ticket.done:
                return
        with self._mu:
            batch, self._queue = self._queue, []
        try:
            self._commit([w for t in batch for w in t.works])
        finally:
            for t in batch:
                t.done = True
                if t is not ticket:
                    t.wake.release()
            with self._mu:
                if self._queue:
                    self._queue[0].wake.release()  # not done: it leads the next commit
                else:
                    self._leading = False

    def _commit(self, batch: list[_Work]) -> None:
        try:
            for attempt in range(8):
                self._grow_if_needed()
                try:
                    self._rw.acquire_shared()
                    try:
                        if self.log is None:
                            self._run(batch)
                        else:
                            self._run_replicated(batch)
                    finally:
                        self._rw.release_shared()
                    return
                except lmdb.MapFullError:
                    with self._rw.exclusive():
                        self.env.set_mapsize(self.env.info()["map_size"] * 2)
            raise LedgerError("could not grow the LMDB map")
        except BaseException as exc:  # the whole batch failed: tell every caller
            for work in batch:
                if not work.done:
                    work.error, work.done = exc, True
        finally:
            for work in batch:
                work.done = True

    def _run(self, batch: list[_Work], nested: bool = False) -> None:
        txn = self.env.begin(write=True)
        # Items run straight in the one transaction (a nested transaction per
        # item costs ~8 us of the writer's serial time). If one fails, that
        # transaction is aborted, which for a lone item is its "nothing
        # written"; a batch is then run again with a nested transaction per
        # item, so the failing item fails alone (a work item may run again:
        # see `submit`).
        try:
            head = Head.unpack(txn.get(b"head", db=self._dbs["meta"]))
            outcomes: list[tuple[_Work, Any, Exception | None]] = []
            for work in batch:
                child = self.env.begin(write=True, parent=txn) if nested else txn
                view = WriteView(child, self._dbs, head, self.audit_tables)
                try:
                    result = work.fn(view)
                except lmdb.MapFullError:
                    if nested:
                        child.abort()
                    raise
                except Exception as exc:  # this item fails alone; the batch goes on
                    if not nested:
                        txn.abort()
                        if len(batch) > 1:
                            Store._run(self, batch, nested=True)
                            return
                        work.result, work.error = None, exc
                        return
                    child.abort()
                    outcomes.append((work, None, exc))
                    continue
                if nested:
                    child.commit()
                head = view.head
                outcomes.append((work, result, None))
            txn.put(b"head", head.pack(), db=self._dbs["meta"])
            txn.commit()
        except BaseException:
            txn.abort()
            raise
        for work, result, error in outcomes:
            work.result, work.error = result, error

    # -- a node of a cluster: the log side (see the module docstring) ----------

    def applied_revision(self) -> int:
        """The replicated log's revision this node has applied (0: none)."""
        with self._read() as txn:
            return _revision(txn, self._dbs)

    def set_meta(self, values: dict[str, bytes]) -> None:
        """Set meta values (overwriting): a cluster node's own settings."""
        with self._rw.shared(), self._write_lock, self.env.begin(write=True) as txn:
            for k, v in values.items():
                txn.put(k.encode(), v, db=self._dbs["meta"])

    def _set_revision(self, revision: int) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(REVISION.encode(), _SEQ.pack(revision), db=self._dbs["meta"])

    def _run_replicated(self, batch: list[_Work]) -> None:
        log = self.log
        assert log is not None
        with self._write_lock:
            remaining = batch
            while remaining:
                remaining = self._replicate_round(log, remaining)

    def _replicate_round(self, log: ReplicatedLog, items: list[_Work]) -> list[_Work]:
        """Commit a prefix of `items` through the log; the items left over
        (past the batch size limit) are returned."""
        pending: dict[bytes, tuple[list[tuple[_Work, Any, Exception | None]], int]] = {}
        deadline = time_.monotonic() + log.timeout
        while True:
            txn = self.env.begin(write=True)
            try:
                after = _revision(txn, self._dbs)
                outcomes, taken, start, head, values, keks = self._run_items(txn, items)
                if not values and not keks and all(error is not None for _, _, error in outcomes):
                    txn.abort()  # only failures: nothing was decided, nothing to replicate
                    _finish(outcomes)
                    return items[taken:]
                # (no records but a decision, e.g. a sweep with nothing due: an empty
                # batch, which the log only checks against the head and does not keep)
                entry = Batch(os.urandom(16), log.node, start.seq, start.hash, values, keks)
                pending[entry.id] = (outcomes, taken)
                try:
                    answer = log.append(after, entry)
                except LogUnavailable:
                    txn.abort()
                    found = self._settle(log, pending, deadline)
                else:
                    if isinstance(answer, Appended):
                        if values or keks:
                            txn.put(b"head", head.pack(), db=self._dbs["meta"])
                            txn.put(REVISION.encode(), _SEQ.pack(answer.revision), db=self._dbs["meta"])
                            txn.commit()
                        else:
                            txn.abort()
                        _finish(outcomes)
                        return items[taken:]
                    txn.abort()  # lost the race: apply the winner's batches, decide again
                    if answer.entries or answer.head_revision is None:
                        found = self._apply_entries(answer.entries, pending)
                    else:
                        found = None
                        self._set_revision(answer.head_revision)
            except BaseException:
                txn.abort()
                raise
            if found is not None:  # an earlier, unanswered append of ours did happen
                _finish(found[0])
                return items[found[1]:]
            if time_.monotonic() > deadline:
                raise LogUnavailable("the cluster's log kept moving or did not answer; nothing was committed "
                                     "by this node for these requests")

    def _run_items(self, txn: lmdb.Transaction[bytes], items: list[_Work]) -> tuple[
            list[tuple[_Work, Any, Exception | None]], int, Head, Head, list[bytes], list[tuple[str, bytes | None]]]:
        """Run work items in nested transactions until the batch is full."""
        start = head = Head.unpack(txn.get(b"head", db=self._dbs["meta"]))
        outcomes: list[tuple[_Work, Any, Exception | None]] = []
        values: list[bytes] = []
        keks: list[tuple[str, bytes | None]] = []
        size = taken = 0
        for work in items:
            child = self.env.begin(write=True, parent=txn)
            view = WriteView(child, self._dbs, head, self.audit_tables, keep_raw=True)
            try:
                result = work.fn(view)
            except lmdb.MapFullError:
                child.abort()
                raise
            except Exception as exc:  # this item fails alone; the batch goes on
                child.abort()
                outcomes.append((work, None, exc))
                taken += 1
                continue
            if view.meta_changes:
                child.abort()
                outcomes.append((work, None, LedgerError(
                    "a node of a cluster cannot change the ledger's own settings (rotate-root-key): not "
                    "replicated yet")))
                taken += 1
                continue
            assert view.raw is not None
            grew = sum(map(len, view.raw)) + sum(len(k) + len(w or b"") + 8 for k, w in view.kek_changes)
            if size + grew > BATCH_BYTES:
                child.abort()
                if values or keks:
                    break  # the rest goes in the next batch
                outcomes.append((work, None, LedgerError(
                    f"one request's records ({grew} bytes) exceed the replicated log's batch limit")))
                taken += 1
                continue
            child.commit()
            head = view.head
            values += view.raw
            keks += view.kek_changes
            size += grew
            outcomes.append((work, result, None))
            taken += 1
        if values or keks:
            txn.put(b"head", head.pack(), db=self._dbs["meta"])
        return outcomes, taken, start, head, values, keks

    def _settle(self, log: ReplicatedLog, pending: dict[bytes, Any], deadline: float) -> Any:
        """After an unanswered append: catch up (retrying while the log is
        unavailable) and return the outcomes of ours if it was appended."""
        delay = 0.05
        found = None  # kept across retries: ours may be applied before a later read fails
        while True:
            try:
                while True:
                    entries = log.read(self._head_seq())
                    if not entries:
                        return found
                    found = self._apply_entries(entries, pending) or found
            except LogUnavailable:
                if time_.monotonic() + delay > deadline:
                    raise
                time_.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _head_seq(self) -> int:
        with self.env.begin(buffers=False) as txn:
            return Head.unpack(txn.get(b"head", db=self._dbs["meta"])).seq

    def _apply_entries(self, entries: list[tuple[int, Batch]],
                       pending: dict[bytes, Any] | None = None) -> Any:
        """Apply other nodes' batches in one write transaction, verifying the
        chain; return the pending outcomes of ours if one of them is here."""
        found = None
        applied: list[ev.Record] = []
        txn = self.env.begin(write=True)
        try:
            head = Head.unpack(txn.get(b"head", db=self._dbs["meta"]))
            revision = _revision(txn, self._dbs)
            for at, batch in entries:
                if at <= revision:
                    continue  # already applied
                if batch.first_seq > head.seq:
                    raise LogGap(f"the cluster's log starts at seq {batch.first_seq}, past this node's "
                                 f"{head.seq}: it was compacted")
                if batch.first_seq != head.seq or batch.prev_hash != head.hash:
                    raise LogDiverged(f"the batch at seq {batch.first_seq} (revision {at}) does not continue "
                                      f"this node's log at seq {head.seq}")
                view = WriteView(txn, self._dbs, head, self.audit_tables)
                applied += view.apply_stored(batch.records)
                for key_id, wrapped in batch.keks:
                    view.put_kek(key_id, wrapped)
                head, revision = view.head, at
                if pending is not None and batch.id in pending:
                    found = pending[batch.id]
            txn.put(b"head", head.pack(), db=self._dbs["meta"])
            txn.put(REVISION.encode(), _SEQ.pack(revision), db=self._dbs["meta"])
            txn.commit()
        except BaseException:
            txn.abort()
            raise
        if applied and self.on_applied is not None:
            self.on_applied(applied)
        return found

    def catch_up(self, log: ReplicatedLog | None = None) -> int:
        """Apply every batch the replicated log (`log`, default the store's)
        holds past this node; the number of records applied. Raises LogGap
        (re-bootstrap), LogUnavailable or LogDiverged."""
        log = log or self.log
        if log is None:
            return 0
        count = 0
        while True:
            self._grow_if_needed()
            try:
                with self._rw.shared(), self._write_lock:
                    start = self._head_seq()
                    entries = log.read(start)
                    if not entries:
                        return count
                    self._apply_entries(entries)
                    count += self._head_seq() - start
            except lmdb.MapFullError:
                with self._rw.exclusive():
                    self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def copy_to(self, directory: str) -> str:
        """A consistent, compacted copy of the ledger's data.mdb into
        `directory` (made if needed): what a new node starts from."""
        os.makedirs(directory, mode=home.HOME_MODE, exist_ok=True)
        with self._rw.shared():
            self.env.copy(directory, compact=True)
        target = os.path.join(directory, home.DATA_FILE)
        home.make_private(target)
        return target

    def adopt(self, data_file: str, meta: dict[str, bytes]) -> None:
        """Replace this ledger's data with a peer's copy (a node that fell
        behind the compacted log starts over from a snapshot): the file is
        checked and moved into place, the peer's checkpoints (signed by its
        key, not this node's) are dropped and `meta` (this node's own
        settings) is set. Nothing else may have the ledger open meanwhile."""
        check_data_file(data_file)
        with self._rw.exclusive(), self._write_lock:
            map_size = self.env.info()["map_size"]
            self.env.close()
            target = os.path.join(self.path, home.DATA_FILE)
            os.replace(data_file, target)
            home.make_private(target)
            self.env = self._open_env(map_size, False)
            self._dbs = {name: self.env.open_db(name.encode(), create=True) for name in _TABLES}
            with self.env.begin(write=True) as txn:
                txn.drop(self._dbs["checkpoints"], delete=False)
                for k, v in meta.items():
                    txn.put(k.encode(), v, db=self._dbs["meta"])
            self.env.sync(True)

    def _grow_if_needed(self) -> None:
        # Every 8th commit (every one on a node of a cluster): a batch that
        # fills the map in between still fails with MapFullError and is run
        # again after doubling, so this only keeps that rare.
        self._commits = commits = getattr(self, "_commits", 0) + 1
        if commits % 8 and self.log is None:
            return
        psize = getattr(self, "_psize", None)
        if psize is None:
            psize = self._psize = self.env.stat()["psize"]
        info = self.env.info()
        used = (info["last_pgno"] + 1) * psize
        if used > info["map_size"] * GROW_AT:
            with self._rw.exclusive():
                info = self.env.info()
                if (info["last_pgno"] + 1) * self.env.stat()["psize"] > info["map_size"] * GROW_AT:
                    self.env.set_mapsize(info["map_size"] * 2)


def _revision(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> int:
    value = txn.get(REVISION.encode(), db=dbs["meta"])
    return 0 if value is None else int(_SEQ.unpack(value)[0])


def _finish(outcomes: list[tuple[_Work, Any, Exception | None]]) -> None:
    for work, result, error in outcomes:
        work.result, work.error = result, error


# -- the file before LMDB maps it ------------------------------------------------
#
# LMDB maps data.mdb and trusts its meta pages: a page past the end of a cut
# file is a SIGBUS on first touch, which kills the process (exit 135) before
# any Python code can react. So the two meta pages are read first, with plain
# file IO, and the file is refused if it is shorter than the newest meta says.
# Layout (lmdb.h / mdb.c, LMDB 0.9, 64-bit): page 0 and page 1 each start with
# a 16-byte page header, then MDB_meta:
#   u32 mm_magic (0xBEEFC0DE), u32 mm_version, ptr mm_address, size_t mm_mapsize,
#   MDB_db mm_dbs[2] (48 bytes each: u32 md_pad (mm_psize, in the first),
#   u16 flags, u16 depth, 5 x u64), u64 mm_last_pg, u64 mm_txnid.
# The file is in the machine's byte order (LMDB files are not portable).

_MDB_MAGIC = 0xBEEFC0DE
_PAGE_HEADER = 16
_META = struct.Struct("=IIQQI")  # magic, version, address, mapsize, psize (md_pad of mm_dbs[0])
_META_TAIL = struct.Struct("=QQ")  # last page number, txn id
_META_TAIL_AT = 120  # offset of mm_last_pg inside MDB_meta
_META_BYTES = _META_TAIL_AT + _META_TAIL.size
_MIN_PAGE, _MAX_PAGE = 512, 1 << 16


class _Meta:
    __slots__ = ("psize", "mapsize", "last_pg", "txnid")

    def __init__(self, psize: int, mapsize: int, last_pg: int, txnid: int) -> None:
        self.psize, self.mapsize, self.last_pg, self.txnid = psize, mapsize, last_pg, txnid


def _read_meta(f: Any, offset: int) -> _Meta | None:
    f.seek(offset + _PAGE_HEADER)
    raw = f.read(_META_BYTES)
    if len(raw) < _META_BYTES:
        return None
    magic, _version, _address, mapsize, psize = _META.unpack_from(raw)
    last_pg, txnid = _META_TAIL.unpack_from(raw, _META_TAIL_AT)
    if magic != _MDB_MAGIC:
        return None
    return _Meta(psize, mapsize, last_pg, txnid)


def check_data_file(path: str) -> int:
    """Refuse a data.mdb that LMDB would crash on: not an LMDB file, or
    shorter than its newest meta page says (a cut copy, a full disk, a
    truncation). Returns the bytes the ledger needs."""
    if struct.calcsize("P") != 8:  # the layout above is the 64-bit one
        return 0
    name = os.path.basename(path)
    min_size = 2 * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 8192
    with open(path, "rb") as f:
        first = _read_meta(f, 0)
        if first is None:
            size = os.fstat(f.fileno()).st_size
            if size < _PAGE_HEADER + _META_BYTES:
                raise home.LedgerDamagedError(f"{name} is truncated: {size} bytes, the ledger needs at "
                                              f"least {min_size}")
            raise home.LedgerDamagedError(f"not a keyledger ledger: {path} is not an LMDB file")
        if not (_MIN_PAGE <= first.psize <= _MAX_PAGE and first.psize & (first.psize - 1) == 0):
            raise home.LedgerDamagedError(f"{name} is damaged: its header gives a page size of {first.psize}")
        second = _read_meta(f, first.psize)
        newest = first if second is None or second.txnid < first.txnid else second
        need = max(2 * first.psize, (newest.last_pg + 1) * first.psize)
        # the size is read after the meta: a writer extends the file before
        # it writes the meta that counts the new pages, never after
        size = os.fstat(f.fileno()).st_size
    if size < need:
        raise home.LedgerDamagedError(f"{name} is truncated: {size} bytes, the ledger needs at least {need}")
    return need


_DENIED = tuple(os.strerror(code) for code in (errno.EACCES, errno.EPERM, errno.EROFS))


def _denied(exc: lmdb.Error) -> bool:
    """py-lmdb gives no errno: EACCES is its ReadonlyError, the others
    show only in the message (LMDB formats it with strerror)."""
    return isinstance(exc, lmdb.ReadonlyError) or any(text in str(exc) for text in _DENIED)


def _storage_error(exc: lmdb.Error, path: str, readonly: bool) -> LedgerError:
    """An LMDB failure to open, in the user's words (never the class name)."""
    if isinstance(exc, lmdb.InvalidError):
        return home.LedgerDamagedError(f"not a keyledger ledger: {os.path.join(path, home.DATA_FILE)} "
                                       "is not an LMDB file")
    if isinstance(exc, lmdb.VersionMismatchError):
        return home.LedgerDamagedError(f"{os.path.join(path, home.DATA_FILE)} was written by an "
                                       "incompatible LMDB version")
    if isinstance(exc, (lmdb.CorruptedError, lmdb.PanicError)):
        return home.LedgerDamagedError(f"{os.path.join(path, home.DATA_FILE)} is damaged (LMDB cannot read it)")
    if _denied(exc):
        for name in (home.LOCK_FILE, home.DATA_FILE):
            target = os.path.join(path, name)
            if name == home.DATA_FILE and not readonly and os.path.exists(target):
                if not _writable(target):
                    return LedgerError(f"cannot write {name} in {path} (read-only here: audit verify, "
                                       "audit log, forensics and replay --check can still read it)")
            elif name == home.LOCK_FILE and not _writable(target if os.path.exists(target) else path):
                return LedgerError(f"cannot write {name} in {path}" + (
                    "" if readonly else " (read-only here: audit verify, audit log, forensics and "
                                        "replay --check can still read it)"))
        return LedgerError(f"cannot open the ledger at {path}: permission denied")
    text = str(exc)
    if text.startswith(path + ":"):
        text = text[len(path) + 1:].strip()
    return LedgerError(f"cannot open the ledger at {path}: {text}")


def _writable(path: str) -> bool:
    # os.access answers for the real uid and knows read-only mounts (EROFS)
    return os.access(path, os.W_OK)
