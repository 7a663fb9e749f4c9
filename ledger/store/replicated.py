"""The cluster side of `Store`: a commit that is also an append to a
replicated log, applying what other nodes appended (through the same record
path, verifying the chain), catching up, and copying or adopting a snapshot."""

from __future__ import annotations

import os
import time as time_
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import lmdb
from keyledger import events as ev
from keyledger import home
from keyledger.errors import LedgerError
from keyledger.store.commit import _finish, _Work
from keyledger.store.files import check_data_file
from keyledger.store.log import (
    BATCH_BYTES,
    REVISION,
    Appended,
    Batch,
    LogDiverged,
    LogGap,
    LogUnavailable,
    ReplicatedLog,
)
from keyledger.store.tables import _SEQ, _TABLES, Head, WriteView, _revision


class ReplicationMixin:
    """Store's methods for a node of a cluster (`self.log` set)."""

    if TYPE_CHECKING:  # what Store (store/core.py) gives these methods
        from keyledger.store.commit import _RWLock

        path: str
        env: lmdb.Environment
        audit_tables: bool
        log: ReplicatedLog | None
        on_applied: Callable[[list[ev.Record]], None] | None
        prepare_root: Callable[[bytes], None] | None
        adopt_root: Callable[[bytes], None] | None
        root_rotated: Callable[[bytes], None] | None
        _dbs: dict[str, Any]
        _rw: _RWLock
        _write_lock: threading.RLock

        def _read(self) -> AbstractContextManager[lmdb.Transaction[bytes]]: ...
        def _open_env(self, map_size: int, readonly: bool) -> lmdb.Environment: ...
        def _grow_if_needed(self) -> None: ...
        def _grow_map(self) -> None: ...

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
                outcomes, taken, start, head, values, keks, rotated = self._run_items(txn, items)
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
                        if rotated is not None and self.root_rotated is not None:
                            self.root_rotated(rotated)
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
            list[tuple[_Work, Any, Exception | None]], int, Head, Head, list[bytes], list[tuple[str, bytes | None]],
            bytes | None]:
        """Run work items in nested transactions until the batch is full;
        the last item is the new root key's check if the batch rotates it."""
        rotated: bytes | None = None
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
            if view.meta_changes and (view.meta_changes != ["root_check"] or not _rotates(view.raw or [])):
                child.abort()  # the one setting a replicated batch carries is a root-key rotation's check
                outcomes.append((work, None, LedgerError(
                    "a node of a cluster cannot change the ledger's own settings: not replicated")))
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
            if view.meta_changes:  # a root-key rotation (the one setting a batch may carry)
                rotated = txn.get(b"root_check", db=self._dbs["meta"])
            head = view.head
            values += view.raw
            keks += view.kek_changes
            size += grew
            outcomes.append((work, result, None))
            taken += 1
        if values or keks:
            txn.put(b"head", head.pack(), db=self._dbs["meta"])
        return outcomes, taken, start, head, values, keks, rotated

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
        rotated: bytes | None = None
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
                records = view.apply_stored(batch.records)
                for record in records:
                    if isinstance(record.event, ev.RootKeyRotated):  # every node switches root keys here
                        check = record.event.root_check
                        if self.prepare_root is None:
                            raise LedgerError("a root-key rotation can be applied only by the ledger holding the keys")
                        self.prepare_root(check)  # this node holds the new key, or nothing is applied
                        txn.put(b"root_check", check, db=self._dbs["meta"])
                        rotated = check
                applied += records
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
        if rotated is not None:
            assert self.adopt_root is not None  # prepare_root was there
            self.adopt_root(rotated)
            if self.root_rotated is not None:
                self.root_rotated(rotated)
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
                self._grow_map()

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


_ROTATION_TAG = b"RootKeyRotated"


def _rotates(values: list[bytes]) -> bool:
    """Do these stored records hold a root-key rotation? (A cheap look for
    the event's tag first; only a record holding it is decoded.)"""
    return any(_ROTATION_TAG in value and isinstance(ev.decode(value[64:]).event, ev.RootKeyRotated)
               for value in values)  # stored: prev_hash || hash || canonical bytes
