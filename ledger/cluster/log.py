"""The replicated log on etcd: the store's `ReplicatedLog` (ledger/store/log.py).

Keys, under the cluster's prefix (default `/keyledger/`):

    meta            the ledger's identity (ledger id, origin, region, account,
                    root-key check value), written once by the node that
                    made the cluster
    head            [next seq, last hash, node, time]: every append compares
                    its mod revision, so etcd alone decides who appends next
    log/<seq hex>   one batch (msgpack `store.Batch`), keyed by its first seq
    nodes/<name>    each node's report: applied seq and revision, head hash,
                    URL, time (JSON); compaction and `cluster status` read them

An append is one etcd transaction:

    if mod_revision(head) == the revision this node has applied
    then put head, put log/<first seq>
    else range log/<first seq>.. (the batches this node lacks, a page)

so a node that lost the race gets the winner's batches in the same round
trip. etcd keeps only the tail: batches every live node has applied are
deleted and the history compacted (`compact`).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import msgspec

from keyledger.cluster.etcd import KV, Etcd, EtcdError, EtcdUnavailable, b64, prefix_end
from keyledger.errors import LedgerError
from keyledger.store import Appended, Batch, Behind, LogDiverged, LogGap, LogUnavailable

PAGE = 64  # batches per read
MAX_VALUE = (1 << 20) + (256 << 10)  # under etcd's 1.5 MiB request limit, with the head and framing
_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(Batch)


class Head(msgspec.Struct, frozen=True, array_like=True):
    seq: int  # the next seq
    hash: bytes  # the last record's hash
    node: str = ""
    time: float = 0.0


_head_decoder = msgspec.msgpack.Decoder(Head)


class Layout:
    """The cluster's keys under its prefix."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.meta = prefix + b"meta"
        self.head = prefix + b"head"
        self.log = prefix + b"log/"
        self.log_end = prefix_end(self.log)
        self.nodes = prefix + b"nodes/"
        self.nodes_end = prefix_end(self.nodes)

    def log_key(self, seq: int) -> bytes:
        return self.log + b"%016x" % seq

    def node_key(self, name: str) -> bytes:
        return self.nodes + name.encode()


def decode_head(kv: KV | None) -> tuple[Head, int]:
    """(head, its mod revision); an empty log's head when there is none."""
    if kv is None:
        return Head(0, b"\x00" * 32), 0
    return _head_decoder.decode(kv.value), kv.mod_revision


def _entries(kvs: list[dict[str, Any]] | list[KV]) -> list[tuple[int, Batch]]:
    out = []
    for kv in kvs:
        if isinstance(kv, KV):
            out.append((kv.mod_revision, _batch_decoder.decode(kv.value)))
        else:
            out.append((int(kv.get("mod_revision", 0)), _batch_decoder.decode(base64.b64decode(kv.get("value", "")))))
    return out


def _head_of(responses: list[dict[str, Any]], index: int) -> tuple[Head, int]:
    kvs = responses[index].get("response_range", {}).get("kvs", [])
    if not kvs:
        return decode_head(None)
    kv = kvs[0]
    return _head_decoder.decode(base64.b64decode(kv.get("value", ""))), int(kv.get("mod_revision", 0))


class EtcdLog:
    """The tail of the log in etcd, for one node (`node`)."""

    def __init__(self, etcd: Etcd, layout: Layout, node: str, *, timeout: float = 20.0) -> None:
        self.etcd, self.layout, self.node, self.timeout = etcd, layout, node, timeout
        self.at_head: tuple[int, int] = (0, 0)  # the (seq, revision) of the head seen last

    def append(self, after: int, batch: Batch) -> Appended | Behind:
        value = _batch_encoder.encode(batch)
        if len(value) > MAX_VALUE:
            raise LedgerError(f"a batch of {len(value)} bytes is over the replicated log's limit")
        last = batch.records[-1][32:64] if batch.records else batch.prev_hash
        head = _batch_encoder.encode(Head(batch.first_seq + len(batch.records), last, self.node, time.time()))
        key = self.layout.log_key(batch.first_seq)
        L = self.layout
        empty = not batch.records and not batch.keks  # a check against the head, nothing kept
        try:
            ok, revision, responses = self.etcd.txn(
                [{"key": b64(L.head), "target": "MOD", "result": "EQUAL", "mod_revision": str(after)}],
                [] if empty else [{"request_put": {"key": b64(L.head), "value": b64(head)}},
                                  {"request_put": {"key": b64(key), "value": b64(value)}}],
                [{"request_range": {"key": b64(L.head)}},
                 {"request_range": {"key": b64(key), "range_end": b64(L.log_end), "limit": PAGE}}])
        except EtcdUnavailable as exc:
            raise LogUnavailable(str(exc)) from None
        if ok:
            if not empty:
                self.at_head = (batch.first_seq + len(batch.records), revision)
            return Appended(after if empty else revision)
        current, head_revision = _head_of(responses, 0)
        self.at_head = (current.seq, head_revision)
        entries = _entries(responses[1].get("response_range", {}).get("kvs", []))
        self._check(batch.first_seq, entries, current)
        if entries:
            return Behind(entries)
        if current.hash != batch.prev_hash:
            raise LogDiverged(f"the cluster's head at seq {current.seq} is not this node's")
        return Behind([], head_revision)

    def read(self, start: int) -> list[tuple[int, Batch]]:
        L = self.layout
        try:
            answer = self.etcd.call("kv/txn", {"compare": [], "success": [
                {"request_range": {"key": b64(L.head)}},
                {"request_range": {"key": b64(L.log_key(start)), "range_end": b64(L.log_end), "limit": PAGE}}],
                "failure": []})
        except EtcdUnavailable as exc:
            raise LogUnavailable(str(exc)) from None
        responses = answer.get("responses", [])
        current, head_revision = _head_of(responses, 0)
        self.at_head = (current.seq, head_revision)
        entries = _entries(responses[1].get("response_range", {}).get("kvs", []))
        self._check(start, entries, current)
        return entries

    def _check(self, start: int, entries: list[tuple[int, Batch]], current: Head) -> None:
        if entries and entries[0][1].first_seq != start:
            raise LogGap(f"the cluster's log was compacted past seq {start} (its oldest batch starts at "
                         f"{entries[0][1].first_seq})")
        if not entries and current.seq > start:
            raise LogGap(f"the cluster's log was compacted past seq {start} (its head is at {current.seq})")
        if current.seq < start:
            raise LogDiverged(f"this node has {start} records, the cluster's log only {current.seq}: this node "
                              "was written outside the cluster")

    def head(self) -> tuple[Head, int]:
        try:
            return decode_head(self.etcd.get(self.layout.head))
        except EtcdUnavailable as exc:
            raise LogUnavailable(str(exc)) from None

    def close(self) -> None:
        self.etcd.close()

    # -- the tail's upkeep ------------------------------------------------------------

    def reports(self) -> dict[str, dict[str, Any]]:
        _, kvs, _ = self.etcd.range(self.layout.nodes, self.layout.nodes_end)
        out = {}
        for kv in kvs:
            try:
                out[kv.key[len(self.layout.nodes):].decode()] = json.loads(kv.value)
            except ValueError:
                continue
        return out

    def report(self, values: dict[str, Any]) -> None:
        self.etcd.put(self.layout.node_key(self.node), json.dumps({**values, "time": time.time()}).encode())

    def compact(self, *, node_timeout: float) -> dict[str, int]:
        """Delete the batches every live node has applied (a node silent for
        `node_timeout` seconds no longer holds the tail back: it will
        re-bootstrap) and compact etcd's history up to now. Returns what
        was done."""
        now = time.time()
        live = [r for r in self.reports().values()
                if now - float(r.get("time", 0)) < node_timeout and isinstance(r.get("applied_seq"), int)]
        if not live:
            return {"deleted": 0, "revision": 0}
        floor = min(int(r["applied_seq"]) for r in live)
        try:
            deleted = self.etcd.delete_range(self.layout.log, self.layout.log_key(floor))
            revision = self.etcd.range(self.layout.head)[0]
            self.etcd.compact(revision)
        except EtcdError:
            raise
        return {"deleted": deleted, "revision": revision, "floor": floor}
