"""The tamper suite: real LMDB files, attacked the way someone with write
access to the file would, then checked by `audit verify` (the library on a
read-only Store, and the CLI on the copy) with the auditor's own verifier key
and the checkpoints they kept elsewhere.

Each attack works on a copy of one pristine ledger built once per module:
a byte flipped inside a record's bytes in data.mdb, a record deleted, two
records swapped, the tail cut (head fixed up), the file replaced by an older
copy, and a record rewritten with every later hash and Merkle node
recomputed. Each is caught, with the first bad seq named exactly, or for
truncation and rollback the checkpoint contradicted, or for the rewrite the
seq range between the last good and the first bad checkpoint.
`KeyLedger.checkpoint()` refuses to sign a log that no longer extends its
last stored checkpoint.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lmdb
import pytest
from click.testing import CliRunner, Result
from msgspec.structs import replace

import keyledger
from keyledger.cli.audit import audit
from keyledger import audit as audit_
from keyledger import checkpoint as cp
from keyledger import events as ev
from keyledger.errors import AccessDeniedException, LedgerError
from keyledger.store import Head, Store
from keyledger.projections import merkle

NODE = struct.Struct(">BQ")  # a Merkle node's key in the `audit` table is b"M" + NODE
SEQ = struct.Struct(">Q")
ALICE = "arn:aws:iam::111122223333:user/alice"


class Pristine:
    """The ledger every test copies: ~40 records, checkpoints at A and B."""

    def __init__(self, home: Path, a: bytes, b: bytes, vkey: str, records: int) -> None:
        self.home, self.a_note, self.b_note, self.vkey, self.records = home, a, b, vkey, records
        self.a = cp.parse(a)[0].size
        self.b = cp.parse(b)[0].size
        self.verifier = cp.parse_verifier_key(vkey)


def _traffic(kms: keyledger.KeyLedger, keys: list[str], rounds: int) -> None:
    for i in range(rounds):
        key = keys[i % len(keys)]
        blob = kms.encrypt(key, b"payload %d" % i, encryption_context={"n": str(i)}).ciphertext_blob
        kms.decrypt(blob, encryption_context={"n": str(i)})
        if i % 3 == 0:
            with pytest.raises(AccessDeniedException):
                kms.as_caller(ALICE).decrypt(blob, encryption_context={"n": str(i)})


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    home = tmp_path_factory.mktemp("pristine") / "ledger"
    with keyledger.open(home, create=True, durability="relaxed") as kms:
        keys = [kms.create_key(description=f"k{i}").key_metadata.key_id for i in range(2)]
        kms.create_alias("alias/orders", keys[0])
        _traffic(kms, keys, 4)
        a = kms.checkpoint().note
        _traffic(kms, keys, 5)
        b = kms.checkpoint().note
        _traffic(kms, keys, 4)
        vkey = kms.verifier_key()
        records = kms.store.head().seq
    return Pristine(home, a, b, vkey, records)


def copy_of(p: Pristine, dest: Path) -> Path:
    shutil.copytree(p.home, dest, ignore=shutil.ignore_patterns("lock.mdb"))
    return dest


@contextmanager
def raw(home: Path) -> Iterator[tuple[lmdb.Environment, dict[str, object]]]:
    """The copy's LMDB opened directly, as an attacker would."""
    env = lmdb.open(str(home), max_dbs=32)
    try:
        dbs = {name: env.open_db(name.encode()) for name in ("records", "meta", "audit", "checkpoints")}
        yield env, dbs
    finally:
        env.close()


def verify(home: Path, *extra: bytes, verifier: tuple[str, bytes]) -> audit_.VerifyReport:
    store = Store(str(home), readonly=True)
    try:
        with store.snapshot() as snap:
            return audit_.verify(snap, extra_checkpoints=extra, verifier=verifier)
    finally:
        store.close()


def verify_cli(home: Path, p: Pristine, tmp_path: Path, *notes: bytes, expect: int) -> Result:
    args = ["verify", "--public-key", p.vkey]
    if notes:
        args.append("--checkpoint")  # FILE... : the AWS CLI's space-separated list
    for i, note in enumerate(notes):
        path = tmp_path / f"kept-elsewhere-{i}.checkpoint"
        path.write_bytes(note)
        args.append(str(path))
    result = CliRunner().invoke(audit, args, env={"KEYLEDGER_HOME": str(home)}, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    as_json = CliRunner().invoke(audit, [*args, "--json"], env={"KEYLEDGER_HOME": str(home)})
    assert as_json.exit_code == expect
    data = json.loads(as_json.stdout)
    assert data["Ok"] is (expect == 0)
    assert data["Verifier"] == {"Key": p.vkey, "Source": "given"}
    return result


def first_bad(result: Result) -> int | None:
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("verdict: ")
    return None if last == "verdict: OK" else int(last.rsplit(" ", 1)[1].rstrip(")"))


def body_of(home: Path, seq: int) -> bytes:
    with raw(home) as (env, dbs):
        with env.begin() as txn:
            return bytes(txn.get(SEQ.pack(seq), db=dbs["records"]))[64:]


def middle_seq(p: Pristine, lo: int, hi: int, kind: type = ev.Encrypted) -> int:
    """A record of `kind` with lo <= seq < hi."""
    store = Store(str(p.home), readonly=True)
    try:
        with store.snapshot() as snap:
            for record in snap.records(lo, hi):
                if isinstance(record.event, kind):
                    return record.seq
    finally:
        store.close()
    raise AssertionError("no such record")


def frontier_of_records(txn: lmdb.Transaction, dbs: dict[str, object], n: int) -> merkle.Frontier:
    """The Merkle tree's right edge over records [0, n), from their bytes."""
    frontier: merkle.Frontier = ()
    for s in range(n):
        body = bytes(txn.get(SEQ.pack(s), db=dbs["records"]))[64:]
        frontier, _ = merkle.push(frontier, s, merkle.leaf_hash(body))
    return frontier


def fix_head(txn: lmdb.Transaction, dbs: dict[str, object], n: int) -> None:
    """Point the head (and its copy of the tree's right edge) at record
    n - 1, as a careful attacker who cut the log would."""
    last = bytes(txn.get(SEQ.pack(n - 1), db=dbs["records"]))
    time = ev.decode(last[64:]).time
    txn.put(b"head", Head(n, last[32:64], time, frontier_of_records(txn, dbs, n)).pack(), db=dbs["meta"])


def log_problems(report: audit_.VerifyReport) -> list[audit_.Problem]:
    """The problems the log and its checkpoints show, without those of the
    live projection tables (an attack on the log alone leaves them ahead)."""
    return [p for p in report.problems if p.kind not in ("projection", "kek")]


def drop_checkpoints_above(txn: lmdb.Transaction, dbs: dict[str, object], n: int) -> None:
    for key, _ in list(txn.cursor(db=dbs["checkpoints"])):
        if SEQ.unpack(key)[0] > n:
            txn.delete(key, db=dbs["checkpoints"])


# -- the baseline -----------------------------------------------------------------

def test_an_untouched_copy_verifies(pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    report = verify(home, pristine.a_note, pristine.b_note, verifier=pristine.verifier)
    assert report.ok and report.records == pristine.records
    assert report.checkpoints_ok == [pristine.a, pristine.b]
    result = verify_cli(home, pristine, tmp_path, pristine.a_note, pristine.b_note, expect=0)
    assert f"checkpoint of size {pristine.b}: consistent with the log" in result.stdout
    assert first_bad(result) is None
    (home / "root.key").unlink()  # an auditor's copy has no root key
    assert verify(home, pristine.b_note, verifier=pristine.verifier).ok


# -- attacks on single records -------------------------------------------------------

def test_a_flipped_byte_in_the_file_names_its_record(pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    k = middle_seq(pristine, pristine.a, pristine.b)
    body = body_of(home, k)
    data = bytearray((home / "data.mdb").read_bytes())
    at, hits = 0, 0
    while (at := data.find(body, at)) != -1:  # every copy of the page, live or freed
        data[at + len(body) // 2] ^= 0x20
        at, hits = at + len(body), hits + 1
    assert hits >= 1
    (home / "data.mdb").write_bytes(bytes(data))
    assert body_of(home, k) != body  # LMDB has no page checksums: the flip is read back

    report = verify(home, pristine.a_note, pristine.b_note, verifier=pristine.verifier)
    assert report.first_bad_seq == k
    assert report.problems[0].kind == "chain" and f"record {k} was altered" in report.problems[0].message
    assert first_bad(verify_cli(home, pristine, tmp_path, pristine.b_note, expect=1)) == k


def test_a_deleted_record_is_named(pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    k = middle_seq(pristine, 3, pristine.a, ev.Decrypted)
    with raw(home) as (env, dbs), env.begin(write=True) as txn:
        assert txn.delete(SEQ.pack(k), db=dbs["records"])
    report = verify(home, verifier=pristine.verifier)
    assert report.first_bad_seq == k
    assert f"record {k} is missing or out of order" in report.problems[0].message
    result = verify_cli(home, pristine, tmp_path, expect=1)
    assert first_bad(result) == k and f"FAIL (chain): record {k} is missing" in result.stdout


def test_two_swapped_records_are_named_at_the_first(pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    i, j = pristine.a + 1, pristine.b + 2
    with raw(home) as (env, dbs), env.begin(write=True) as txn:
        vi, vj = txn.get(SEQ.pack(i), db=dbs["records"]), txn.get(SEQ.pack(j), db=dbs["records"])
        txn.put(SEQ.pack(i), vj, db=dbs["records"])
        txn.put(SEQ.pack(j), vi, db=dbs["records"])
    report = verify(home, pristine.b_note, verifier=pristine.verifier)
    assert report.first_bad_seq == i
    assert f"record {i} does not link to record {i - 1}" in report.problems[0].message
    assert first_bad(verify_cli(home, pristine, tmp_path, pristine.b_note, expect=1)) == i


def test_a_record_changed_after_the_last_checkpoint_is_not_signed(pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    k = middle_seq(pristine, pristine.b, pristine.records)
    with raw(home) as (env, dbs), env.begin(write=True) as txn:
        value = bytearray(txn.get(SEQ.pack(k), db=dbs["records"]))
        value[-3] ^= 0x01
        txn.put(SEQ.pack(k), bytes(value), db=dbs["records"])
    assert verify(home, verifier=pristine.verifier).first_bad_seq == k
    with keyledger.open(home) as kms:
        with pytest.raises(LedgerError, match=f"record {k} does not verify"):
            kms.checkpoint()
        with kms.store.snapshot() as snap:
            assert len(snap.checkpoints()) == 2  # nothing new stored


# -- attacks on the whole file -------------------------------------------------------

def test_a_cut_tail_contradicts_the_checkpoint_kept_elsewhere(pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    n = pristine.b - 3  # keep A, lose the end of what B covers
    with raw(home) as (env, dbs), env.begin(write=True) as txn:
        for seq in range(n, pristine.records):
            txn.delete(SEQ.pack(seq), db=dbs["records"])
        for key, _ in list(txn.cursor(db=dbs["audit"])):
            if key[:1] != b"M":
                continue
            level, index = NODE.unpack(key[1:])
            if (index + 1) << level > n:
                txn.delete(key, db=dbs["audit"])
        fix_head(txn, dbs, n)
    # The stored checkpoint B still says more: caught from the file alone.
    report = verify(home, verifier=pristine.verifier)
    [problem] = log_problems(report)
    assert (problem.kind, problem.seq, problem.checkpoint_size) == ("truncated", n, pristine.b)
    assert report.checkpoints_ok == [pristine.a]
    # and the live tables still hold what the cut records did
    assert [p.kind for p in report.problems if p not in log_problems(report)] == ["projection"]
    with keyledger.open(home) as kms:  # and nothing signs over the cut
        with pytest.raises(LedgerError, match="refusing to sign a rolled-back log"):
            kms.checkpoint()

    # A careful attacker also drops the stored checkpoints that betray the cut:
    with raw(home) as (env, dbs), env.begin(write=True) as txn:
        drop_checkpoints_above(txn, dbs, n)
    # the log alone is consistent (only the projections, which the attacker
    # did not roll back here, betray the cut)...
    assert not log_problems(verify(home, verifier=pristine.verifier))
    report = verify(home, pristine.b_note, verifier=pristine.verifier)  # ...not with B kept elsewhere
    assert report.first_bad_seq == n
    [problem] = log_problems(report)
    assert (problem.kind, problem.checkpoint_size) == ("truncated", pristine.b)
    assert f"the checkpoint of size {pristine.b} commits to more" in problem.message
    result = verify_cli(home, pristine, tmp_path, pristine.b_note, expect=1)
    assert first_bad(result) == n
    assert f"FAIL (truncated): the log has {n} records but the checkpoint of size {pristine.b}" in result.stdout


def test_a_file_rolled_back_to_an_older_copy(pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    old = (home / "data.mdb").read_bytes()  # copied aside
    with keyledger.open(home) as kms:
        key = kms.create_key(description="later").key_metadata.key_id
        kms.encrypt(key, b"later")
        later = kms.checkpoint()  # kept elsewhere by the auditor
    assert later.size == pristine.records + 2
    (home / "data.mdb").write_bytes(old)  # restored

    assert verify(home, verifier=pristine.verifier).ok  # consistent in itself
    report = verify(home, pristine.a_note, later.note, verifier=pristine.verifier)
    assert report.first_bad_seq == pristine.records
    assert [(p.kind, p.seq, p.checkpoint_size) for p in report.problems] == \
        [("truncated", pristine.records, later.size)]
    assert "truncated or rolled back" in report.problems[0].message
    assert report.checkpoints_ok == [pristine.a, pristine.b]
    result = verify_cli(home, pristine, tmp_path, later.note, expect=1)
    assert first_bad(result) == pristine.records
    assert f"checkpoint of size {later.size}" in result.stdout


def _rewrite(home: Path, k: int, *, nodes: bool) -> None:
    """Change record k (who decrypted), then recompute every later hash, the
    head and (if `nodes`) every Merkle node: a log that chains perfectly."""
    with raw(home) as (env, dbs), env.begin(write=True) as txn:
        n = Head.unpack(txn.get(b"head", db=dbs["meta"])).seq
        values = [bytes(txn.get(SEQ.pack(s), db=dbs["records"])) for s in range(n)]
        record = ev.decode(values[k][64:])
        values[k] = values[k][:64] + ev.canonical(replace(record, principal=ALICE))
        prev = values[k][:32]
        tree: dict[tuple[int, int], bytes] = {}
        frontier: merkle.Frontier = ()
        for s in range(n):
            body = values[s][64:]
            if s >= k:
                digest = ev.chain_hash(prev, body)
                txn.put(SEQ.pack(s), prev + digest + body, db=dbs["records"])
                values[s] = prev + digest + body
            prev = values[s][32:64]
            frontier, made = merkle.push(frontier, s, merkle.leaf_hash(body))
            for level, index, h in made:
                tree[(level, index)] = h
        if nodes:
            for (level, index), h in tree.items():  # interior nodes only: leaves are their records' hashes
                txn.put(b"M" + NODE.pack(level, index), h, db=dbs["audit"])
        stale = Head.unpack(txn.get(b"head", db=dbs["meta"])).frontier
        frontier = frontier_of_records(txn, dbs, n) if nodes else stale
        txn.put(b"head", Head(n, prev, ev.decode(values[-1][64:]).time, frontier).pack(), db=dbs["meta"])


def test_a_rewritten_and_rechained_log_is_caught_by_an_earlier_checkpoint(
        pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    k = middle_seq(pristine, pristine.a, pristine.b, ev.Decrypted)
    _rewrite(home, k, nodes=True)

    # The stored checkpoint B no longer matches: the ledger will not sign on.
    with keyledger.open(home) as kms:
        with pytest.raises(LedgerError, match=f"does not extend the checkpoint of size {pristine.b}"):
            kms.checkpoint()
    with raw(home) as (env, dbs), env.begin(write=True) as txn:
        drop_checkpoints_above(txn, dbs, 0)  # the attacker removes what the file says of the past
    assert verify(home, verifier=pristine.verifier).ok  # the chain and tree alone are perfect

    report = verify(home, pristine.a_note, pristine.b_note, verifier=pristine.verifier)
    [problem] = report.problems
    assert problem.kind == "checkpoint" and problem.checkpoint_size == pristine.b
    assert problem.seq_range == (pristine.a, pristine.b) and pristine.a <= k < pristine.b
    assert report.first_bad_seq == pristine.a and report.checkpoints_ok == [pristine.a]
    assert f"records [{pristine.a}, {pristine.b}) do not match the checkpoint of size {pristine.b}" \
        in problem.message
    result = verify_cli(home, pristine, tmp_path, pristine.a_note, pristine.b_note, expect=1)
    assert first_bad(result) == pristine.a
    assert f"records [{pristine.a}, {pristine.b})" in result.stdout
    # With only B kept, the range is everything B covers.
    only_b = verify(home, pristine.b_note, verifier=pristine.verifier)
    assert only_b.problems[0].seq_range == (0, pristine.b)


def test_a_rechained_log_with_stale_merkle_nodes(pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    k = middle_seq(pristine, pristine.a, pristine.b, ev.Decrypted)
    _rewrite(home, k, nodes=False)
    report = verify(home, verifier=pristine.verifier)
    kinds = {p.kind for p in report.problems}
    assert "tree" in kinds  # the stored nodes no longer match the records
    assert report.first_bad_seq == pristine.a  # and stored checkpoint B names the range


def test_checkpoints_signed_by_another_key_or_altered_are_refused(pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    forged = pristine.b_note.replace(b"\n" + str(pristine.b).encode() + b"\n", b"\n" + b"1" + b"\n", 1)
    report = verify(home, forged, verifier=pristine.verifier)
    assert [p.kind for p in report.problems] == ["signature"]
    with keyledger.open(tmp_path / "other", create=True) as other:
        stranger = cp.parse_verifier_key(other.verifier_key())
    report = verify(home, pristine.b_note, verifier=stranger)
    assert not report.ok and {p.kind for p in report.problems} == {"signature"}


def test_a_checkpoint_is_never_signed_inconsistent_with_the_last(pristine: Pristine, tmp_path: Path) -> None:
    home = copy_of(pristine, tmp_path / "copy")
    with keyledger.open(home) as kms:
        kms.encrypt("alias/orders", b"more")
        c = kms.checkpoint()
        with kms.store.snapshot() as snap:
            old = cp.parse(pristine.b_note)[0]
            proof = audit_.prove_consistency(snap, old, c)
    assert audit_.verify_proof(proof, pristine.verifier) == \
        (True, f"the log of size {c.size} extends the log of size {pristine.b}")
