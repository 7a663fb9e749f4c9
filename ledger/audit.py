"""Audit: verify a ledger (or a copy of one) and prove records.

`verify` needs no root key and writes nothing. It walks the records once,
recomputing the hash chain and the RFC 6962 Merkle tree from the record
bytes alone (it trusts no stored hash or node), and checks every checkpoint
it is given or finds: signature, tree size against the log's length, root
against the recomputed tree. It names the first bad seq exactly when the
record bytes or the chain show it; when only a checkpoint's root shows it (a
rewritten and re-chained log), it names the range between the last good and
the first bad checkpoint. A log shorter than a checkpoint is truncated or
rolled back, and the report says which checkpoint it contradicts.

It also folds the log with the projections' own `evolve` (as replay does)
and checks the state three ways: against every checkpoint that commits to a
projection-state digest (the state the signer served from at that size,
`projections.digest`), against the live projection tables (naming the
first differing table, row and field), and the `keks` table's rows against
the keys' lifecycle (a live key has its KEK, a deleted one none).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from keyledger import checkpoint as cp
from keyledger import events as ev
from keyledger.projections import digest, merkle, replay


class AuditSnapshot(Protocol):
    def raw_records(self, start: int = 0, stop: int | None = None) -> Iterator[Any]: ...
    def raw_record(self, seq: int) -> Any: ...
    def node(self, level: int, index: int) -> bytes: ...
    def checkpoints(self) -> list[bytes]: ...
    def meta(self) -> dict[str, bytes]: ...
    def head(self) -> Any: ...


@dataclass
class Problem:
    kind: str  # chain | checkpoint | truncated | tree | signature | state | projection | kek
    message: str
    seq: int | None = None  # the first bad seq, when known exactly
    seq_range: tuple[int, int] | None = None  # [lo, hi) when only a range is known
    checkpoint_size: int | None = None
    row: str | None = None  # table[row] (and .field) for projection problems


@dataclass
class VerifyReport:
    records: int = 0
    checkpoints_ok: list[int] = field(default_factory=list)
    states_ok: list[int] = field(default_factory=list)  # checkpoint sizes whose state digest matched
    problems: list[Problem] = field(default_factory=list)
    root: bytes = b""
    state: bytes | None = None  # digest of the state folded from the whole log

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        seqs += [p.seq_range[0] for p in self.problems if p.seq_range is not None]
        return min(seqs) if seqs else None

    def to_json(self) -> dict[str, Any]:
        """AWS-style names; hashes in base64, as in the checkpoint notes."""
        def problem(p: Problem) -> dict[str, Any]:
            out = {"Kind": p.kind, "Message": p.message, "Seq": p.seq,
                   "SeqRange": list(p.seq_range) if p.seq_range else None,
                   "CheckpointSize": p.checkpoint_size, "Row": p.row}
            return {k: v for k, v in out.items() if v is not None}
        return {"Ok": self.ok, "Records": self.records, "RootHash": _b64(self.root),
                "StateHash": _b64(self.state) if self.state is not None else None,
                "FirstBadSeq": self.first_bad_seq, "CheckpointsOk": self.checkpoints_ok,
                "StatesOk": self.states_ok, "Problems": [problem(p) for p in self.problems]}

    def lines(self) -> list[str]:
        out = [f"records verified: {self.records}", f"merkle root: {_b64(self.root)}"]
        if self.state is not None:
            out.append(f"state hash: {_b64(self.state)}")
        for n in self.checkpoints_ok:
            signed_state = " (and its projection state)" if n in self.states_ok else ""
            out.append(f"checkpoint of size {n}: consistent with the log{signed_state}")
        out += [f"FAIL ({p.kind}): {p.message}" for p in self.problems]
        if self.ok:
            out.append("verdict: OK")
        elif self.first_bad_seq is not None:
            out.append(f"verdict: FAILED (first bad seq: {self.first_bad_seq})")
        else:
            out.append("verdict: FAILED")
        return out


class CompactRange:
    """The right edge of a Merkle tree being built leaf by leaf (the same
    frontier the store keeps with its head): root of the current prefix at
    any time, O(log n) memory."""

    def __init__(self) -> None:
        self.size = 0
        self.frontier: merkle.Frontier = ()

    def append(self, leaf: bytes) -> None:
        self.frontier, _ = merkle.push(self.frontier, self.size, leaf)
        self.size += 1

    def root(self) -> bytes:
        return merkle.root_of_frontier(self.frontier)


def _checkpoints(notes: Iterable[bytes], name: str, public_key: bytes,
                 report: VerifyReport) -> list[cp.Checkpoint]:
    good: dict[int, cp.Checkpoint] = {}
    for note in notes:
        try:
            c = cp.verify(note, name, public_key)
        except cp.CheckpointError as exc:
            report.problems.append(Problem("signature", str(exc)))
            continue
        if c.size in good and good[c.size].root != c.root:
            report.problems.append(Problem(
                "checkpoint", f"two validly signed checkpoints of size {c.size} disagree: the signing "
                              "key signed a fork", checkpoint_size=c.size))
        elif c.size in good and None not in (c.state, good[c.size].state) and good[c.size].state != c.state \
                and good[c.size].state_version == c.state_version:  # digests of two versions differ anyway
            report.problems.append(Problem(
                "state", f"two validly signed checkpoints of size {c.size} commit to different projection "
                         "states", checkpoint_size=c.size))
        if c.size not in good or good[c.size].state is None:
            good[c.size] = c  # keep one that commits to a state, if any does
    return sorted(good.values(), key=lambda c: c.size)


def verify(snapshot: AuditSnapshot, *, extra_checkpoints: Iterable[bytes] = (),
           verifier: tuple[str, bytes] | None = None) -> VerifyReport:
    """Verify the whole log. `verifier` = (name, public key) of the
    checkpoint signer; by default the one the ledger itself records (an
    auditor should pass their own copy)."""
    report = VerifyReport()
    meta = snapshot.meta()
    if verifier is None:
        if "checkpoint_public" not in meta:
            verifier = None
        else:
            verifier = (meta["origin"].decode(), meta["checkpoint_public"])
    notes = [*snapshot.checkpoints(), *extra_checkpoints]
    checkpoints = _checkpoints(notes, *verifier, report) if verifier else []
    if notes and not verifier:
        report.problems.append(Problem("signature", "no checkpoint verifier key: checkpoints not checked"))
    pending = list(checkpoints)
    tree = CompactRange()
    state = digest.RunningState()
    roots: dict[int, bytes] = {}
    states: dict[int, bytes] = {}

    def settle() -> None:
        while pending and pending[0].size == tree.size:
            roots[tree.size] = tree.root()
            if pending[0].state is not None:  # the digest version the checkpoint signed
                states[tree.size] = state.digest(pending[0].state_version)
            pending.pop(0)

    settle()
    prev, expected = ev.GENESIS_HASH, 0
    stored_head = snapshot.head()
    for raw in snapshot.raw_records():
        problem = None
        if raw.seq != expected:
            problem = Problem("chain", f"record {expected} is missing or out of order "
                                       f"(found seq {raw.seq} in its place)", seq=expected)
        elif raw.prev_hash != prev:
            problem = Problem("chain", f"record {raw.seq} does not link to record {raw.seq - 1} "
                                       "(prev_hash differs): a record was changed, removed or reordered",
                              seq=raw.seq)
        elif ev.chain_hash(prev, raw.body) != raw.hash:
            problem = Problem("chain", f"record {raw.seq} was altered: its bytes do not match its hash",
                              seq=raw.seq)
        else:
            try:
                record = ev.decode(raw.body)
            except Exception:
                record = None
            if record is None or record.seq != raw.seq:
                problem = Problem("chain", f"record {raw.seq} does not decode as record {raw.seq}", seq=raw.seq)
        if problem is not None:
            report.problems.append(problem)
            break
        assert record is not None  # no problem: the record decoded
        state.apply(record)
        tree.append(merkle.leaf_hash(raw.body))
        prev, expected = raw.hash, expected + 1
        report.records += 1
        settle()
    chain_ok = not any(p.kind == "chain" for p in report.problems)
    report.root = tree.root()
    if chain_ok and stored_head.seq != tree.size:
        report.problems.append(Problem(
            "truncated", f"the ledger's head says {stored_head.seq} records but {tree.size} are stored",
            seq=min(stored_head.seq, tree.size)))
    if chain_ok and tree.size and stored_head.hash != prev:
        report.problems.append(Problem("chain", "the ledger's head hash does not match the last record",
                                       seq=tree.size - 1))
    if chain_ok and stored_head.seq == tree.size and getattr(stored_head, "frontier", tree.frontier) != tree.frontier:
        report.problems.append(Problem("tree", "the tree's right edge kept with the head does not match the "
                                               "records (appends would build a wrong tree)"))
    if chain_ok:
        try:
            stored_root = merkle.root(tree.size, snapshot.node)
        except KeyError:
            stored_root = None
        if stored_root != tree.root():
            report.problems.append(Problem("tree", "the stored Merkle nodes do not match the records "
                                                   "(proofs served from them would be wrong)"))
    last_good = 0
    for c in checkpoints:
        if c.size > report.records:
            if chain_ok:
                report.problems.append(Problem(
                    "truncated", f"the log has {report.records} records but the checkpoint of size {c.size} "
                                 f"commits to more: truncated or rolled back (first missing seq "
                                 f"{report.records})", seq=report.records, checkpoint_size=c.size))
            continue
        if roots.get(c.size) == c.root:
            report.checkpoints_ok.append(c.size)
            last_good = max(last_good, c.size)
            if c.state is None:
                continue
            if states.get(c.size) == c.state:
                report.states_ok.append(c.size)
            else:
                report.problems.append(Problem(
                    "state", f"the projection state signed in the checkpoint of size {c.size} is not the "
                             f"log's state after {c.size} records: the ledger served from tables that differ "
                             "from its log when it signed", checkpoint_size=c.size))
        else:
            report.problems.append(Problem(
                "checkpoint", f"records [{last_good}, {c.size}) do not match the checkpoint of size {c.size}: "
                              "the log was rewritten", seq_range=(last_good, c.size), checkpoint_size=c.size))
    if chain_ok:
        report.state = state.digest()
        _check_live_state(snapshot, state.tables, report)
    return report


def _check_live_state(snapshot: Any, folded: Any, report: VerifyReport) -> None:
    """The live projections (what authorization reads) and the KEK rows
    against the state folded from the whole log."""
    if not hasattr(snapshot, "raw_rows"):
        return  # a snapshot of the log alone (e.g. exported records)
    live, broken = replay.live_tables(snapshot)
    for message in broken:
        report.problems.append(Problem("projection", message, row=message.split(": ", 1)[0]))
    differences = replay.diff(live, folded)
    if differences and not broken:
        first = replay.first_difference(live, folded) or differences[0]
        where = first.split(": ", 1)[0]
        more = f" (and {len(differences) - 1} more row(s); `keyledger replay --check` lists them)" \
            if len(differences) > 1 else ""
        report.problems.append(Problem(
            "projection", f"the live projections differ from the log: {first}{more}", row=where))
    kek_ids = [row.decode(errors="replace") for row, _ in snapshot.raw_rows("keks")]
    for message in digest.kek_problems(folded.rows["keys"], kek_ids, folded.rows["principals"]):
        report.problems.append(Problem("kek", message, row=message.split(": ", 1)[0]))


# -- proofs -------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def prove_inclusion(snapshot: AuditSnapshot, seq: int, checkpoint: cp.Checkpoint) -> dict[str, Any]:
    if not 0 <= seq < checkpoint.size:
        raise ValueError(f"seq {seq} is not in the checkpointed tree of size {checkpoint.size}")
    raw = snapshot.raw_record(seq)
    return {"Type": "inclusion", "Seq": seq, "TreeSize": checkpoint.size, "RootHash": _b64(checkpoint.root),
            "Record": _b64(raw.body),
            "Proof": [_b64(h) for h in merkle.inclusion_proof(seq, checkpoint.size, snapshot.node)],
            "Checkpoint": checkpoint.note.decode()}


def prove_consistency(snapshot: AuditSnapshot, old: cp.Checkpoint, new: cp.Checkpoint) -> dict[str, Any]:
    if not 0 < old.size <= new.size:
        raise ValueError("need 0 < old size <= new size")
    return {"Type": "consistency", "OldSize": old.size, "NewSize": new.size,
            "OldRootHash": _b64(old.root), "RootHash": _b64(new.root),
            "Proof": [_b64(h) for h in merkle.consistency_proof(old.size, new.size, snapshot.node)],
            "OldCheckpoint": old.note.decode(), "Checkpoint": new.note.decode()}


#: the member names proofs had before the CLI spoke PascalCase; still read
_OLD_NAMES = {"type": "Type", "seq": "Seq", "tree_size": "TreeSize", "record": "Record", "proof": "Proof",
              "checkpoint": "Checkpoint", "old_size": "OldSize", "new_size": "NewSize",
              "old_checkpoint": "OldCheckpoint"}


def verify_proof(proof: dict[str, Any], verifier: tuple[str, bytes]) -> tuple[bool, str]:
    """Check a proof with nothing but the checkpoint(s) it carries and the
    signer's public key (the RootHash members are for people: the roots
    checked are the signed ones). Returns (ok, reason)."""
    if isinstance(proof, dict) and "type" in proof and "Type" not in proof:
        proof = {_OLD_NAMES.get(k, k): v for k, v in proof.items()}
    try:
        new = cp.verify(proof["Checkpoint"].encode(), *verifier)
        path = [base64.b64decode(h, validate=True) for h in proof["Proof"]]
        if proof.get("RootHash", _b64(new.root)) != _b64(new.root):
            return False, "the proof's RootHash differs from its checkpoint's root"
        if proof["Type"] == "inclusion":
            leaf = merkle.leaf_hash(base64.b64decode(proof["Record"], validate=True))
            if proof["TreeSize"] != new.size:
                return False, "the proof's tree size differs from its checkpoint's"
            ok = merkle.verify_inclusion(proof["Seq"], new.size, leaf, path, new.root)
            return ok, (f"record {proof['Seq']} is in the checkpointed log of size {new.size}" if ok
                        else "the inclusion proof does not lead to the checkpoint's root")
        if proof["Type"] == "consistency":
            old = cp.verify(proof["OldCheckpoint"].encode(), *verifier)
            if proof.get("OldRootHash", _b64(old.root)) != _b64(old.root):
                return False, "the proof's OldRootHash differs from its old checkpoint's root"
            if (old.size, new.size) != (proof["OldSize"], proof["NewSize"]):
                return False, "the proof's sizes differ from its checkpoints'"
            ok = merkle.verify_consistency(old.size, new.size, old.root, new.root, path)
            return ok, (f"the log of size {new.size} extends the log of size {old.size}" if ok
                        else "the consistency proof does not link the two checkpoints")
    except cp.CheckpointError as exc:
        return False, str(exc)
    except (KeyError, TypeError, ValueError, AttributeError):  # AttributeError: a non-string checkpoint
        return False, "the proof is malformed"
    return False, "unknown proof type"
