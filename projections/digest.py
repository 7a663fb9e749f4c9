"""The projection-state digest a signed checkpoint commits to.

A checkpoint of size N signs the Merkle root of the records [0, N) and,
since this module, the digest of the projections `fold(evolve, log[:N])`:
every row of every projection table (keys with their policies and
versions, aliases, grants, principals with their IAM policies, usage).
`audit verify` folds the log, recomputes the digest at each checkpoint
that carries one and compares: a doctored policy or grant row that the
service was reading when it signed is caught against the signature, not
against the (writable) file.

The digest is an RFC 6962 Merkle tree hash over one leaf per row, in the
order (table, row key) with tables in the order of `DIGEST_TABLES`
(the current version's):

    leaf = msgpack([table, row key, canonical(value)])

`canonical` turns a row struct into a map of its fields, leaving out every
field equal to its default, so a field added later with a default (msgspec's
schema-evolution rule) does not change the digest of old rows, and old
checkpoints keep verifying. A new projection table needs a new digest
version (a new `checkpoint.STATE_LINE` label); `tests` pin the table list.
Each version's tables extend the previous version's, so a version's digest
is the same tree over the rows of its own tables: v1 (keys, aliases, usage,
principals, grants) and v2 (v1 + parameters, the parameter store). A
checkpoint says which version it signed, and `audit verify` recomputes that
one, so checkpoints signed before v2 keep verifying.

The mutable `keks` table is not in the digest: it changes outside the log by
design (crypto-shredding deletes a row, `rotate-root-key` rewraps every row).
Its rows are checked by presence instead (`kek_problems`): a key that is not
deleted has a KEK row, a deleted key has none. Substituting a KEK is caught
without a digest: each version's material is wrapped under the KEK with
AES-GCM (AAD = key id || version), so a different KEK fails to unwrap, which
`replay prove-decryptable` reports.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from keyledger import events as ev
from keyledger.projections import ACCESS_KEY_ROW_PREFIX, MemoryTables, access_key_row, touched
from keyledger.projections import merkle

#: the tables each digest version covers, in leaf order (each extends the one before)
DIGEST_VERSIONS: dict[int, tuple[str, ...]] = {
    1: ("keys", "aliases", "usage", "principals", "grants"),
    2: ("keys", "aliases", "usage", "principals", "grants", "parameters"),
}
#: the version new checkpoints sign
DIGEST_VERSION = 2
DIGEST_TABLES: tuple[str, ...] = DIGEST_VERSIONS[DIGEST_VERSION]
assert all(DIGEST_VERSIONS[v + 1][:len(DIGEST_VERSIONS[v])] == DIGEST_VERSIONS[v] for v in range(1, DIGEST_VERSION))

_encoder = msgspec.msgpack.Encoder(order="deterministic")


@functools.cache
def _defaults(cls: type) -> tuple[tuple[str, bool, Any], ...]:
    """(name, has a default, the default) per field: msgspec.structs.fields
    evaluates annotations on every call, far too slow per row."""
    out = []
    for f in msgspec.structs.fields(cls):
        if f.default is not msgspec.NODEFAULT:
            out.append((f.name, True, f.default))
        elif f.default_factory is not msgspec.NODEFAULT:
            out.append((f.name, True, f.default_factory()))
        else:
            out.append((f.name, False, None))
    return tuple(out)


def canonical(value: Any) -> Any:
    """Builtins for a row value: structs as maps of their non-default fields."""
    if isinstance(value, msgspec.Struct):
        out = {}
        for name, has_default, default in _defaults(type(value)):
            v = getattr(value, name)
            if has_default and v == default:
                continue
            out[name] = canonical(v)
        return out
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    return value


def leaf(table: str, row: bytes, value: Any) -> bytes:
    """The Merkle leaf hash of one projection row."""
    h: bytes = merkle.leaf_hash(_encoder.encode([table, row, canonical(value)]))
    return h


def root_of_leaves(leaves: Iterable[bytes]) -> bytes:
    frontier: merkle.Frontier = ()
    size = 0
    for h in leaves:
        frontier, _ = merkle.push(frontier, size, h)
        size += 1
    root: bytes = merkle.root_of_frontier(frontier) if size else merkle.EMPTY_ROOT
    return root


def _order(table: str, row: bytes) -> tuple[int, bytes]:
    return DIGEST_TABLES.index(table), row


def state_digest(rows: Mapping[str, Mapping[bytes, Any]], version: int = DIGEST_VERSION) -> bytes:
    """The digest (of `version`) of projection tables given as {table: {row: value}}."""
    return root_of_leaves(leaf(table, row, rows.get(table, {})[row])
                          for table in DIGEST_VERSIONS[version] for row in sorted(rows.get(table, {})))


class RunningState:
    """Projections being folded record by record, with the leaf hash of every
    row kept: a row's leaf is recomputed only at the next digest after the
    row changed, so a digest at each checkpoint costs one sort and one
    Merkle pass, and a hot row (a usage counter) is encoded once per
    checkpoint, not once per record."""

    def __init__(self) -> None:
        self.tables = MemoryTables()
        self._leaves: dict[tuple[int, bytes], bytes] = {}
        self._dirty: set[tuple[str, bytes]] = set()

    def apply(self, record: ev.Record) -> None:
        for table, row, fold in touched(record.event, record.scope):
            self.tables.put(table, row, fold(self.tables.get(table, row), record))
            self._dirty.add((table, row))

    def digest(self, version: int = DIGEST_VERSION) -> bytes:
        for table, row in self._dirty:
            if table not in DIGEST_TABLES:
                continue
            value = self.tables.get(table, row)
            if value is None:
                self._leaves.pop(_order(table, row), None)
            else:
                self._leaves[_order(table, row)] = leaf(table, row, value)
        self._dirty.clear()
        covered = len(DIGEST_VERSIONS[version])  # an older version: the leaves of its own tables
        return root_of_leaves(self._leaves[k] for k in sorted(self._leaves) if k[0] < covered)


def kek_problems(keys: Mapping[bytes, Any], kek_ids: Iterable[str],
                 principals: Mapping[bytes, Any] | None = None) -> list[str]:
    """What the `keks` table's key ids say against the key states folded
    from the log: a live key without its KEK (material lost, or shredded
    outside the log), a deleted key whose KEK is back (shredding undone),
    a KEK for a key the log never created. The same for the access keys
    whose secrets the ledger holds (rows `iam/<access key id>`): a live one
    has its row, a deleted one (or one never issued) has none."""
    present = set(kek_ids)
    held = {access_key_row(key_id) for state in (principals or {}).values() for key_id in state.held_keys}
    secrets = {name for name in present if name.startswith(ACCESS_KEY_ROW_PREFIX)}
    present -= secrets
    out = [f"keks[{name}]: the access key is live in the log but its secret row is missing"
           for name in sorted(held - secrets)]
    out += [f"keks[{name}]: a secret row for an access key the log does not hold (deleted, or never issued)"
            for name in sorted(secrets - held)]
    for row, state in sorted(keys.items()):
        name = row.decode()  # a KEK row is named as its key's row (~<region>/<id> outside the initial region)
        has = name in present
        if state.state == "Deleted" and has:
            out.append(f"keks[{name}]: the key was deleted (crypto-shredded) in the log but its "
                       "KEK row is present")
        elif state.state != "Deleted" and not has:
            out.append(f"keks[{name}]: the key is {state.state} in the log but its KEK row is "
                       "missing (its material cannot be unwrapped)")
    known = {row.decode() for row in keys}
    out += [f"keks[{key_id}]: a KEK row for a key the log never created" for key_id in sorted(present - known)]
    return out

