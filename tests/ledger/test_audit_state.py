"""Projection tampering is caught by `audit verify` (issue 8, item 10).

A checkpoint commits to the digest of the projection state at its size (a
C2SP extension line); `audit verify` folds the log, checks that digest at
each checkpoint, compares the live tables with the fold (naming the first
differing table, row and field) and the KEK rows with the keys' lifecycle.
Every attack edits the LMDB file directly, as someone with write access
would; authorization reads exactly the rows attacked here.
"""

from __future__ import annotations

import base64
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from msgspec.structs import replace

import keyledger
from keyledger import checkpoint as cp
from keyledger.cli.audit import audit
from keyledger.errors import LedgerError
from keyledger.projections import TABLES, decode_row, encode_row, grant_row, key_row, principal_row
from keyledger.projections import digest
from keyledger.store import Store
from tamperkit import raw, verify
from clockkit import Clock

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
MALLORY = f"arn:aws:iam::{ACCOUNT}:user/mallory"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


class Built:
    def __init__(self, home: Path, key: str, grant_id: str, note: bytes, vkey: str) -> None:
        self.home, self.key, self.grant_id, self.note, self.vkey = home, key, grant_id, note, vkey
        self.verifier = cp.parse_verifier_key(vkey)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    home = tmp_path_factory.mktemp("state") / "ledger"
    with keyledger.open(home, create=True, durability="relaxed", clock=Clock(T0)) as kms:
        key = kms.create_key(description="payments").key_metadata.key_id
        kms.create_alias("alias/payments", key)
        alice = kms.create_user("alice").arn
        kms.put_principal_policy(alice, "read", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*"}]}))
        grant_id = kms.create_grant(key, alice, ["Decrypt"]).grant_id
        blob = kms.encrypt(key, b"x").ciphertext_blob
        kms.decrypt(blob)
        note = kms.checkpoint().note
        vkey = kms.verifier_key()
    return Built(home, key, grant_id, note, vkey)


def copy_of(b: Built, dest: Path) -> Path:
    shutil.copytree(b.home, dest, ignore=shutil.ignore_patterns("lock.mdb"))
    return dest


def live_digest(home: Path) -> bytes:
    store = Store(str(home), readonly=True)
    try:
        with store.snapshot() as snap:
            return digest.state_digest(snap.tables())
    finally:
        store.close()


def cli_verify(home: Path, b: Built, *notes: Path, expect: int) -> tuple[str, dict]:
    args = ["verify", "--public-key", b.vkey, *[a for n in notes for a in ("--checkpoint", str(n))]]
    env = {"KEYLEDGER_HOME": str(home)}
    text = CliRunner().invoke(audit, args, env=env, catch_exceptions=False)
    assert text.exit_code == expect, text.output
    data = CliRunner().invoke(audit, [*args, "--json"], env=env, catch_exceptions=False)
    assert data.exit_code == expect
    return text.stdout, json.loads(data.stdout)


# -- the note -----------------------------------------------------------------------

def test_the_checkpoint_commits_to_the_projection_state_in_a_c2sp_extension_line(built: Built) -> None:
    text = built.note.decode().split("\n\n", 1)[0].split("\n")
    assert len(text) == 4 and text[3].startswith(cp.STATE_LINE + " ")
    c = cp.verify(built.note, *built.verifier)
    assert c.state == live_digest(built.home) == base64.b64decode(text[3].split(" ")[1])
    # a C2SP verifier that knows nothing of the line still reads origin, size and root
    assert int(text[1]) == c.size and base64.b64decode(text[2]) == c.root


def test_notes_without_the_state_line_or_with_unknown_extensions_still_verify(built: Built,
                                                                              tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    with keyledger.open(home) as kms:
        c = cp.verify(built.note, *built.verifier)
        old = cp.sign(c.origin, c.size, c.root, kms._signer)  # as signed before this change
        assert b"keyledger-state" not in old.note and cp.verify(old.note, *built.verifier).state is None
        body = cp.body(c.origin, c.size, c.root, c.state) + b"example.com/other-extension 42\n"
        sig = cp.sign(c.origin, c.size, c.root, kms._signer, c.state).note.split(b"\n\n", 1)[1]
        assert cp.parse(body + b"\n" + sig)[0].state == c.state  # the unknown line is ignored
    report = verify(home, old.note, verifier=built.verifier)
    assert report.ok and report.checkpoints_ok == [c.size] and report.states_ok == [c.size]


def test_a_malformed_state_line_does_not_parse(built: Built) -> None:
    c = cp.parse(built.note)[0]
    for bad in (b"keyledger-state/v1 !!!\n", b"keyledger-state/v1 AAAA\n",
                f"{cp.STATE_LINE} {base64.b64encode(c.state).decode()}\n".encode()):  # a second state line
        note = cp.body(c.origin, c.size, c.root, c.state) + bad + b"\n" + built.note.split(b"\n\n", 1)[1]
        with pytest.raises(cp.CheckpointError):
            cp.parse(note)


# -- the digest ---------------------------------------------------------------------------

def test_the_digest_covers_every_projection_table() -> None:
    # A new table must go into a new digest version (a new STATE_LINE label),
    # or old checkpoints would stop verifying: decide, then update both.
    assert set(digest.DIGEST_TABLES) == set(TABLES)


def test_fields_added_later_with_defaults_do_not_change_old_rows_digests() -> None:
    class V1(msgspec.Struct, frozen=True):
        key_id: str
        policy: str = ""

    class V2(msgspec.Struct, frozen=True):  # schema evolution: a new field with a default
        key_id: str
        policy: str = ""
        multi_region: bool = False
        tags: dict[str, str] = {}

    assert digest.leaf("keys", b"k", V1("k", "p")) == digest.leaf("keys", b"k", V2("k", "p"))
    assert digest.leaf("keys", b"k", V1("k", "p")) != digest.leaf("keys", b"k", V2("k", "p", True))
    assert digest.leaf("keys", b"k", V1("k", "p")) != digest.leaf("keys", b"k", V1("k", "q"))
    assert digest.leaf("keys", b"k", V1("k")) != digest.leaf("aliases", b"k", V1("k"))


def test_the_running_digest_equals_the_digest_of_the_live_tables(built: Built) -> None:
    store = Store(str(built.home), readonly=True)
    try:
        with store.snapshot() as snap:
            running = digest.RunningState()
            for record in snap.records():
                running.apply(record)
            assert running.digest() == digest.state_digest(snap.tables())
            assert running.digest() == digest.state_digest(running.tables.rows)
    finally:
        store.close()
    assert digest.state_digest({}) == digest.root_of_leaves([])


# -- attacks on the live tables -----------------------------------------------------------

def test_a_flipped_byte_in_a_key_policy_row_fails_verify(built: Built, tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    with raw(home) as (txn, dbs):
        row = bytearray(txn.get(key_row(built.key), db=dbs["keys"]))
        at = row.find(b"kms:*")
        row[at + 4] ^= 0x01  # "kms:*" -> "kms:+": still a valid row, a different policy
        txn.put(key_row(built.key), bytes(row), db=dbs["keys"])
    report = verify(home, built.note, verifier=built.verifier)
    [problem] = report.problems
    assert problem.kind == "projection" and problem.row == f"keys[{built.key}].policy"
    assert f"keys[{built.key}].policy: live value differs from the replayed one" in problem.message
    assert report.checkpoints_ok == report.states_ok == [cp.parse(built.note)[0].size]
    kept = tmp_path / "kept.checkpoint"
    kept.write_bytes(built.note)
    text, data = cli_verify(home, built, kept, expect=1)
    assert f"FAIL (projection): the live projections differ from the log: keys[{built.key}].policy" in text
    assert text.endswith("verdict: FAILED\n")
    assert data["Ok"] is False and data["Problems"][0]["Row"] == f"keys[{built.key}].policy"


def test_a_doctored_grant_row_is_named(built: Built, tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    row = grant_row(built.key, built.grant_id)
    with raw(home) as (txn, dbs):  # a careful attacker writes a valid row: mallory may decrypt
        grant = decode_row("grants", txn.get(row, db=dbs["grants"]))
        txn.put(row, encode_row(replace(grant, grantee_principal=MALLORY)), db=dbs["grants"])
    [problem] = verify(home, verifier=built.verifier).problems
    assert problem.row == f"grants[{built.key}#{built.grant_id}].grantee_principal"


def test_an_added_iam_policy_and_an_undecodable_row_are_named(built: Built, tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    with raw(home) as (txn, dbs):
        alice = decode_row("principals", txn.get(principal_row(ALICE), db=dbs["principals"]))
        admin = json.dumps({"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})
        txn.put(principal_row(ALICE), encode_row(replace(alice, policies={**alice.policies, "x": admin})),
                db=dbs["principals"])
    [problem] = verify(home, verifier=built.verifier).problems
    assert problem.row == f"principals[{ALICE}].policies"
    with raw(home) as (txn, dbs):
        txn.put(b"alias/payments", b"\xc1", db=dbs["aliases"])  # 0xc1: never valid msgpack
    report = verify(home, verifier=built.verifier)
    assert [(p.kind, p.row) for p in report.problems][0] == ("projection", "aliases[alias/payments]")
    assert "does not decode" in report.problems[0].message


def test_a_row_doctored_when_the_checkpoint_was_signed_is_caught_after_it_is_put_back(
        built: Built, tmp_path: Path) -> None:
    """The signed state digest is evidence the file cannot take back: the
    service signed while serving from a doctored policy; the attacker
    restores the row afterwards, and the checkpoint still tells."""
    home = copy_of(built, tmp_path / "copy")
    with raw(home) as (txn, dbs):
        original = bytes(txn.get(key_row(built.key), db=dbs["keys"]))
        state = decode_row("keys", original)
        txn.put(key_row(built.key), encode_row(replace(state, policy=state.policy.replace("kms:*", "kms:+"))),
                db=dbs["keys"])
    with keyledger.open(home) as kms:
        signed = kms.checkpoint()
    with raw(home) as (txn, dbs):
        txn.put(key_row(built.key), original, db=dbs["keys"])
    report = verify(home, signed.note, verifier=built.verifier)
    [problem] = report.problems
    assert (problem.kind, problem.checkpoint_size) == ("state", signed.size)
    assert f"the projection state signed in the checkpoint of size {signed.size} is not the log's" \
        in problem.message
    assert signed.size in report.checkpoints_ok and signed.size not in report.states_ok


def test_kek_rows_against_the_keys_lifecycle(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    clock = Clock(T0)
    with keyledger.open(home, create=True, clock=clock) as kms:
        live = kms.create_key().key_metadata.key_id
        gone = kms.create_key().key_metadata.key_id
        kms.schedule_key_deletion(gone, pending_window_in_days=7)
        clock.now += timedelta(days=8)
        kms.list_keys()  # applies the deletion that fell due: the KEK row goes
    assert verify(home).ok
    with raw(home) as (txn, dbs):
        wrapped = bytes(txn.get(live.encode(), db=dbs["keks"]))
        txn.put(gone.encode(), wrapped, db=dbs["keks"])  # shredding "undone"
        txn.delete(live.encode(), db=dbs["keks"])  # a live key's KEK lost
        txn.put(b"no-such-key", wrapped, db=dbs["keks"])
    report = verify(home)
    assert {(p.kind, p.row) for p in report.problems} == {
        ("kek", f"keks[{gone}]"), ("kek", f"keks[{live}]"), ("kek", "keks[no-such-key]")}
    messages = " ".join(p.message for p in report.problems)
    assert "deleted (crypto-shredded) in the log but its KEK row is present" in messages
    assert "Enabled in the log but its KEK row is missing" in messages
    assert "a KEK row for a key the log never created" in messages
    assert wrapped.hex() not in messages and base64.b64encode(wrapped).decode() not in messages


def test_the_signer_refuses_a_row_that_does_not_decode(built: Built, tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    with raw(home) as (txn, dbs):
        txn.put(key_row(built.key), b"\xc1", db=dbs["keys"])
    with keyledger.open(home) as kms:
        with pytest.raises(LedgerError, match=rf"keys\[{built.key}\]: the live row does not decode"):
            kms.checkpoint()
