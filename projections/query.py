"""Querying the trail: filtered reads of the log through the audit indexes.

A query picks the most selective index among its filters (key, principal,
operation, errors), walks that index's rows for the term inside the seq
bounds, newest or oldest first, and checks the other filters on each record
it reads; so its cost grows with the answer, not with the log. Time bounds
become seq bounds by bisection, since record times never decrease.
`use_indexes=False` runs the same filter as a full scan (what the tests
compare against).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from keyledger import events as ev
from keyledger.policy import address_in
from keyledger.projections import indexes


class QuerySnapshot(Protocol):
    def head(self) -> Any: ...
    def raw_record(self, seq: int) -> Any: ...
    def raw_records(self, start: int = 0, stop: int | None = None) -> Iterator[Any]: ...
    def index_seqs(self, index: str, term: bytes, *, lo: int = 0, hi: int | None = None,
                   reverse: bool = False) -> Iterator[int]: ...


@dataclass(frozen=True)
class Filter:
    key_id: str | None = None  # a bare key id (resolve aliases and ARNs before)
    principal: str | None = None
    operation: str | None = None  # AWS operation name (eventName)
    errors_only: bool = False
    since_seq: int | None = None  # inclusive
    until_seq: int | None = None  # inclusive
    since_time: int | None = None  # inclusive, microseconds
    until_time: int | None = None  # inclusive, microseconds
    region: str | None = None  # a region scope: "" for the ledger's initial region (Record.scope)
    # the address or network (CIDR) requests came from over the network (Record.source; no index: a scan)
    source: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    # the access key id that signed the requests (Record.access_key; no index: a scan, or --principal's)
    access_key: str | None = None

    def matches(self, record: ev.Record) -> bool:
        if self.region is not None and record.scope != self.region:
            return False
        if self.source is not None and not _from(record, self.source):
            return False
        if self.access_key is not None and record.access_key != self.access_key:
            return False
        if self.key_id is not None and self.key_id not in ev.key_ids_of(record.event):
            return False
        if self.principal is not None and record.principal != self.principal:
            return False
        if self.operation is not None and record.operation != self.operation:
            return False
        if self.errors_only and not isinstance(record.event, ev.RequestDenied):
            return False
        if self.since_seq is not None and record.seq < self.since_seq:
            return False
        if self.until_seq is not None and record.seq > self.until_seq:
            return False
        if self.since_time is not None and record.time < self.since_time:
            return False
        if self.until_time is not None and record.time > self.until_time:
            return False
        return True


def _from(record: ev.Record, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Did the record's request come from an address in `network`? (A library or CLI call came from none.)"""
    return isinstance(record.source, str) and address_in(record.source, network)


def first_seq_at_or_after(snapshot: QuerySnapshot, time: int, n: int) -> int:
    """The smallest seq whose record time is >= time (n if none)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if ev.decode(snapshot.raw_record(mid).body).time < time:
            lo = mid + 1
        else:
            hi = mid
    return lo


def bounds(snapshot: QuerySnapshot, f: Filter) -> tuple[int, int]:
    """[lo, hi) seqs that can match the filter's seq and time bounds."""
    n = snapshot.head().seq
    lo, hi = 0, n
    if f.since_seq is not None:
        lo = max(lo, f.since_seq)
    if f.until_seq is not None:
        hi = min(hi, f.until_seq + 1)
    if f.since_time is not None:
        lo = max(lo, first_seq_at_or_after(snapshot, f.since_time, n))
    if f.until_time is not None:
        hi = min(hi, first_seq_at_or_after(snapshot, f.until_time + 1, n))
    return lo, max(lo, hi)


def _index_choice(f: Filter) -> tuple[str, bytes] | None:
    if f.key_id is not None:
        return "idx_key", f.key_id.encode()
    if f.principal is not None:
        return "idx_principal", f.principal.encode()
    if f.errors_only:
        return "idx_error", indexes.ERROR_TERM
    if f.operation is not None:
        return "idx_operation", f.operation.encode()
    return None


def query(snapshot: QuerySnapshot, f: Filter, *, limit: int | None = None, newest_first: bool = True,
          use_indexes: bool = True) -> Iterator[ev.Record]:
    lo, hi = bounds(snapshot, f)
    choice = _index_choice(f) if use_indexes else None
    if choice is not None:
        seqs: Iterator[int] = snapshot.index_seqs(choice[0], choice[1], lo=lo, hi=hi, reverse=newest_first)
    elif use_indexes:
        seqs = iter(range(hi - 1, lo - 1, -1) if newest_first else range(lo, hi))
    else:  # the reference: read every record
        seqs = iter(range(snapshot.head().seq - 1, -1, -1) if newest_first else range(snapshot.head().seq))
    found = 0
    for seq in seqs:
        if limit is not None and found >= limit:
            return
        record = ev.decode(snapshot.raw_record(seq).body)
        if f.matches(record):
            found += 1
            yield record
