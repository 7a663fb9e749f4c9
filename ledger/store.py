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
"""

from __future__ import annotations

import errno
import os
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

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
        return _HEAD.pack(self.seq, self.hash, self.time) + b"".join(
            bytes([level]) + h for level, h in self.frontier)

    @classmethod
    def unpack(cls, data: bytes | None) -> Head:
        if data is None:
            return cls(0, ev.GENESIS_HASH, 0)
        seq, digest, time = _HEAD.unpack_from(data)
        rest = data[_HEAD.size:]
        frontier = tuple((rest[i], bytes(rest[i + 1:i + 33])) for i in range(0, len(rest), 33))
        return cls(seq, digest, time, frontier)


class RawRecord:
    """A record as stored, before decoding (what audit tools verify)."""

    __slots__ = ("seq", "prev_hash", "hash", "body")

    def __init__(self, seq: int, value: bytes) -> None:
        self.seq = seq
        self.prev_hash = value[:32]
        self.hash = value[32:64]
        self.body = value[64:]


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

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any], head: Head, audit: bool = True) -> None:
        super().__init__(txn, dbs)
        self.head = head
        self.appended: list[ev.Record] = []
        self._audit = audit

    def kek(self, key_id: str) -> bytes | None:
        return self._txn.get(key_id.encode(), db=self._dbs["keks"])

    def keks(self) -> list[tuple[str, bytes]]:
        return [(bytes(k).decode(), bytes(v)) for k, v in self._txn.cursor(db=self._dbs["keks"])]

    def put_meta(self, name: str, value: bytes) -> None:
        self._txn.put(name.encode(), value, db=self._dbs["meta"])

    def put_kek(self, key_id: str, wrapped: bytes | None) -> None:
        if wrapped is None:
            self._txn.delete(key_id.encode(), db=self._dbs["keks"])
        else:
            self._txn.put(key_id.encode(), wrapped, db=self._dbs["keks"])

    def append(self, events: Sequence[ev.Event], *, operation: str, principal: str,
               request_id: str, time: int) -> list[ev.Record]:
        """Append events as records and fold them into the projections
        (and, with audit tables on, the Merkle tree and the indexes)."""
        out = []
        head = self.head
        seq, prev, frontier = head.seq, head.hash, head.frontier
        time = max(time, head.time)  # the log's clock never runs backwards
        put, dbs = self._txn.put, self._dbs
        records_db, audit_db = dbs["records"], dbs["audit"]
        prefixes = indexes.prefixes(principal, operation)
        for event in events:
            record = ev.Record(seq, time, request_id, principal, operation, event)
            body = ev.canonical(record)
            digest = ev.chain_hash(prev, body)
            seq_key = _SEQ.pack(seq)
            if not put(seq_key, prev + digest + body, db=records_db, append=True, overwrite=False):
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
            seq, prev = seq + 1, digest
            out.append(record)
        self.head = Head(seq, prev, time, frontier)
        self.appended.extend(out)
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
        self.wake = threading.Event()
        self.done = False


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

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cv:
            while self._resizing:
                self._cv.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cv:
                self._readers -= 1
                self._cv.notify_all()

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
            ticket.wake.wait()
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
                    t.wake.set()
            with self._mu:
                if self._queue:
                    self._queue[0].wake.set()  # not done: it leads the next commit
                else:
                    self._leading = False

    def _commit(self, batch: list[_Work]) -> None:
        try:
            for attempt in range(8):
                self._grow_if_needed()
                try:
                    with self._rw.shared():
                        self._run(batch)
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

    def _run(self, batch: list[_Work]) -> None:
        txn = self.env.begin(write=True)
        # A lone item needs no nested transaction: if it fails, the whole
        # transaction is aborted, which is the same "nothing written".
        nested = len(batch) > 1
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

    def _grow_if_needed(self) -> None:
        info = self.env.info()
        used = (info["last_pgno"] + 1) * self.env.stat()["psize"]
        if used > info["map_size"] * GROW_AT:
            with self._rw.exclusive():
                info = self.env.info()
                if (info["last_pgno"] + 1) * self.env.stat()["psize"] > info["map_size"] * GROW_AT:
                    self.env.set_mapsize(info["map_size"] * 2)


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
