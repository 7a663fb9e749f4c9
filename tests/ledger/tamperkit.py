"""Editing a ledger's LMDB file directly, as someone with write access to
the file would (no keyledger code on the write path), for the audit tests."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from keyledger import audit as audit_
from keyledger import events as ev
from keyledger.projections import merkle
from keyledger.store import Head, Store

SEQ = struct.Struct(">Q")
NODE = struct.Struct(">BQ")  # a Merkle node's key in the `audit` table is b"M" + NODE
TABLES = ("records", "meta", "audit", "checkpoints", "keks", "keys", "aliases", "usage", "principals", "grants")


@contextmanager
def raw(home: Path) -> Iterator[tuple[lmdb.Transaction, dict[str, Any]]]:
    """One write transaction on the file, committed at the end."""
    env = lmdb.open(str(home), max_dbs=32)
    try:
        dbs = {name: env.open_db(name.encode()) for name in TABLES}
        with env.begin(write=True) as txn:
            yield txn, dbs
    finally:
        env.close()


def verify(home: Path, *extra: bytes, verifier: tuple[str, bytes] | None = None) -> audit_.VerifyReport:
    store = Store(str(home), readonly=True)
    try:
        with store.snapshot() as snap:
            return audit_.verify(snap, extra_checkpoints=extra, verifier=verifier)
    finally:
        store.close()


def frontier_of_records(txn: lmdb.Transaction, dbs: dict[str, Any], n: int) -> merkle.Frontier:
    frontier: merkle.Frontier = ()
    for s in range(n):
        body = bytes(txn.get(SEQ.pack(s), db=dbs["records"]))[64:]
        frontier, _ = merkle.push(frontier, s, merkle.leaf_hash(body))
    return frontier


def cut_to(txn: lmdb.Transaction, dbs: dict[str, Any], n: int) -> None:
    """Keep records [0, n): drop the rest and their Merkle nodes, and point
    the head (with its copy of the right edge) at record n - 1, as a careful
    attacker would."""
    head = Head.unpack(txn.get(b"head", db=dbs["meta"]))
    for seq in range(n, head.seq):
        assert txn.delete(SEQ.pack(seq), db=dbs["records"])
    for key, _ in list(txn.cursor(db=dbs["audit"])):
        if key[:1] == b"M":
            level, index = NODE.unpack(key[1:])
            if (index + 1) << level > n:
                txn.delete(key, db=dbs["audit"])
    last = bytes(txn.get(SEQ.pack(n - 1), db=dbs["records"]))
    txn.put(b"head", Head(n, last[32:64], ev.decode(last[64:]).time,
                          frontier_of_records(txn, dbs, n)).pack(), db=dbs["meta"])
