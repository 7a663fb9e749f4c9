"""`Store`: one ledger's LMDB environment, its reads and its group-committed
writes (see the package docstring)."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb
from keyledger import events as ev
from keyledger import home, projections
from keyledger.errors import LedgerError
from keyledger.store.commit import _RWLock, _Ticket, _wait, _Work
from keyledger.store.files import _denied, _storage_error, check_data_file
from keyledger.store.log import ReplicatedLog
from keyledger.store.replicated import ReplicationMixin
from keyledger.store.tables import (
    _SEQ,
    _TABLES,
    DURABILITY_MODES,
    GROW_AT,
    INITIAL_MAP_SIZE,
    Head,
    RawRecord,
    Snapshot,
    WriteView,
    _scan,
)


def _own(exc: BaseException) -> BaseException:
    """A caller's own copy of a batch's failure, with the original
    traceback and chain: raising one shared exception from every caller
    would lengthen its traceback with each raise (a server logged a stack as
    long as the batch), and from several threads at once, mix them."""
    try:
        twin = copy.copy(exc)
    except Exception:  # an exception that does not copy: the shared one
        return exc
    twin.__cause__, twin.__context__ = exc.__cause__, exc.__context__
    twin.__suppress_context__ = exc.__suppress_context__
    return twin.with_traceback(exc.__traceback__)


class Store(ReplicationMixin):
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
        # how many reads each thread holds open (by the thread that began them: a records()
        # generator may be finished, or collected, by another thread)
        self._reads: dict[int, int] = {}
        self._reads_mu = threading.Lock()
        # a node of a cluster: the replicated log, and one writer at a time
        # between the commit leader and the node's catch-up thread (taken
        # after `_rw.shared()`, always in that order)
        self.log: ReplicatedLog | None = None
        self.on_applied: Callable[[list[ev.Record]], None] | None = None
        # a root-key rotation reaching this node (the service's hooks; the
        # cluster's, to publish the new key's check): before applying it,
        # after committing it, and after committing one of its own or others'
        self.prepare_root: Callable[[bytes], None] | None = None
        self.adopt_root: Callable[[bytes], None] | None = None
        self.root_rotated: Callable[[bytes], None] | None = None
        # one home, several processes (a server, and the CLI beside it): another process
        # rotated the root key. Called inside the next write transaction that sees its
        # check, before any work runs; it takes the new key, or raises and nothing is written.
        self.root_moved: Callable[[bytes], None] | None = None
        self.root_seen: bytes | None = None  # the root check this process holds the key of
        self._own_head: bytes | None = None  # the head this process last committed: nobody wrote since
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
        def put(txn: lmdb.Transaction[bytes]) -> None:
            for k, v in values.items():
                txn.put(k.encode(), v, db=self._dbs["meta"], overwrite=False)
        self._write_once(put)
        return self.meta()

    def _write_once(self, fn: Callable[[lmdb.Transaction[bytes]], None]) -> None:
        """One small write transaction outside the group commit (meta
        values, checkpoints), run again after taking the map size another
        process grew to, or after growing a full map, as `_commit` does."""
        self._refuse_inside_a_read()
        for _ in range(8):
            try:
                with self._rw.shared(), self.env.begin(write=True) as txn:
                    fn(txn)
                return
            except lmdb.MapFullError:
                self._grow_map()
            except lmdb.MapResizedError:
                self._take_grown_map()
        raise LedgerError("could not grow the LMDB map")

    # LMDB changes the map size only with no transaction open in this process:
    # both under the exclusive lock, which waits for every reader and writer

    def _grow_map(self) -> None:
        """Double the map (a write found it full)."""
        with self._rw.exclusive():
            self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def _take_grown_map(self) -> None:
        """Take the size another process grew the map to."""
        with self._rw.exclusive():
            self.env.set_mapsize(0)

    # -- reads ------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[lmdb.Transaction[bytes]]:
        me = threading.get_ident()
        while True:
            with self._rw.shared():
                try:
                    txn = self.env.begin(buffers=False)
                except lmdb.MapResizedError:
                    pass  # another process grew the map: take its size (below), begin again
                else:
                    self._count_read(me, 1)
                    try:
                        yield txn
                    finally:
                        self._count_read(me, -1)
                        txn.abort()
                    return
            # taking the new size waits for every reader: a thread inside one
            # of its own reads would wait for itself
            if self._reads.get(me):
                raise LedgerError("another process grew the ledger's map while this thread holds a read "
                                  "open; read again after closing it")
            self._take_grown_map()

    def _refuse_inside_a_read(self) -> None:
        if self._reads.get(threading.get_ident()):
            # a write may have to grow the map, which waits for every open read: this
            # thread's own read would wait for the write, and the write for it
            raise LedgerError("a write from inside a read of the same thread (a snapshot or a records() "
                              "iteration still open): close the read first")

    def _count_read(self, thread: int, change: int) -> None:
        with self._reads_mu:
            held = self._reads.get(thread, 0) + change
            if held:
                self._reads[thread] = held
            else:
                del self._reads[thread]

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
        def put(txn: lmdb.Transaction[bytes]) -> None:
            txn.put(_SEQ.pack(tree_size), note, db=self._dbs["checkpoints"])
        self._write_once(put)

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
        self._refuse_inside_a_read()
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
                    self._grow_map()
                except lmdb.MapResizedError:  # another process grew the map: take its size, run again
                    self._take_grown_map()
            raise LedgerError("could not grow the LMDB map")
        except BaseException as exc:  # the whole batch failed: tell every caller
            for work in batch:
                if not work.done:
                    work.error, work.done = _own(exc), True
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
            meta = self._dbs["meta"]
            packed = txn.get(b"head", db=meta)
            if packed != self._own_head and self.root_moved is not None:  # another process wrote since
                self.follow_root(txn.get(b"root_check", db=meta))
            head = Head.unpack(packed)
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
            packed = head.pack()
            txn.put(b"head", packed, db=meta)
            txn.commit()
            self._own_head = packed
        except BaseException:
            txn.abort()
            raise
        for work, result, error in outcomes:
            work.result, work.error = result, error

    def follow_root(self, check: bytes | None) -> None:
        """The root check as a transaction reads it: if another process
        rotated the root key since this one last looked, `root_moved` takes
        the new key before anything is wrapped or unwrapped under the old."""
        if check is None or check == self.root_seen or self.root_moved is None:
            return
        self.root_moved(check)
        self.root_seen = check

    # -- a node of a cluster: the log side (see the module docstring) ----------

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
