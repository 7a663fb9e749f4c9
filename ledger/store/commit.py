"""Group commit's plumbing: tickets that wake their waiters, work items, and
the readers/resizer lock that keeps the map from moving under a reader."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from keyledger.store.tables import WriteView


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
