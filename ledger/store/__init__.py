"""The store: the only package that touches LMDB.

One LMDB environment is one ledger. Its tables:

- `records`: the append-only log, key = 8-byte big-endian seq (dense from 0),
  value = prev_hash (32) || hash (32) || canonical record bytes, where
  hash = SHA-256(prev_hash || canonical bytes). Written with append=True.
- `meta`: format version, region, account, the root-key check value, and
  the head (next seq, last hash, last time).
- `keys`, `aliases`, `usage`: the live projections, updated by
  `projections.apply` in the same transaction as the records they fold.
- `audit`: the RFC 6962 tree over the records (every complete interior
  subtree hash, key = "M" || level (1) || index (8)) and the audit indexes
  (projections.indexes, one namespace byte each), written in the append
  transaction. One table, so a small append dirties one extra B-tree.
- `checkpoints`: signed tree heads, key = tree size.
- `keks`: the one mutable secret table, key id -> KEK wrapped under the root
  key. Deleting a row crypto-shreds that key.

Writes go through `submit(work)`: group commit. Concurrent callers queue
their work; one of them (the leader) runs the whole queue in one write
transaction, commits once (synced in `durable` mode), and wakes the others.
If an item fails, the batch runs again with each item in its own nested
transaction, so a failing item leaves nothing behind. A work item may
therefore run twice (so may every item of a batch that met a full map): it
keeps its effects inside the view, and the service's caches answer only for
what the transaction reads. In `relaxed` mode commits are not synced; a
background thread syncs every `sync_interval` seconds, so an OS crash or power loss can
lose at most that window of acknowledged requests (a process crash loses
nothing: committed pages are already in the OS page cache).

The log side, for a node of a cluster (`keyledger.cluster`): with `log` set
to a `ReplicatedLog`, a commit is also an append to that log after the
revision this node has applied (`Batch`: the records as stored, and the keks
rows the batch sets). If another node appended first, the transaction is
aborted, the winner's batches are applied through the same record path
(verifying the chain) and the work runs again against the new state; if the
log cannot say whether the append happened, the node catches up and looks
for its own batch. `catch_up` applies what other nodes appended.
"""

from keyledger.store.core import Store
from keyledger.store.files import check_data_file
from keyledger.store.log import (
    BATCH_BYTES,
    REVISION,
    Appended,
    Batch,
    Behind,
    LogDiverged,
    LogGap,
    LogUnavailable,
    ReplicatedLog,
)
from keyledger.store.tables import (
    DURABILITY_MODES,
    GROW_AT,
    INITIAL_MAP_SIZE,
    Head,
    RawRecord,
    Snapshot,
    WriteView,
)

__all__ = ["Store", "WriteView", "Snapshot", "Head", "RawRecord", "check_data_file", "INITIAL_MAP_SIZE",
           "GROW_AT", "DURABILITY_MODES", "Batch", "BATCH_BYTES", "REVISION", "Appended", "Behind",
           "LogDiverged", "LogGap", "LogUnavailable", "ReplicatedLog"]
