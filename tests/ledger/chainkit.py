"""The test suite's own hash-chain check, written apart from the library's
(`projections.replay.verified`) so that neither is tested with itself."""

from __future__ import annotations

import hashlib

from keyledger import events as ev


def chain_hashes(snap) -> list[bytes]:
    """Dense seq, prev_hash links, hash = SHA-256(prev || body), each record
    decodes as its own seq, and the stored head names the last record.
    Returns every record's hash, in order."""
    prev, hashes = ev.GENESIS_HASH, []
    for raw in snap.raw_records():
        n = len(hashes)
        assert raw.seq == n, f"seq gap at {n}"
        assert raw.prev_hash == prev, f"broken link at {n}"
        assert hashlib.sha256(prev + raw.body).digest() == raw.hash, f"bad hash at {n}"
        assert ev.decode(raw.body).seq == n, f"record {n} says another seq"
        prev = raw.hash
        hashes.append(prev)
    head = snap.head()
    assert (head.seq, head.hash) == (len(hashes), prev), "the head does not name the last record"
    return hashes


def verify_chain(snap) -> int:
    """chain_hashes, returning the record count."""
    return len(chain_hashes(snap))
