"""The edges the tamper suite missed (issue 8, test strength): each test
here kills a hand-made mutant that survived the suite.

- the *last* record's hash check (tamper the tail, after the last checkpoint);
- the rollback checks off by one (cut exactly one record; roll the file
  back by exactly one record against a checkpoint kept elsewhere);
- the key-check-value comparison (a version's KCV corrupted in the key
  projection: decrypt fails with the documented error, and both
  `replay prove-decryptable` and `audit verify` name it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from msgspec.structs import replace

import keyledger
from keyledger import checkpoint as cp
from keyledger import events as ev
from keyledger import forensics
from keyledger.cli.main import main
from keyledger.errors import LedgerError
from keyledger.projections import decode_row, encode_row, key_row
from tamperkit import SEQ, cut_to, raw, verify

ALICE = "arn:aws:iam::111122223333:user/alice"


class Built:
    def __init__(self, home: Path, key: str, blob: bytes, note: bytes, vkey: str, records: int) -> None:
        self.home, self.key, self.blob, self.note, self.records = home, key, blob, note, records
        self.verifier = cp.parse_verifier_key(vkey)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Records, a checkpoint, then a few more records (the tail after it)."""
    home = tmp_path_factory.mktemp("edges") / "ledger"
    with keyledger.open(home, create=True, durability="relaxed") as kms:
        key = kms.create_key().key_metadata.key_id
        blob = kms.encrypt(key, b"x", encryption_context={"n": "1"}).ciphertext_blob
        note = kms.checkpoint().note
        kms.decrypt(blob, encryption_context={"n": "1"})
        kms.encrypt(key, b"y")
        vkey = kms.verifier_key()
        records = kms.store.head().seq
    assert records > cp.parse(note)[0].size + 1
    return Built(home, key, blob, note, vkey, records)


def copy_of(b: Built, dest: Path) -> Path:
    shutil.copytree(b.home, dest, ignore=shutil.ignore_patterns("lock.mdb"))
    return dest


# -- the last record --------------------------------------------------------------------

def test_a_tampered_tail_record_after_the_last_checkpoint_is_named(built: Built, tmp_path: Path) -> None:
    """The last record rewritten (another principal) with its stored hashes
    left alone: the record still decodes and nothing follows it, so only
    its own hash check can name it."""
    home = copy_of(built, tmp_path / "copy")
    last = built.records - 1
    with raw(home) as (txn, dbs):
        value = bytes(txn.get(SEQ.pack(last), db=dbs["records"]))
        record = ev.decode(value[64:])
        txn.put(SEQ.pack(last), value[:64] + ev.canonical(replace(record, principal=ALICE)), db=dbs["records"])
    report = verify(home, built.note, verifier=built.verifier)
    assert report.first_bad_seq == last
    assert (report.problems[0].kind, report.problems[0].seq) == ("chain", last)
    assert f"record {last} was altered" in report.problems[0].message


# -- rollback by exactly one record --------------------------------------------------------

def test_a_log_cut_by_exactly_one_record_contradicts_its_checkpoint(built: Built, tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    with keyledger.open(home) as kms:
        n = kms.checkpoint().size  # a checkpoint of the whole log, stored in the file
    assert n == built.records
    with raw(home) as (txn, dbs):
        cut_to(txn, dbs, n - 1)
    report = verify(home, verifier=built.verifier)
    truncated = [p for p in report.problems if p.kind == "truncated"]
    assert [(p.seq, p.checkpoint_size) for p in truncated] == [(n - 1, n)]
    assert report.first_bad_seq == n - 1
    with keyledger.open(home) as kms:
        with pytest.raises(LedgerError, match=f"the log has {n - 1} records, fewer than the checkpoint of "
                                              f"size {n}: refusing to sign a rolled-back log"):
            kms.checkpoint()


def test_a_file_rolled_back_by_exactly_one_record(built: Built, tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    before = (home / "data.mdb").read_bytes()
    with keyledger.open(home) as kms:
        kms.encrypt(built.key, b"one more")
        later = kms.checkpoint()  # the auditor keeps this one
    assert later.size == built.records + 1
    (home / "data.mdb").write_bytes(before)  # the whole file, one record back
    assert verify(home, verifier=built.verifier).ok  # consistent in itself
    report = verify(home, later.note, verifier=built.verifier)
    assert [(p.kind, p.seq, p.checkpoint_size) for p in report.problems] == \
        [("truncated", built.records, later.size)]
    kept = tmp_path / "kept.checkpoint"
    kept.write_bytes(later.note)
    result = CliRunner().invoke(main, ["--home", str(home), "audit", "verify", "--checkpoint", str(kept)])
    assert result.exit_code == 1
    assert result.stdout.endswith(f"verdict: FAILED (first bad seq: {built.records})\n")


# -- the key check value ---------------------------------------------------------------------

def _corrupt_kcv(home: Path, key: str) -> None:
    with raw(home) as (txn, dbs):
        state = decode_row("keys", txn.get(key_row(key), db=dbs["keys"]))
        [v1] = state.versions
        kcv = bytes([v1.kcv[0] ^ 0x01]) + v1.kcv[1:]
        txn.put(key_row(key), encode_row(replace(state, versions=(replace(v1, kcv=kcv),))), db=dbs["keys"])


def test_a_corrupted_kcv_fails_decrypt_and_is_named_by_the_proofs(built: Built, tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    _corrupt_kcv(home, built.key)
    with keyledger.open(home) as kms:  # a fresh process: no material cached
        with pytest.raises(LedgerError, match=f"version 1 of key {built.key} fails its key check value"):
            kms.decrypt(built.blob, encryption_context={"n": "1"})
        with kms.store.snapshot() as snap:
            report = forensics.prove_decryptable(snap, kms._root)
    [verdict] = report.keys
    assert not report.ok and not verdict.ok
    assert [(v.version, v.ok) for v in verdict.versions] == [(1, False)]
    assert "KCV" in verdict.versions[0].reason or "key check value" in verdict.versions[0].reason

    proof = CliRunner().invoke(main, ["--home", str(home), "replay", "prove-decryptable"])
    assert proof.exit_code == 1
    assert f"key {built.key} (Enabled): FAILED" in proof.stdout
    assert "version 1: 2 ciphertext(s) issued; FAILED: " in proof.stdout

    report = verify(home, verifier=built.verifier)
    [problem] = report.problems
    assert problem.kind == "projection" and problem.row == f"keys[{built.key}].versions[0].kcv"
    audit = CliRunner().invoke(main, ["--home", str(home), "audit", "verify"])
    assert audit.exit_code == 1
    assert f"keys[{built.key}].versions[0].kcv: live value differs from the replayed one" in audit.stdout
