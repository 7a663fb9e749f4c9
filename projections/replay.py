"""Replay: rebuild every projection from the log and compare.

`check(snapshot)` re-verifies the hash chain, folds every record with the
same `evolve` functions the live path uses, and lists every difference
between the rebuilt tables and the live ones. `state_at(snapshot, ...)`
folds only up to a seq or a time, for "what did every key look like then".
`snapshot` is anything with `raw_records()` and `tables()` (the store's
read snapshot), so this module never touches LMDB itself.

`state_view(tables, ...)` is the one output shape of "every key at a
point" (AWS-style PascalCase), shared by `replay --until` and
`forensics at`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from keyledger import events as ev
from keyledger.projections import MemoryTables, TABLES, apply, decode_row
from keyledger.projections.state import KeyState


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


def live_tables(snapshot: Any) -> tuple[dict[str, dict[bytes, Any]], list[str]]:
    """The live projection rows, decoded, and a description of every row
    that does not decode (a flipped byte can leave msgpack unreadable)."""
    raw_rows = getattr(snapshot, "raw_rows", None)
    if raw_rows is None:
        return snapshot.tables(), []
    tables: dict[str, dict[bytes, Any]] = {}
    broken = []
    for table in TABLES:
        rows = tables[table] = {}
        for row, data in raw_rows(table):
            try:
                rows[row] = decode_row(table, data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                broken.append(f"{_describe(table, row)}: the live row does not decode")
    return tables, broken


def _field_path(a: Any, b: Any, path: str = "") -> str:
    """Where two row values first differ, e.g. `.versions[0].kcv`."""
    if type(a) is not type(b):
        return path
    if isinstance(a, msgspec.Struct):
        for name in a.__struct_fields__:
            x, y = getattr(a, name), getattr(b, name)
            if x != y:
                return _field_path(x, y, f"{path}.{name}")
        return path
    if isinstance(a, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _field_path(x, y, f"{path}[{i}]")
    if isinstance(a, dict) and a.keys() == b.keys():
        for k in sorted(a):
            if a[k] != b[k]:
                return _field_path(a[k], b[k], f"{path}[{k!r}]")
    return path


def first_difference(live: dict[str, dict[bytes, Any]], rebuilt: MemoryTables) -> str | None:
    """The first row (in table order, then row order) where the live
    projections and the folded log disagree, with the field that differs."""
    for table in TABLES:
        a, b = live.get(table, {}), rebuilt.rows[table]
        for row in sorted(a.keys() | b.keys()):
            if row not in b:
                return f"{_describe(table, row)}: in the live table but not in the log"
            if row not in a:
                return f"{_describe(table, row)}: in the log but missing from the live table"
            if a[row] != b[row]:
                where = _field_path(a[row], b[row])
                return f"{_describe(table, row)}{where}: live value differs from the replayed one"
    return None


def check(snapshot: SnapshotLike, progress: Callable[[int], None] | None = None) -> Report:
    report = Report()
    tables = MemoryTables()
    for record in verified(snapshot.raw_records(), report):
        apply(tables, record)
        if progress is not None and record.seq % 10_000 == 0:
            progress(record.seq)
    if report.chain_error is None:
        live, broken = live_tables(snapshot)
        report.differences = broken + diff(live, tables)
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


# -- the shared shape of "every key at a point" ---------------------------------------

def iso(us: int | None) -> str | None:
    """µs since the epoch as ISO 8601 UTC with a Z, as the CLIs print times."""
    if us is None:
        return None
    return ev.from_us(us).isoformat().replace("+00:00", "Z")


def key_view(state: KeyState, arn: str) -> dict[str, Any]:
    """One key's state, AWS-style names; absent members left out."""
    view: dict[str, Any] = {
        "KeyId": state.key_id, "Arn": arn, "KeyState": state.state, "Description": state.description,
        "CreationDate": iso(state.created), "DeletionDate": iso(state.deletion_date),
        "Versions": [{"Version": v.version, "CreationDate": iso(v.created),
                      **({"RotationType": v.rotation_type} if v.rotation_type else {})}
                     for v in state.versions],
        "KeyRotationEnabled": state.rotation_enabled,
        "RotationPeriodInDays": state.rotation_period_days if state.rotation_enabled else None,
        "NextRotationDate": iso(state.next_rotation),
        "OnDemandRotations": state.on_demand_rotations,
        "Aliases": list(state.aliases),
        "Tags": [{"TagKey": k, "TagValue": v} for k, v in sorted(state.tags.items())],
    }
    return {k: v for k, v in view.items() if v is not None}


def state_view(tables: MemoryTables, *, region: str, account: str, until_seq: int | None = None,
               until_time: int | None = None) -> dict[str, Any]:
    """Every key's state at a point, the one shape `replay --until` and
    `forensics at` print: {"Until": {"Seq": n} | {"Time": iso}, "Keys": [...]},
    keys oldest first."""
    states = sorted(tables.rows["keys"].values(), key=lambda s: (s.created, s.key_id))
    # a key of another region (a replica among them) has its region in its row and ARN
    keys = [key_view(s, f"arn:aws:kms:{s.region or region}:{account}:key/{s.key_id}") for s in states]
    until: dict[str, Any] = {"Seq": until_seq} if until_seq is not None else {"Time": iso(until_time)}
    return {"Until": until, "Keys": keys}


def b64(digest: bytes) -> str:
    """Hashes and Merkle roots are printed in base64 everywhere, as in C2SP notes."""
    return base64.b64encode(digest).decode()
