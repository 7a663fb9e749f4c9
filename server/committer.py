"""Group commit between the event loop and one writer thread.

Requests are planned on the event loop (`KeyLedger.planned()`), queued
here, and handed to a single writer thread a whole batch at a time: the
thread runs the batch with one `Store.submit_many` (one LMDB transaction,
one sync) and resolves every future of the batch with one
`loop.call_soon_threadsafe`. While a batch commits, the next one gathers, so
under load each thread hand-off (~80 us on small machines) is paid per
batch, not per request, and an idle server still answers at once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

from keyledger.service import Planned
from keyledger.store import Store

Outcome = tuple[Any, BaseException | None]


class GroupCommitter:
    def __init__(self, store: Store, *, max_batch: int = 512) -> None:
        self._store = store
        self._max_batch = max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[Planned, asyncio.Future[Outcome]]] = []
        self._busy = False  # a batch is with the writer thread
        self._scheduled = False  # a hand-off is queued on the loop
        self._inbox: queue.SimpleQueue[list[tuple[Planned, asyncio.Future[Outcome]]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._idle: asyncio.Event | None = None
        self.batches = 0
        self.requests = 0

    # -- lifecycle (event loop thread) -------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._write, name="keyledger-writer", daemon=True)
        self._thread.start()

    @property
    def idle_before_start(self) -> bool:
        return self._loop is None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def stop(self) -> None:
        """Commit everything queued, then end the writer thread."""
        if self._thread is None:
            return
        while self._pending or self._busy:
            assert self._idle is not None
            self._idle.clear()
            await self._idle.wait()
        self._inbox.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def abandon(self) -> None:
        """From any thread, after the event loop is gone (a forced exit): let
        the writer finish the batch it holds, then end it, so the store can
        be closed safely. Requests not yet handed over were never answered."""
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join()
            self._thread = None

    # -- requests (event loop thread) --------------------------------------------

    def submit(self, planned: Planned) -> asyncio.Future[Outcome]:
        """A future of the request's (result, failure) outcome, resolved once
        its batch is durable; `Planned.finish` turns it into the response."""
        if self._thread is None:
            raise RuntimeError("the committer is not running")
        assert self._loop is not None
        future: asyncio.Future[Outcome] = self._loop.create_future()
        self._pending.append((planned, future))
        if not self._busy and not self._scheduled:
            # let the requests already readable on this loop iteration join
            self._scheduled = True
            self._loop.call_soon(self._hand_off)
        return future

    def _hand_off(self) -> None:
        self._scheduled = False
        if self._busy or not self._pending:
            return
        batch = self._pending[:self._max_batch]
        del self._pending[:self._max_batch]
        self._busy = True
        self._inbox.put(batch)

    def _resolve(self, batch: list[tuple[Planned, asyncio.Future[Outcome]]], outcomes: list[Outcome]) -> None:
        self._busy = False
        self.batches += 1
        self.requests += len(batch)
        for (_, future), outcome in zip(batch, outcomes):
            if not future.done():
                future.set_result(outcome)
        if self._pending:
            self._hand_off()
        elif self._idle is not None:
            self._idle.set()

    # -- the writer thread ---------------------------------------------------------

    def _write(self) -> None:
        assert self._loop is not None
        while True:
            batch = self._inbox.get()
            if batch is None:
                return
            try:
                outcomes = self._store.submit_many([planned.work for planned, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
                outcomes = [(None, exc)] * len(batch)
            try:
                self._loop.call_soon_threadsafe(self._resolve, batch, outcomes)
            except RuntimeError:  # the loop is closed (a forced exit): nobody is waiting
                pass
