"""The append protocol against a model of the replicated log (no etcd):
several nodes, each a real LMDB ledger, append through a log that orders
batches by compare-and-append on the head revision, as etcd does, with
failures injected between the compare and the answer: a request that never
arrives, an answer that never comes back (the append happened), an append
that lands late (after the writer gave up on it), reads that fail. Whatever
the schedule: every node ends with the model's log, record for record; an
acknowledged request is in it exactly once; no seq is written twice; every
node's projections match its log."""

from __future__ import annotations

import random
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import keyledger
from keyledger import events as ev
from keyledger.errors import KMSError, LedgerError
from keyledger.projections import replay as rp
from keyledger.store import Appended, Batch, Behind, LogUnavailable

pytestmark = pytest.mark.cluster

FAULTS = ("none", "none", "none", "lost-request", "lost-answer", "late", "read-fails")


class ModelLog:
    """The contract: a batch is appended iff the head revision is still the
    one its writer compared against; revisions only grow."""

    def __init__(self, base: int = 7) -> None:
        self.entries: list[tuple[int, Batch]] = []
        self.revision = base
        self.head_revision = base
        self.lock = threading.Lock()
        self.late: list[tuple[int, Batch]] = []

    def commit(self, after: int, batch: Batch) -> int | None:
        with self.lock:
            if after != self.head_revision:
                return None
            if not batch.records and not batch.keks:  # checked against the head, not kept
                return after
            self.revision += 1 + random.randrange(3)  # other keys' writes move the revision too
            self.head_revision = self.revision
            self.entries.append((self.revision, batch))
            return self.revision

    def since(self, seq: int) -> list[tuple[int, Batch]]:
        with self.lock:
            return [e for e in self.entries if e[1].first_seq >= seq][:64]

    def deliver_late(self) -> None:
        late, self.late = self.late, []
        for after, batch in late:
            self.commit(after, batch)

    def records(self) -> list[bytes]:
        out: list[bytes] = []
        for _, batch in self.entries:
            assert batch.first_seq == len(out), "a batch that does not start at the head was appended"
            out += batch.records
        return out


class NodeLog:
    """One node's view of the model, failing as it is told to."""

    timeout = 2.0

    def __init__(self, model: ModelLog, node: str, rnd: random.Random, faults: bool) -> None:
        self.model, self.node, self.rnd, self.faults = model, node, rnd, faults

    def _fault(self) -> str:
        return self.rnd.choice(FAULTS) if self.faults else "none"

    def append(self, after: int, batch: Batch) -> Appended | Behind:
        fault = self._fault()
        if fault == "lost-request":
            raise LogUnavailable("injected: the request never arrived")
        if fault == "late":
            self.model.late.append((after, batch))
            raise LogUnavailable("injected: the append is still in flight")
        revision = self.model.commit(after, batch)
        if fault == "lost-answer":
            raise LogUnavailable("injected: the answer was lost")
        if revision is not None:
            return Appended(revision)
        entries = self.model.since(batch.first_seq)
        return Behind(entries) if entries else Behind([], self.model.head_revision)

    def read(self, start: int) -> list[tuple[int, Batch]]:
        if self.faults and self.rnd.random() < 0.3:
            self.model.deliver_late()
        if self._fault() == "read-fails":
            raise LogUnavailable("injected: the read failed")
        return self.model.since(start)

    def close(self) -> None:
        pass


def _nodes(tmp: Path, n: int, model: ModelLog, rnd: random.Random, faults: bool) -> list[Any]:
    first = tmp / "n0"
    keyledger.open(first, create=True).close()
    for i in range(1, n):
        shutil.copytree(first, tmp / f"n{i}")
    out = []
    for i in range(n):
        kms = keyledger.open(tmp / f"n{i}")
        kms.store.log = NodeLog(model, f"n{i}", rnd, faults)
        out.append(kms)
    return out


class Ledger:
    """What the clients were told, to hold the nodes to."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.encrypted: list[tuple[str, bytes]] = []  # acknowledged Encrypts
        self.unknown = 0  # calls that failed without knowing whether they were appended


def _step(kms: Any, op: str, told: Ledger, rnd: random.Random) -> None:
    try:
        if op == "create" or not told.keys:
            told.keys.append(kms.create_key(description="k").key_metadata.key_id)
        elif op == "encrypt":
            key = rnd.choice(told.keys)
            blob = kms.encrypt(key, b"p%d" % rnd.randrange(10**6)).ciphertext_blob
            told.encrypted.append((key, blob))
        elif op == "describe":
            kms.describe_key(rnd.choice(told.keys))
        elif op == "disable":
            kms.disable_key(rnd.choice(told.keys))
        elif op == "enable":
            kms.enable_key(rnd.choice(told.keys))
    except KMSError:
        pass  # refused (e.g. a disabled key): a refusal is a record too
    except LogUnavailable:
        told.unknown += 1


def _check(nodes: list[Any], model: ModelLog, told: Ledger) -> None:
    model.deliver_late()
    for kms in nodes:
        kms.store.log.faults = False
        kms.store.catch_up()
    expected = model.records()
    for kms in nodes:
        with kms.store.snapshot() as snap:
            stored = [bytes(r.prev_hash + r.hash + r.body) for r in snap.raw_records()]
            assert snap.head().seq == len(expected)
            report = rp.check(snap)
        assert stored == expected, "a node's log is not the replicated log"
        assert report.ok, report.differences or report.chain_error
    records = [ev.decode(v[64:]) for v in expected]
    assert [r.seq for r in records] == list(range(len(records)))
    encrypts = sum(isinstance(r.event, ev.Encrypted) for r in records)
    if told.unknown == 0:
        assert encrypts == len(told.encrypted), "an acknowledged Encrypt is missing or was appended twice"
    else:
        assert len(told.encrypted) <= encrypts <= len(told.encrypted) + told.unknown
    created = {r.event.key_id for r in records if isinstance(r.event, ev.KeyCreated)}
    assert set(told.keys) <= created
    request_ids = [r.request_id for r in records if isinstance(r.event, (ev.Encrypted, ev.KeyCreated))]
    assert len(request_ids) == len(set(request_ids)), "one request's records were appended twice"


OPS = st.sampled_from(["create", "encrypt", "encrypt", "describe", "disable", "enable"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.integers(0, 2), OPS), min_size=4, max_size=25), seed=st.integers(0, 2**32))
def test_any_schedule_with_failures_keeps_one_log(tmp_path_factory: pytest.TempPathFactory,
                                                  steps: list[tuple[int, str]], seed: int) -> None:
    rnd = random.Random(seed)
    model = ModelLog()
    nodes = _nodes(tmp_path_factory.mktemp("model"), 3, model, rnd, faults=True)
    told = Ledger()
    try:
        for index, op in steps:
            _step(nodes[index], op, told, rnd)
        _check(nodes, model, told)
        for key, blob in told.encrypted[:3]:  # every node can use every key
            nodes[0].enable_key(key)
            for kms in nodes:
                assert kms.decrypt(blob).key_id.endswith(key)
    finally:
        for kms in nodes:
            kms.close()


def test_concurrent_nodes_and_threads(tmp_path: Path) -> None:
    rnd = random.Random(15)
    model = ModelLog()
    nodes = _nodes(tmp_path, 3, model, rnd, faults=True)
    told = Ledger()
    told.keys.append(nodes[0].create_key().key_metadata.key_id)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(kms: Any, seed: int) -> None:
        mine = random.Random(seed)
        local = Ledger()
        local.keys = list(told.keys)
        try:
            for _ in range(25):
                _step(kms, mine.choice(["encrypt", "encrypt", "describe", "create"]), local, mine)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        with lock:
            told.keys += [k for k in local.keys if k not in told.keys]
            told.encrypted += local.encrypted
            told.unknown += local.unknown

    threads = [threading.Thread(target=client, args=(nodes[i % 3], i)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        _check(nodes, model, told)
    finally:
        for kms in nodes:
            kms.close()


def test_a_lost_race_decides_again(tmp_path: Path) -> None:
    """Two nodes decide against the same state; the loser applies the
    winner's batch and decides again: a key disabled by the winner makes the
    loser's Encrypt a refusal, not a success against stale state."""
    model = ModelLog()
    a, b = _nodes(tmp_path, 2, model, random.Random(1), faults=False)
    try:
        key = a.create_key().key_metadata.key_id
        b.store.catch_up()
        a.disable_key(key)  # b has not seen this
        with pytest.raises(KMSError) as refused:
            b.encrypt(key, b"x")
        assert refused.value.code == "DisabledException"
        _check([a, b], model, Ledger())
    finally:
        a.close()
        b.close()


def test_a_batch_over_the_limit_is_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyledger.store import replicated  # where a commit splits its batch
    monkeypatch.setattr(replicated, "BATCH_BYTES", 2000)
    model = ModelLog()
    (a,) = _nodes(tmp_path, 1, model, random.Random(2), faults=False)
    try:
        key = a.create_key().key_metadata.key_id
        planned = a.planned()
        outcomes = a.store.submit_many([planned.encrypt(key, b"x" * 10).work for _ in range(40)])
        assert all(error is None for _, error in outcomes)
        assert len(model.entries) > 2  # one group commit, several appends
        assert all(len(b"".join(batch.records)) <= 2000 for _, batch in model.entries)
        told = Ledger()
        told.keys, told.encrypted = [key], [(key, b"") for _ in outcomes]
        _check([a], model, told)
    finally:
        a.close()


def test_root_rotation_is_refused_on_a_node(tmp_path: Path) -> None:
    model = ModelLog()
    (a,) = _nodes(tmp_path, 1, model, random.Random(3), faults=False)
    try:
        with pytest.raises(LedgerError, match="cluster"):
            a.rotate_root_key()
        assert a.store.head().seq == 0
    finally:
        a.close()


def test_a_root_key_rotation_reaches_every_node_with_the_key_staged(tmp_path: Path) -> None:
    """The operator stages one new root key on every node; a rotation on one
    carries the re-wrapped KEKs and the new key's check through the log.
    A node that has not staged the key applies nothing (its head and key
    stay) and says which key it needs; once staged, it follows: the staged
    key becomes its root.key, old and new ciphertexts open everywhere, and
    the old root key opens neither node."""
    model = ModelLog()
    a, b = _nodes(tmp_path, 2, model, random.Random(5), faults=False)
    old_root = (tmp_path / "n0" / "root.key").read_bytes()
    new_root = bytes(range(32))
    try:
        key = a.create_key().key_metadata.key_id
        blob = a.encrypt(key, b"before").ciphertext_blob
        b.store.catch_up()
        with pytest.raises(LedgerError, match="staged"):
            a.rotate_root_key()  # nothing staged on the rotating node: nothing appended
        assert a.store.head().seq == b.store.head().seq
        check = keyledger.stage_root_key(tmp_path / "n0", new_root)
        assert check == a.stage_root_key(new_root)  # the library's form: the same file, the same check
        with pytest.raises(LedgerError, match="current root key"):
            keyledger.stage_root_key(tmp_path / "n0", old_root)
        assert a.rotate_root_key() == 1
        assert (tmp_path / "n0" / "root.key").read_bytes() == new_root
        assert not (tmp_path / "n0" / "root.key.staged").exists()
        before = b.store.head()
        with pytest.raises(LedgerError, match=f"check {check}.*root.key.staged"):
            b.store.catch_up()
        assert (b.store.head().seq, b.store.head().hash) == (before.seq, before.hash)
        assert (tmp_path / "n1" / "root.key").read_bytes() == old_root
        with pytest.raises(LedgerError, match="root.key.staged"):  # every request waits for the log: none is served
            b.decrypt(blob)
        keyledger.stage_root_key(tmp_path / "n1", new_root)
        b.store.catch_up()
        assert (tmp_path / "n1" / "root.key").read_bytes() == new_root
        assert b.decrypt(blob).plaintext == b"before"
        after = b.encrypt(key, b"after").ciphertext_blob
        a.store.catch_up()
        assert a.decrypt(after).plaintext == b"after"
        told = Ledger()
        told.keys, told.encrypted = [key], [(key, blob), (key, after)]
        _check([a, b], model, told)  # one log on both nodes, and each replays to its state
    finally:
        a.close()
        b.close()
    for name in ("n0", "n1"):
        with pytest.raises(LedgerError, match="root key does not match"):
            keyledger.open(tmp_path / name, root_key=old_root)


def test_a_node_that_stops_between_applying_and_renaming_finishes_at_open(tmp_path: Path) -> None:
    """A node applies the rotation (its data now under the new key) and stops
    before the staged key replaces root.key: opening it finishes the swap."""
    model = ModelLog()
    a, b = _nodes(tmp_path, 2, model, random.Random(6), faults=False)
    new_root = bytes(range(1, 33))
    try:
        key = a.create_key().key_metadata.key_id
        a.encrypt(key, b"x")
        for name in ("n0", "n1"):
            keyledger.stage_root_key(tmp_path / name, new_root)
        a.rotate_root_key()
        b.store.adopt_root = lambda check: None  # the process dies right after the commit
        b.store.catch_up()
    finally:
        a.close()
        b.close()
    assert (tmp_path / "n1" / "root.key.staged").exists()
    from keyledger import crypto
    from keyledger.secret import Secret
    from keyledger.store import Store
    with pytest.raises(LedgerError, match="is a node of a cluster"):  # the swap is finished before that check
        keyledger.open(tmp_path / "n1")
    assert (tmp_path / "n1" / "root.key").read_bytes() == new_root
    assert not (tmp_path / "n1" / "root.key.staged").exists()
    store = Store(str(tmp_path / "n1"), readonly=True, create=False)
    try:
        assert store.meta()["root_check"] == crypto.root_check(Secret(new_root))
    finally:
        store.close()


