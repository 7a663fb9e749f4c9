"""Replay: rebuild every projection from the log and compare.

`check(snapshot)` re-verifies the hash chain, folds every record with the
same `evolve` functions the live path uses, and lists every difference
between the rebuilt tables and the live ones. `state_at(snapshot, ...)`
folds only up to a seq or a time, for "what did every key look like then".
`snapshot` is anything with `raw_records()` and `tables()` (the store's
read snapshot), so this module never touches LMDB itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from keyledger import events as ev
from keyledger.projections import MemoryTables, TABLES, apply


class RawRecordLike(Protocol):
    seq: int
    prev_hash: bytes
    hash: bytes
    body: bytes


class SnapshotLike(Protocol):
    def raw_records(self, start: int = 0, stop: int | None = None) -> Iterator[RawRecordLike]: ...
    def tables(self) -> dict[str, dict[bytes, Any]]: ...


@dataclass
class ChainError:
    seq: int
    reason: str


@dataclass
class Report:
    records: int = 0
    chain_error: ChainError | None = None
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chain_error is None and not self.differences


def verified(raws: Iterable[RawRecordLike], report: Report) -> Iterator[ev.Record]:
    """Decode records, checking seq density and the hash chain; stops at the
    first break and notes it in `report`."""
    prev, expected = ev.GENESIS_HASH, 0
    for raw in raws:
        if raw.seq != expected:
            report.chain_error = ChainError(expected, f"record {expected} is missing (next stored is {raw.seq})")
            return
        if raw.prev_hash != prev:
            report.chain_error = ChainError(raw.seq, "prev_hash does not match the previous record's hash")
            return
        if ev.chain_hash(prev, raw.body) != raw.hash:
            report.chain_error = ChainError(raw.seq, "hash does not match the record's bytes")
            return
        try:
            record = ev.decode(raw.body)
        except Exception:
            report.chain_error = ChainError(raw.seq, "the record does not decode")
            return
        if record.seq != raw.seq:
            report.chain_error = ChainError(raw.seq, f"the record says seq {record.seq}")
            return
        prev, expected = raw.hash, expected + 1
        report.records += 1
        yield record


def _describe(table: str, row: bytes) -> str:
    return f"{table}[{row.decode(errors='replace')}]"


def diff(live: dict[str, dict[bytes, Any]], rebuilt: MemoryTables) -> list[str]:
    out = []
    for table in TABLES:
        a, b = live.get(table, {}), rebuilt.rows[table]
        for row in sorted(a.keys() | b.keys()):
            if row not in b:
                out.append(f"{_describe(table, row)}: in the live table but not in the log")
            elif row not in a:
                out.append(f"{_describe(table, row)}: in the log but missing from the live table")
            elif a[row] != b[row]:
                out.append(f"{_describe(table, row)}: live value differs from the replayed one")
    return out


def check(snapshot: SnapshotLike, progress: Callable[[int], None] | None = None) -> Report:
    report = Report()
    tables = MemoryTables()
    for record in verified(snapshot.raw_records(), report):
        apply(tables, record)
        if progress is not None and record.seq % 10_000 == 0:
            progress(record.seq)
    if report.chain_error is None:
        report.differences = diff(snapshot.tables(), tables)
    return report


def state_at(snapshot: SnapshotLike, *, until_seq: int | None = None,
             until_time: int | None = None) -> tuple[MemoryTables, Report]:
    """The projections after every record with seq <= until_seq and
    time <= until_time (either bound may be None)."""
    report = Report()
    tables = MemoryTables()
    for record in verified(snapshot.raw_records(), report):
        if (until_seq is not None and record.seq > until_seq) or \
                (until_time is not None and record.time > until_time):
            break
        apply(tables, record)
    return tables, report
