"""The writer path: group commit, per-item isolation, relaxed mode, map growth.

Commits are counted by wrapping the store's `_run` (one call = one write
transaction) on the instance. To make "commits were shared" a fact rather
than a race, the first transaction is held open until every other caller
has queued behind it; nothing here asserts on timing.
"""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

import keyledger
from keyledger import projections
from keyledger import events as ev
from keyledger.errors import LedgerError
from keyledger.store import Store
from keyledger.projections import replay
from chainkit import verify_chain

THREADS = 32
PER_THREAD = 8


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


class CommitCounter:
    """Wraps Store._run: records each write transaction's batch size; the
    first one can be held until `hold_until()` is true."""

    def __init__(self, store: Store, hold_until=None) -> None:
        self.store, self.real, self.hold_until = store, store._run, hold_until
        self.batches: list[int] = []
        self.held = False
        store._run = self

    def __call__(self, batch) -> None:
        if self.hold_until is not None and not self.held:
            self.held = True
            self.held_ok = wait_for(self.hold_until)
        self.real(batch)
        self.batches.append(len(batch))


def append_work(label: str, n: int = 1, *, fail: bool = False, kek: str | None = None):
    """A work item appending `n` records (request id `label`); if `fail`,
    it raises after appending (and after writing a KEK row)."""
    def work(view):
        view.append([ev.RandomGenerated(i + 1) for i in range(n)], operation="Test",
                    principal="tester", request_id=label, time=1_000_000)
        if kek is not None:
            view.put_kek(kek, b"wrapped:" + label.encode())
        if fail:
            raise ValueError(f"{label} fails after appending")
        return view.head.seq
    return work


def test_concurrent_encrypts_share_commits(tmp_path):
    kms = keyledger.open(tmp_path, create=True, durability="durable")
    try:
        key_id = kms.create_key().key_metadata.key_id
        before = kms.store.head().seq
        counter = CommitCounter(kms.store, hold_until=lambda: len(kms.store._queue) >= THREADS - 1)
        start = threading.Barrier(THREADS)
        results: dict[int, list[tuple[bytes, bytes]]] = {}
        errors: list[BaseException] = []

        def client(n: int) -> None:
            try:
                start.wait()
                mine = []
                for i in range(PER_THREAD):
                    plaintext = f"thread {n} message {i}".encode()
                    blob = kms.encrypt(key_id, plaintext, encryption_context={"t": str(n)}).ciphertext_blob
                    mine.append((blob, plaintext))
                results[n] = mine
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert counter.held_ok, "the other callers never queued behind the first commit"
        requests = THREADS * PER_THREAD
        assert sum(len(v) for v in results.values()) == requests

        # exactly their records, dense, chained, folded
        with kms.store.snapshot() as snap:
            total = verify_chain(snap)
            assert replay.check(snap).ok
            new = list(snap.records(before))
        assert total - before == requests == len(new)
        assert all(isinstance(r.event, ev.Encrypted) for r in new)
        digests = {hashlib.sha256(blob).digest() for mine in results.values() for blob, _ in mine}
        assert {r.event.ciphertext_digest for r in new} == digests
        assert len({r.request_id for r in new}) == requests

        # commits were shared: fewer write transactions than requests
        assert sum(counter.batches) == requests
        assert len(counter.batches) < requests
        assert counter.batches[1] >= THREADS - 1  # everyone who queued behind the held commit
        usage = kms.store.get("usage", projections.usage_row(key_id, 1))
        assert usage.encrypt == requests

        for n, mine in results.items():
            blob, plaintext = mine[n % PER_THREAD]
            assert kms.decrypt(blob, encryption_context={"t": str(n)}).plaintext == plaintext
    finally:
        kms.close()


@pytest.mark.parametrize("durability", ["durable", "relaxed"])
def test_a_failing_item_leaves_the_rest_of_its_batch_alone(tmp_path, durability):
    store = Store(str(tmp_path), durability=durability)
    try:
        gate = threading.Event()

        def blocker(view):  # holds the write transaction until the others have queued
            assert gate.wait(30)
            return append_work("blocker")(view)

        good = [append_work(f"good-{i}", n=2, kek=f"good-{i}") for i in range(6)]
        bad = [append_work(f"bad-{i}", n=3, fail=True, kek=f"bad-{i}") for i in range(3)]
        items = [good[0], bad[0], good[1], good[2], bad[1], good[3], good[4], bad[2], good[5]]
        counter = CommitCounter(store)
        outcomes: dict[int, object] = {}

        def call(i, fn):
            try:
                outcomes[i] = ("ok", store.submit(fn))
            except BaseException as exc:
                outcomes[i] = ("error", exc)

        first = threading.Thread(target=call, args=(-1, blocker))
        first.start()
        assert wait_for(lambda: store._leading)
        threads = []
        for i, fn in enumerate(items):  # queued in this order behind the blocker
            threads.append(threading.Thread(target=call, args=(i, fn)))
            threads[-1].start()
            assert wait_for(lambda: len(store._queue) == i + 1)
        gate.set()
        for t in [first, *threads]:
            t.join()

        assert counter.batches == [1, len(items)]  # the nine items shared one transaction
        for i, fn in enumerate(items):
            kind, value = outcomes[i]
            if fn in bad:
                assert kind == "error" and isinstance(value, ValueError), value
            else:
                assert kind == "ok", value
        with store.snapshot() as snap:
            assert verify_chain(snap) == 1 + 2 * len(good)
            assert replay.check(snap).ok
            ids = [r.request_id for r in snap.records()]
            assert ids == ["blocker"] + [f"good-{i}" for i in range(6) for _ in range(2)]
            assert [r.seq for r in snap.records()] == list(range(len(ids)))
        for i in range(6):
            assert store.kek(f"good-{i}") == f"wrapped:good-{i}".encode()
        for i in range(3):
            assert store.kek(f"bad-{i}") is None  # its other writes went with it

        # the same isolation through submit_many (one commit for the list)
        outcomes_many = store.submit_many([append_work("m-ok"), append_work("m-bad", fail=True),
                                           append_work("m-ok-2")])
        assert [error is None for _, error in outcomes_many] == [True, False, True]
        assert isinstance(outcomes_many[1][1], ValueError)
        assert counter.batches[-1] == 3
        with store.snapshot() as snap:
            assert [r.request_id for r in snap.records(13)] == ["m-ok", "m-ok-2"]
            verify_chain(snap)
            assert replay.check(snap).ok
    finally:
        store.close()


class CountingEnv:
    """Delegates to the LMDB environment, counting sync() calls."""

    def __init__(self, env) -> None:
        self._env = env
        self.syncs = 0

    def sync(self, force: bool = False) -> None:
        self.syncs += 1
        self._env.sync(force)

    def __getattr__(self, name):
        return getattr(self._env, name)


def test_relaxed_mode_syncs_periodically_and_survives_a_clean_close(tmp_path):
    kms = keyledger.open(tmp_path, create=True, durability="relaxed", sync_interval=0.02)
    try:
        env = kms.store.env = CountingEnv(kms.store.env)
        syncer = kms.store._syncer
        assert syncer is not None and syncer.is_alive()
        assert env.flags()["sync"] is False  # commits are not synced one by one
        key_id = kms.create_key().key_metadata.key_id
        blobs = [(kms.encrypt(key_id, f"relaxed {i}".encode()).ciphertext_blob, f"relaxed {i}".encode())
                 for i in range(50)]
        # commits themselves do not sync; the background thread does, repeatedly
        assert wait_for(lambda: env.syncs >= 3), "the periodic sync never ran"
        with kms.store.snapshot() as snap:
            count = verify_chain(snap)
    finally:
        kms.close()
    assert not syncer.is_alive()  # close stops it

    with keyledger.open(tmp_path, durability="durable") as kms:
        with kms.store.snapshot() as snap:
            assert verify_chain(snap) == count
            assert replay.check(snap).ok
        for blob, plaintext in blobs:
            assert kms.decrypt(blob).plaintext == plaintext


def test_durable_commits_do_not_need_the_sync_thread(tmp_path):
    store = Store(str(tmp_path), durability="durable")
    try:
        assert store._syncer is None
        assert store.env.flags()["sync"] is True
    finally:
        store.close()


@pytest.mark.parametrize("batch", [50, 4000])  # 4000: all in one commit
def test_the_map_grows_by_itself(tmp_path, batch):
    """From a 256 KiB map: many small commits (grown before a commit) or one
    commit too big for the map (MapFullError, grown, the batch retried)."""
    small = 256 << 10
    total = 4000
    store = Store(str(tmp_path), durability="relaxed", map_size=small)
    attempts = []
    real_run = store._run

    def counting_run(works):
        attempts.append(len(works))
        real_run(works)

    store._run = counting_run
    try:
        for start in range(0, total, batch):
            store.submit(append_work(f"grow-{start}", n=batch))
        assert store.env.info()["map_size"] > small
        if batch == total:  # the one transaction hit the end of the map and was retried
            assert len(attempts) > 1
        with store.snapshot() as snap:
            assert verify_chain(snap) == total
            assert replay.check(snap).ok
    finally:
        store.close()
    # and it reopens (even asked for the small map again) with everything in it
    store = Store(str(tmp_path), durability="relaxed", map_size=small)
    try:
        assert store.head().seq == total
        store.submit(append_work("after reopen", n=10))
        with store.snapshot() as snap:
            assert verify_chain(snap) == total + 10
    finally:
        store.close()


GROWER = """
import os, sys
from keyledger import events as ev
from keyledger.store import Store
store = Store(sys.argv[1], durability=sys.argv[2])
def work(view, i):
    view.append([ev.RandomGenerated(1)], operation="Test", principal="other process",
                request_id=f"other-{i}", time=1_000_000)
    view.put_kek(f"bulk-{i}", os.urandom(200_000))  # about 50 pages a commit: the map grows
for i in range(int(sys.argv[3])):
    store.submit(lambda view, i=i: work(view, i))
store.close()
"""


@pytest.mark.parametrize("other", ["relaxed", "durable"])
def test_another_process_growing_the_map_under_a_writer(tmp_path, other):
    """Several processes may write one ledger. Another process growing the
    data past this one's map makes this one's next write transaction fail
    with LMDB's MapResizedError; the writer takes the new size and runs its
    batch again (it answered an internal error before), and both processes'
    records are in one chain."""
    import subprocess
    import sys

    store = Store(str(tmp_path), durability="relaxed", map_size=1 << 20)  # the other's map is 64 MiB
    try:
        store.submit(append_work("first"))
        before = store.env.info()["map_size"]
        # while this one is idle: its next write transaction finds the data past its map
        subprocess.run([sys.executable, "-c", GROWER, str(tmp_path), other, "40"], check=True, timeout=120)
        assert store.submit(append_work("after the growth")) == 1 + 40 + 1
        assert store.env.info()["map_size"] > before
        # and while this one writes
        child = subprocess.Popen([sys.executable, "-c", GROWER, str(tmp_path), other, "40"])
        mine = 0
        while child.poll() is None:
            store.submit(append_work(f"mine-{mine}"))
            mine += 1
        assert child.returncode == 0
        store.submit(append_work("last"))
        with store.snapshot() as snap:
            assert verify_chain(snap) == 1 + 40 + 1 + mine + 40 + 1
            assert replay.check(snap).ok
            ids = [r.request_id for r in snap.records()]
        assert sorted(i for i in ids if i.startswith("other-")) == sorted([f"other-{i}" for i in range(40)] * 2)
        assert ids.count("after the growth") == ids.count("last") == 1
    finally:
        store.close()


def _grow_from_another_process(home, commits: int = 40) -> None:
    import subprocess
    import sys
    subprocess.run([sys.executable, "-c", GROWER, str(home), "relaxed", str(commits)], check=True, timeout=120)


def test_a_read_takes_the_grown_map_without_pulling_it_from_under_other_readers(tmp_path):
    """A read whose transaction cannot begin because another process grew
    the data past this process's map takes the new size. LMDB allows that
    only with no transaction open in the process, so it waits for the other
    threads' open reads (it resized under them before), and they read on."""
    store = Store(str(tmp_path), durability="relaxed", map_size=1 << 20)
    try:
        store.submit(append_work("first"))
        holding, release, seen = threading.Event(), threading.Event(), []

        def reader() -> None:
            with store.snapshot() as snap:
                holding.set()
                release.wait(60)
                seen.append([r.request_id for r in snap.records()])  # its own view, still mapped
        thread = threading.Thread(target=reader)
        thread.start()
        holding.wait(10)
        _grow_from_another_process(tmp_path)
        threading.Timer(0.3, release.set).start()
        assert store.head().seq == 1 + 40  # waited for the reader, then took the new size
        thread.join(10)
        assert seen == [["first"]]
        with store.snapshot() as snap:
            assert verify_chain(snap) == 41
    finally:
        store.close()


def test_a_read_inside_a_read_of_the_same_thread_refuses_instead_of_waiting_for_itself(tmp_path):
    store = Store(str(tmp_path), durability="relaxed", map_size=1 << 20)
    try:
        store.submit(append_work("first"))
        with store.snapshot() as snap:
            _grow_from_another_process(tmp_path)
            with pytest.raises(LedgerError, match="another process grew the ledger's map"):
                store.head()
            assert [r.request_id for r in snap.records()] == ["first"]
        assert store.head().seq == 41  # once its read is closed, the thread reads the grown map
    finally:
        store.close()


def test_a_write_from_inside_a_read_of_the_same_thread_is_refused_not_deadlocked(tmp_path):
    """A commit that must grow the map waits for every open read; a thread
    writing from inside its own read would wait for itself. So such a write
    is refused at once, every time (not only on the rare commit that grows),
    and writes nothing; another thread writes while this one reads."""
    store = Store(str(tmp_path), durability="relaxed", map_size=1 << 20)
    try:
        store.submit(append_work("first"))
        with store.snapshot() as snap:
            with pytest.raises(LedgerError, match="a write from inside a read of the same thread"):
                store.submit(append_work("inside"))
            for _ in store.records():  # a records() iteration is a read too
                with pytest.raises(LedgerError, match="a write from inside a read"):
                    store.submit(append_work("inside the iteration"))
            with pytest.raises(LedgerError, match="a write from inside a read"):
                store.put_checkpoint(1, b"a checkpoint is a write too")
            other = threading.Thread(target=lambda: store.submit(append_work("other thread", n=200)))
            other.start()
            other.join(30)
            assert not other.is_alive()
            assert snap.head().seq == 1  # the read's own view
        assert store.submit(append_work("after")) == 1 + 200 + 1
        with store.snapshot() as snap:
            ids = [r.request_id for r in snap.records()]
        assert "inside" not in ids and "inside the iteration" not in ids and ids[-1] == "after"
        # a read is counted for the thread that began it, wherever it ends: a records()
        # iteration begun in one thread and finished in another leaves both free to write
        started: list = []
        free_again = threading.Event()
        def begin_and_write_later() -> None:
            records = store.records()
            next(records)
            started.append(records)
            free_again.wait(30)
            store.submit(append_work("the beginning thread, its read finished elsewhere"))
        thread = threading.Thread(target=begin_and_write_later)
        thread.start()
        while not started:
            time.sleep(0.01)
        assert store.submit(append_work("main, while the other thread reads")) == 203
        for _ in started[0]:
            pass  # finished here, in the main thread
        free_again.set()
        thread.join(30)
        assert store.head().seq == 204
    finally:
        store.close()


def test_checkpoints_and_meta_are_written_after_another_process_grew_the_map(tmp_path):
    """The small writes outside the group commit take the grown map as the
    commit does (they raised LMDB's MapResizedError)."""
    store = Store(str(tmp_path), durability="relaxed", map_size=1 << 20)
    try:
        store.submit(append_work("first"))
        _grow_from_another_process(tmp_path)
        store.put_checkpoint(41, b"note")
        _grow_from_another_process(tmp_path)
        assert store.init_meta({"test-marker": b"1"})["test-marker"] == b"1"
        with store.snapshot() as snap:
            assert verify_chain(snap) == 81
    finally:
        store.close()


class _Abort(BaseException):
    """Not an Exception: it fails the whole batch, not one item."""


def test_a_failed_batch_gives_each_caller_its_own_error(tmp_path):
    """Every caller of a batch that failed as a whole raises the failure
    with the original traceback, each its own copy: one shared exception
    raised from every caller grew a traceback as long as the batch."""
    import traceback

    store = Store(str(tmp_path), durability="durable")
    try:
        gate = threading.Event()

        def blocker(view):
            assert gate.wait(30)
            return append_work("blocker")(view)

        def boom(view):
            raise _Abort("the batch cannot go on")

        caught: list[BaseException] = []

        def call(fn):
            try:
                store.submit(fn)
            except _Abort as exc:
                caught.append(exc)

        first = threading.Thread(target=call, args=(blocker,))
        first.start()
        assert wait_for(lambda: store._leading)
        threads = [threading.Thread(target=call, args=(fn,)) for fn in [append_work("a"), boom, append_work("b")]]
        for i, t in enumerate(threads):
            t.start()
            assert wait_for(lambda: len(store._queue) == i + 1)
        gate.set()
        for t in [first, *threads]:
            t.join()
        assert len(caught) == 3 and len({id(e) for e in caught}) == 3
        assert {str(e) for e in caught} == {"the batch cannot go on"}
        depths = {len(traceback.extract_tb(e.__traceback__)) for e in caught}
        assert len(depths) == 1, depths  # each raised once, from its own caller
        assert all("boom" in [f.name for f in traceback.extract_tb(e.__traceback__)] for e in caught)
        assert store.head().seq == 1  # the blocker's commit; nothing of the failed batch
    finally:
        store.close()


@pytest.mark.parametrize("durability", ["durable", "relaxed"])
def test_a_work_item_run_again_never_meets_material_from_its_discarded_run(tmp_path, durability):
    """A work item may run twice (its batch's failing neighbour, or a map
    that had to grow). An Encrypt whose key's automatic rotation fell due
    mints version 2 and seals under it in its first run; that transaction is
    thrown away and the second run mints a different version 2. The
    ciphertext must be sealed under the version 2 that was committed: the
    caches of material and KEKs answer only for the wrapped bytes this
    transaction reads (they held the discarded run's material before)."""
    from datetime import timedelta

    from keyledger.service.request import Planned

    from clockkit import Clock

    clock = Clock()
    kms = keyledger.open(tmp_path, create=True, durability=durability, clock=clock)
    try:
        key = kms.create_key().key_metadata.key_id
        kms.enable_key_rotation(key, rotation_period_in_days=90)
        kms.encrypt(key, b"warm the caches")  # version 1's material and the KEK are cached
        clock.advance(timedelta(days=91))  # the next request rotates first
        planned = kms.planned().encrypt(key, b"sealed under the committed version 2")

        def neighbour(view):
            raise ValueError("fails after the Encrypt ran in the same transaction")

        outcomes = kms.store.submit_many([planned.work, neighbour])
        assert isinstance(outcomes[1][1], ValueError)
        blob = Planned.finish(outcomes[0]).ciphertext_blob
        assert kms.decrypt(blob).plaintext == b"sealed under the committed version 2"
        rotated = [r.event for r in kms.store.records() if isinstance(r.event, ev.KeyRotated)]
        assert len(rotated) == 1  # the discarded run's rotation is not in the log
    finally:
        kms.close()
    with keyledger.open(tmp_path, durability=durability, clock=clock) as kms:  # nothing cached now
        assert kms.decrypt(blob).plaintext == b"sealed under the committed version 2"

