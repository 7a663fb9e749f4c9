"""The head's copy of the Merkle tree's right edge is checked by verify and
by checkpoint: an edge that disagrees with the records would make every
later append build a wrong tree."""

from __future__ import annotations

from pathlib import Path

import pytest

import keyledger
from keyledger import audit, checkpoint
from keyledger.errors import LedgerError
from keyledger.store import Head


def _tamper_head_frontier(kms) -> None:
    env, meta = kms.store.env, kms.store._dbs["meta"]
    with env.begin(write=True) as txn:
        head = Head.unpack(txn.get(b"head", db=meta))
        level, h = head.frontier[-1]
        bad = head.frontier[:-1] + ((level, bytes(32)),)
        txn.put(b"head", Head(head.seq, head.hash, head.time, bad).pack(), db=meta)


def test_verify_reports_a_wrong_right_edge(tmp_path: Path) -> None:
    with keyledger.open(tmp_path, create=True) as kms:
        key = kms.create_key().key_metadata.key_id
        for _ in range(6):
            kms.encrypt(key, b"x")
        verifier = checkpoint.parse_verifier_key(kms.verifier_key())
        with kms.store.snapshot() as snap:
            assert audit.verify(snap, verifier=verifier).ok
        _tamper_head_frontier(kms)
        with kms.store.snapshot() as snap:
            report = audit.verify(snap, verifier=verifier)
        assert not report.ok
        assert [p.kind for p in report.problems] == ["tree"]


def test_checkpoint_refuses_a_wrong_right_edge(tmp_path: Path) -> None:
    with keyledger.open(tmp_path, create=True) as kms:
        key = kms.create_key().key_metadata.key_id
        kms.encrypt(key, b"x")
        kms.checkpoint()
        kms.encrypt(key, b"y")
        _tamper_head_frontier(kms)
        with pytest.raises(LedgerError, match="Merkle tree"):
            kms.checkpoint()
