"""Indexed trail queries (projections.query) return exactly what a full scan
with the same filter returns.

hypothesis draws a workload (several principals through `as_caller`, some
allowed and some not, refused and failed requests, on-demand and automatic
rotations, aliases, a moving clock), runs it on a real ledger, then draws
many filters (key, principal, operation, errors only, seq and time bounds),
both orders and limits, and compares the indexed answer with a scan of every
record against the filter as documented.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keyledger
from keyledger import events as ev
from keyledger.errors import KMSError
from keyledger.projections.query import Filter, query

T0 = datetime(2031, 3, 1, tzinfo=timezone.utc)
ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
USERS = {"alice": ["kms:*"], "bob": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "mallory": None}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _policy(actions: list[str]) -> str:
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})


callers = st.sampled_from(["root", "alice", "bob", "mallory"])
operations = st.one_of(
    st.tuples(st.just("create_key"), callers),
    st.tuples(st.just("encrypt"), callers, st.integers(0, 5), st.sampled_from(["a", "b"])),
    st.tuples(st.just("decrypt"), callers, st.integers(0, 20), st.booleans()),
    st.tuples(st.just("rotate"), callers, st.integers(0, 5)),
    st.tuples(st.just("enable_rotation"), callers, st.integers(0, 5)),
    st.tuples(st.just("alias"), callers, st.integers(0, 5)),
    st.tuples(st.just("describe"), callers, st.integers(0, 6)),
    st.tuples(st.just("disable"), callers, st.integers(0, 5)),
    st.tuples(st.just("enable"), callers, st.integers(0, 5)),
    st.tuples(st.just("wait"), st.sampled_from([0, 1, 3600, 86_400 * 100])),
)


def run(kms: keyledger.KeyLedger, clock: Clock, ops: list[tuple]) -> list[str]:
    as_ = {"root": kms, **{name: kms.as_caller(f"arn:aws:iam::{ACCOUNT}:user/{name}") for name in USERS}}
    for name, actions in USERS.items():
        kms.create_user(name)
        if actions:
            kms.put_principal_policy(f"arn:aws:iam::{ACCOUNT}:user/{name}", "kms", _policy(actions))
    keys = [kms.create_key(description="first").key_metadata.key_id]
    try:
        as_["mallory"].describe_key(keys[0])
    except KMSError:
        pass  # at least one refusal in every log
    blobs: list[tuple[bytes, dict[str, str]]] = []
    for op in ops:
        clock.now += timedelta(microseconds=7)
        if op[0] == "wait":
            clock.now += timedelta(seconds=op[1])
            continue
        who = as_[op[1]]
        key = keys[op[2] % len(keys)] if len(op) > 2 else None
        try:
            match op[0]:
                case "create_key":
                    keys.append(who.create_key(description="more").key_metadata.key_id)
                case "encrypt":
                    context = {"tenant": op[3]}
                    blobs.append((who.encrypt(key, b"data", encryption_context=context).ciphertext_blob, context))
                case "decrypt" if blobs:
                    blob, context = blobs[op[2] % len(blobs)]
                    who.decrypt(blob, encryption_context=context if op[3] else {"tenant": "wrong"})
                case "rotate":
                    who.rotate_key_on_demand(key)
                case "enable_rotation":
                    who.enable_key_rotation(key, rotation_period_in_days=90)
                case "alias":
                    who.create_alias(f"alias/a{op[2]}", key)
                case "describe":
                    who.describe_key(key if op[2] < 6 else str(uuid.UUID(int=op[2])))
                case "disable":
                    who.disable_key(key)
                case "enable":
                    who.enable_key(key)
        except KMSError:
            pass  # refused: a RequestDenied record
    return keys


def near(times: list[int]) -> st.SearchStrategy[int]:
    """A record's time, or a microsecond either side of one."""
    return st.tuples(st.sampled_from(times), st.sampled_from([-1, 0, 1])).map(sum)


def matches(f: Filter, r: ev.Record) -> bool:
    """The filter as documented, written out independently of Filter.matches."""
    return ((f.key_id is None or f.key_id in ev.key_ids_of(r.event))
            and (f.principal is None or r.principal == f.principal)
            and (f.operation is None or r.operation == f.operation)
            and (not f.errors_only or type(r.event) is ev.RequestDenied)
            and (f.since_seq is None or r.seq >= f.since_seq)
            and (f.until_seq is None or r.seq <= f.until_seq)
            and (f.since_time is None or r.time >= f.since_time)
            and (f.until_time is None or r.time <= f.until_time))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=5, max_size=40), data=st.data())
def test_indexed_queries_equal_a_full_scan(tmp_path_factory: pytest.TempPathFactory, ops: list[tuple],
                                           data: st.DataObject) -> None:
    clock = Clock()
    with tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as home, \
            keyledger.open(home, create=True, durability="relaxed", clock=clock) as kms:
        keys = run(kms, clock, ops)
        kms.rotate_due()  # the sweep: automatic rotations by the service principal
        with kms.store.snapshot() as snap:
            records = list(snap.records())
            assert [r.seq for r in records] == list(range(snap.head().seq))
            times = sorted({r.time for r in records})
            principals = sorted({r.principal for r in records})
            ops_seen = sorted({r.operation for r in records})
            assert any(isinstance(r.event, ev.RequestDenied) for r in records)
            pick = lambda s: st.one_of(st.none(), s)  # noqa: E731
            for _ in range(20):
                f = Filter(
                    key_id=data.draw(pick(st.sampled_from([*keys, str(uuid.uuid4())])), label="key"),
                    principal=data.draw(pick(st.sampled_from([*principals, "arn:aws:iam::1:user/x"])),
                                        label="principal"),
                    operation=data.draw(pick(st.sampled_from([*ops_seen, "Bogus"])), label="operation"),
                    errors_only=data.draw(st.booleans(), label="errors"),
                    since_seq=data.draw(pick(st.integers(0, len(records) + 1)), label="since seq"),
                    until_seq=data.draw(pick(st.integers(0, len(records) + 1)), label="until seq"),
                    since_time=data.draw(pick(near(times)), label="since time"),
                    until_time=data.draw(pick(near(times)), label="until time"),
                )
                newest_first = data.draw(st.booleans(), label="newest first")
                limit = data.draw(pick(st.integers(0, 8)), label="limit")
                expected = [r.seq for r in (reversed(records) if newest_first else records) if matches(f, r)]
                scanned = [r.seq for r in query(snap, f, newest_first=newest_first, use_indexes=False)]
                indexed = [r.seq for r in query(snap, f, newest_first=newest_first)]
                assert scanned == expected
                assert indexed == expected, f
                limited = [r.seq for r in query(snap, f, limit=limit, newest_first=newest_first)]
                assert limited == expected[:limit]


def test_a_filtered_query_reads_only_its_answer(tmp_path) -> None:
    """Cost grows with the answer: the newest 3 records of one key among
    many others are found by reading about 3 records, not the log."""
    with keyledger.open(tmp_path / "ledger", create=True, durability="relaxed") as kms:
        busy, quiet = (kms.create_key().key_metadata.key_id for _ in range(2))
        for i in range(200):
            kms.encrypt(busy, b"x")
            if i % 50 == 0:
                kms.encrypt(quiet, b"y")
        with kms.store.snapshot() as snap:
            reads = []

            class Counting:
                def __getattr__(self, name):
                    return getattr(snap, name)

                def raw_record(self, seq):
                    reads.append(seq)
                    return snap.raw_record(seq)

            found = list(query(Counting(), Filter(key_id=quiet), limit=3))
            assert [r.event.key_id for r in found] == [quiet] * 3
            assert len(reads) == 3
