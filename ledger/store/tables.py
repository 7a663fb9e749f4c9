"""Reading and writing the tables inside one LMDB transaction: the head,
raw records, the write view an operation appends through (records, Merkle
nodes, indexes and projections in one transaction) and the read snapshot."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

import lmdb
import msgspec
from keyledger import events as ev
from keyledger import projections
from keyledger.errors import LedgerError
from keyledger.projections import indexes, merkle
from keyledger.store.log import REVISION, LogDiverged

_SEQ = struct.Struct(">Q")
_HEAD = struct.Struct(">Q32sQ")  # next seq, last hash, last record time
_NODE = struct.Struct(">BQ")  # merkle (level, index)
_TABLES = ("records", "meta", "keks", "checkpoints", "audit", *projections.TABLES)


def _node_key(level: int, index: int) -> bytes:
    return indexes.MERKLE_NAMESPACE + _NODE.pack(level, index)
INITIAL_MAP_SIZE = 64 << 20
GROW_AT = 0.70  # grow the map once this fraction is used
DURABILITY_MODES = ("durable", "relaxed")


class Head:
    """Next seq, last hash, last time, and the Merkle tree's right edge."""

    __slots__ = ("seq", "hash", "time", "frontier")

    def __init__(self, seq: int, hash: bytes, time: int, frontier: merkle.Frontier = ()) -> None:
        self.seq, self.hash, self.time, self.frontier = seq, hash, time, frontier

    def pack(self) -> bytes:
        global _last_head
        packed = _HEAD.pack(self.seq, self.hash, self.time) + b"".join(
            [bytes((level,)) + h for level, h in self.frontier])
        _last_head = (packed, self)  # the next commit reads these bytes back: no unpack then
        return packed

    @classmethod
    def unpack(cls, data: bytes | None) -> Head:
        if data is None:
            return cls(0, ev.GENESIS_HASH, 0)
        last = _last_head
        if data == last[0]:  # byte-equal to the head last packed (a Head is never mutated)
            return last[1]
        seq, digest, time = _HEAD.unpack_from(data)
        rest = data[_HEAD.size:]
        frontier = tuple((rest[i], bytes(rest[i + 1:i + 33])) for i in range(0, len(rest), 33))
        return cls(seq, digest, time, frontier)


_last_head: tuple[bytes, Head] = (b"", Head(0, ev.GENESIS_HASH, 0))


class RawRecord:
    """A record as stored, before decoding (what audit tools verify)."""

    __slots__ = ("seq", "prev_hash", "hash", "body")

    def __init__(self, seq: int, value: bytes) -> None:
        self.seq = seq
        self.prev_hash = value[:32]
        self.hash = value[32:64]
        self.body = value[64:]


# -- the log side: what a replicated log beneath the store must do ----------------


class _Tables:
    """projections.Tables over a write transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> None:
        self._txn, self._dbs = txn, dbs

    def get(self, table: str, row: bytes) -> Any:
        data = self._txn.get(row, db=self._dbs[table])
        return None if data is None else projections.decode_row(table, data)

    def put(self, table: str, row: bytes, value: Any) -> None:
        if value is None:
            self._txn.delete(row, db=self._dbs[table])
        else:
            self._txn.put(row, projections.encode_row(value), db=self._dbs[table])

    def scan(self, table: str, *, after: bytes | None = None, prefix: bytes = b"",
             limit: int | None = None) -> list[tuple[bytes, Any]]:
        """Up to `limit` rows in key order, strictly after `after`, with `prefix`."""
        return list(_scan(self._txn, self._dbs[table], table, after, prefix, limit))


def _scan(txn: lmdb.Transaction[bytes], db: Any, table: str, after: bytes | None, prefix: bytes,
          limit: int | None) -> Iterator[tuple[bytes, Any]]:
    cur = txn.cursor(db=db)
    found = cur.set_range(max(after or b"", prefix))
    n = 0
    while found and (limit is None or n < limit):
        key = bytes(cur.key())
        if not key.startswith(prefix):
            break
        if after is None or key > after:
            yield key, projections.decode_row(table, cur.value())
            n += 1
        found = cur.next()


class WriteView(_Tables):
    """What a work item sees: the projections as of everything before it in
    the log, the keks table, and `append` to add records."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any], head: Head, audit: bool = True,
                 keep_raw: bool = False) -> None:
        super().__init__(txn, dbs)
        self.head = head
        self.appended: list[ev.Record] = []
        self._audit = audit
        # what a replicated log must carry besides the events (a node of a cluster)
        self.raw: list[bytes] | None = [] if keep_raw else None
        self.kek_changes: list[tuple[str, bytes | None]] = []
        self.meta_changes: list[str] = []

    @property
    def indexed(self) -> bool:
        """Does this ledger keep the audit indexes (`index_seqs` answers)?"""
        return self._audit

    def kek(self, key_id: str) -> bytes | None:
        return self._txn.get(key_id.encode(), db=self._dbs["keks"])

    def keks(self) -> list[tuple[str, bytes]]:
        return [(bytes(k).decode(), bytes(v)) for k, v in self._txn.cursor(db=self._dbs["keks"])]

    def record(self, seq: int) -> ev.Record | None:
        """The record at `seq`, appended before or earlier in this transaction."""
        value = self._txn.get(_SEQ.pack(seq), db=self._dbs["records"])
        return None if value is None else ev.decode(value[64:])

    def index_seqs(self, index: str, term: bytes, *, lo: int = 0, hi: int | None = None,
                   reverse: bool = False) -> Iterator[int]:
        """As `Snapshot.index_seqs`, over this transaction (empty without audit tables)."""
        return _index_seqs(self._txn, self._dbs, index, term, lo, hi, reverse)

    def put_meta(self, name: str, value: bytes) -> None:
        self.meta_changes.append(name)
        self._txn.put(name.encode(), value, db=self._dbs["meta"])

    def put_kek(self, key_id: str, wrapped: bytes | None) -> None:
        self.kek_changes.append((key_id, wrapped))
        if wrapped is None:
            self._txn.delete(key_id.encode(), db=self._dbs["keks"])
        else:
            self._txn.put(key_id.encode(), wrapped, db=self._dbs["keks"])

    def append(self, events: Sequence[ev.Event], *, operation: str, principal: str,
               request_id: str, time: int, region: str | msgspec.UnsetType = msgspec.UNSET,
               source: str | msgspec.UnsetType = msgspec.UNSET,
               access_key: str | msgspec.UnsetType = msgspec.UNSET) -> list[ev.Record]:
        """Append events as records and fold them into the projections
        (and, with audit tables on, the Merkle tree and the indexes)."""
        out = []
        head = self.head
        seq, prev, frontier = head.seq, head.hash, head.frontier
        time = max(time, head.time)  # the log's clock never runs backwards
        put, dbs = self._txn.put, self._dbs
        records_db, audit_db = dbs["records"], dbs["audit"]
        prefixes = indexes.prefixes(principal, operation)
        raw = self.raw
        for event in events:
            record = ev.Record(seq, time, request_id, principal, operation, event, region=region, source=source,
                               access_key=access_key)
            body = ev.canonical(record)
            digest = ev.chain_hash(prev, body)
            seq_key = _SEQ.pack(seq)
            value = prev + digest + body
            if not put(seq_key, value, db=records_db, append=True, overwrite=False):
                raise LedgerError(f"out-of-order append at seq {seq}: the log is corrupt")
            projections.apply(self, record)
            if self._audit:
                frontier, made = merkle.push(frontier, seq, merkle.leaf_hash(body))
                for level, index, h in made:
                    put(_node_key(level, index), h, db=audit_db)
                for prefix in prefixes:
                    put(prefix + seq_key, b"", db=audit_db)
                for key in indexes.event_rows(event, seq_key):
                    put(key, b"", db=audit_db)
            if raw is not None:
                raw.append(value)
            seq, prev = seq + 1, digest
            out.append(record)
        self.head = Head(seq, prev, time, frontier)
        self.appended.extend(out)
        return out

    def apply_stored(self, values: Sequence[bytes]) -> list[ev.Record]:
        """Append records another node wrote (as stored: prev_hash || hash ||
        canonical bytes) through the same path as `append`, after checking
        that each continues this log's chain at its seq."""
        out = []
        for value in values:
            head = self.head
            stored = RawRecord(head.seq, value)
            if stored.prev_hash != head.hash or ev.chain_hash(head.hash, stored.body) != stored.hash:
                raise LogDiverged(f"record {head.seq} from the replicated log does not continue this "
                                  "node's hash chain")
            record = ev.decode(stored.body)
            if record.seq != head.seq or ev.canonical(record) != stored.body:
                raise LogDiverged(f"record {head.seq} from the replicated log is not canonical at its seq")
            self.head = Head(head.seq, head.hash, record.time, head.frontier)
            # `append` rebuilds the same bytes: the record's own time, request and principal
            made = self.append([record.event], operation=record.operation, principal=record.principal,
                               request_id=record.request_id, time=record.time, region=record.region,
                               source=record.source, access_key=record.access_key)
            if self.head.hash != stored.hash:  # e.g. a record format this version does not write
                raise LogDiverged(f"record {head.seq} from the replicated log does not re-encode to its "
                                  "stored bytes (a node of another keyledger version?)")
            out.extend(made)
        return out


def _index_seqs(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], index: str, term: bytes, lo: int,
                hi: int | None, reverse: bool) -> Iterator[int]:
    """Seqs in [lo, hi) whose records carry `term` in `index`, in order."""
    cur = txn.cursor(db=dbs["audit"])
    prefix = indexes.term_prefix(index, term)
    if reverse:
        top = prefix + _SEQ.pack(hi) if hi is not None else prefix + b"\xff" * 9
        found = cur.set_range(top)
        found = cur.prev() if found else cur.last()
        while found:
            key = cur.key()
            if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                if key < prefix:
                    return
                found = cur.prev()
                continue
            seq = indexes.seq_of(key)
            if seq < lo:
                return
            if hi is None or seq < hi:
                yield seq
            found = cur.prev()
    else:
        found = cur.set_range(prefix + _SEQ.pack(lo))
        while found:
            key = cur.key()
            if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                return
            seq = indexes.seq_of(key)
            if hi is not None and seq >= hi:
                return
            yield seq
            found = cur.next()


class Snapshot:
    """A read transaction's view: the log and the projections at one point."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> None:
        self._txn, self._dbs = txn, dbs

    def head(self) -> Head:
        return Head.unpack(self._txn.get(b"head", db=self._dbs["meta"]))

    def raw_records(self, start: int = 0, stop: int | None = None) -> Iterator[RawRecord]:
        """Stored records with seq in [start, stop), in key order."""
        cur = self._txn.cursor(db=self._dbs["records"])
        if not cur.set_range(_SEQ.pack(start)):
            return
        for key, value in cur:
            seq = _SEQ.unpack(key)[0]
            if stop is not None and seq >= stop:
                break
            yield RawRecord(seq, value)

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[ev.Record]:
        for raw in self.raw_records(start, stop):
            yield ev.decode(raw.body)

    def raw_record(self, seq: int) -> RawRecord | None:
        value = self._txn.get(_SEQ.pack(seq), db=self._dbs["records"])
        return None if value is None else RawRecord(seq, value)

    def node(self, level: int, index: int) -> bytes:
        if level == 0:  # leaves are not stored: they are their record's hash
            raw = self.raw_record(index)
            if raw is None:
                raise KeyError(f"no record {index}")
            return merkle.leaf_hash(raw.body)
        h = self._txn.get(_node_key(level, index), db=self._dbs["audit"])
        if h is None:
            raise KeyError(f"no merkle node at level {level}, index {index}")
        return h

    def index_seqs(self, index: str, term: bytes, *, lo: int = 0, hi: int | None = None,
                   reverse: bool = False) -> Iterator[int]:
        """Seqs in [lo, hi) whose records carry `term` in `index`, in order."""
        return _index_seqs(self._txn, self._dbs, index, term, lo, hi, reverse)

    def kek(self, key_id: str) -> bytes | None:
        return self._txn.get(key_id.encode(), db=self._dbs["keks"])

    def get(self, table: str, row: bytes) -> Any:
        data = self._txn.get(row, db=self._dbs[table])
        return None if data is None else projections.decode_row(table, data)

    def scan(self, table: str, *, prefix: bytes = b"") -> Iterator[tuple[bytes, Any]]:
        """The table's rows with `prefix`, decoded, in key order (as a write view's `scan`)."""
        return _scan(self._txn, self._dbs[table], table, None, prefix, None)

    def checkpoints(self) -> list[bytes]:
        """Stored signed checkpoints, oldest (smallest tree) first."""
        return [bytes(v) for _, v in self._txn.cursor(db=self._dbs["checkpoints"])]

    def meta(self) -> dict[str, bytes]:
        return {bytes(k).decode(): bytes(v) for k, v in self._txn.cursor(db=self._dbs["meta"])}

    def meta_value(self, name: str) -> bytes | None:
        found = self._txn.get(name.encode(), db=self._dbs["meta"])
        return None if found is None else bytes(found)

    def raw_rows(self, table: str) -> Iterator[tuple[bytes, bytes]]:
        """Every row of a table, undecoded: audit reads rows that may not decode."""
        for k, v in self._txn.cursor(db=self._dbs[table]):
            yield bytes(k), bytes(v)

    def tables(self) -> dict[str, dict[bytes, Any]]:
        """Every live projection row, decoded."""
        return {table: {bytes(k): projections.decode_row(table, v)
                        for k, v in self._txn.cursor(db=self._dbs[table])}
                for table in projections.TABLES}


def _revision(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> int:
    value = txn.get(REVISION.encode(), db=dbs["meta"])
    return 0 if value is None else int(_SEQ.unpack(value)[0])
