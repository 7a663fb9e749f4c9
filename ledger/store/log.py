"""The log side of the store, for a node of a cluster: what a replicated log
must do (`ReplicatedLog`: append a batch after an expected revision, read a
range) and the values that cross it. Nothing here touches LMDB."""

from __future__ import annotations

from typing import Protocol

import msgspec
from keyledger.errors import LedgerError

BATCH_BYTES = 1 << 20  # one append's records at most (etcd refuses requests over 1.5 MiB)
REVISION = "cluster_rev"  # meta: the replicated log's revision this node has applied


class Batch(msgspec.Struct, frozen=True, array_like=True):
    """One commit as a replicated log carries it: the records exactly as
    stored, so a node that applies it re-checks the chain, and the keks rows
    the commit set (None: deleted), so every node can use every key and a
    deletion shreds on every node at the same point of the log."""

    id: bytes  # random: lets the writer recognise its own batch after an unanswered append
    node: str
    first_seq: int
    prev_hash: bytes
    records: list[bytes]  # prev_hash || hash || canonical record bytes, seq first_seq, first_seq + 1, ...
    keks: list[tuple[str, bytes | None]] = []


class LogUnavailable(LedgerError):
    """The replicated log did not answer; an append may or may not have happened."""


class LogGap(LedgerError):
    """The replicated log no longer holds the batches after this node's
    head (compacted): the node must copy a peer's snapshot (re-bootstrap)."""


class LogDiverged(LedgerError):
    """The replicated log does not continue this node's chain: never applied."""


class Appended:
    """`ReplicatedLog.append` succeeded: the batch is at `revision`."""

    __slots__ = ("revision",)

    def __init__(self, revision: int) -> None:
        self.revision = revision


class Behind:
    """`ReplicatedLog.append` lost: the log had moved past `after`;
    `entries` are the (revision, batch) pairs this node lacks (a first page).
    With no entries, `head_revision` is the revision of the head this node
    already has (the node that made the cluster wrote it without a batch)."""

    __slots__ = ("entries", "head_revision")

    def __init__(self, entries: list[tuple[int, Batch]], head_revision: int | None = None) -> None:
        self.entries = entries
        self.head_revision = head_revision


class ReplicatedLog(Protocol):
    """The tail of the log, ordered outside this process (DESIGN.md section 8):
    append a batch after an expected head, read a range, close."""

    node: str
    timeout: float  # how long a commit waits for an unavailable log before failing

    def append(self, after: int, batch: Batch) -> Appended | Behind:
        """Append `batch` if the log's last revision is `after`. Raises
        LogUnavailable when the outcome is unknown. An empty batch (no
        records, no keks) is not kept: it only checks that `after` is still
        the head (a decision that wrote nothing was made at the head)."""
        ...

    def read(self, start: int) -> list[tuple[int, Batch]]:
        """The batches from the one starting at seq `start` on (a page), with
        their revisions; [] at the head. Raises LogGap if that batch is gone."""
        ...

    def close(self) -> None:
        ...
