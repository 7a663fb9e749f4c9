"""The audit, forensics, bill and prove-decryptable commands, through click's
CliRunner on real ledgers.

The commands are registered here on a copy of `keyledger`'s main group, as
the lead registers them (`main.add_command(audit)`, ...), so `--home` and
`--output` come from the real global options; one test also runs a group
alone with KEYLEDGER_HOME. The ledgers are built through the library with a
hand-set clock, so times in queries and bills are known.
"""

from __future__ import annotations

import base64
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from msgspec.structs import replace

import keyledger
from keyledger.cli.audit import audit
from keyledger.cli.bill import bill
from keyledger.cli.forensics import forensics
from keyledger.cli.main import main
from keyledger.cli.replay_prove import prove_decryptable
from keyledger import checkpoint as cp
from keyledger import events as ev
from keyledger.errors import AccessDeniedException
from keyledger.store import Store
from keyledger.projections import decode_row, encode_row, key_row

T0 = datetime(2031, 6, 1, tzinfo=timezone.utc)
ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:"


def keyledger_cli() -> click.Group:
    """`keyledger` with the new commands registered."""
    group = click.Group("keyledger", callback=main.callback, params=main.params,
                        context_settings=main.context_settings, help=main.help)
    for name, command in main.commands.items():
        group.add_command(command, name)
    for command in (audit, forensics, bill, prove_decryptable):
        group.add_command(command)
    return group


KEYLEDGER = keyledger_cli()


def run(home: Path, *args: str, expect: int = 0, input: str | None = None) -> Result:
    result = CliRunner().invoke(KEYLEDGER, ["--home", str(home), *args], input=input, catch_exceptions=False)
    assert result.exit_code == expect, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.output
    return result


def run_json(home: Path, *args: str, expect: int = 0) -> Any:
    return json.loads(run(home, *args, expect=expect).stdout)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Built:
    def __init__(self, home: Path, key: str, other: str, blob: bytes, times: dict[str, datetime],
                 vkey: str) -> None:
        self.home, self.key, self.other, self.blob, self.times, self.vkey = home, key, other, blob, times, vkey


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A ledger of a few dozen records over June 2031, with two checkpoints."""
    clock = Clock()
    home = tmp_path_factory.mktemp("audit-cli") / "ledger"
    times = {}
    with keyledger.open(home, create=True, clock=clock, durability="relaxed") as kms:
        key = kms.create_key(description="orders").key_metadata.key_id
        other = kms.create_key(description="other").key_metadata.key_id
        kms.create_alias("alias/orders", key)
        clock.now += timedelta(hours=1)
        kms.create_user("alice")
        kms.put_principal_policy(ALICE, "enc", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["kms:Encrypt"], "Resource": "*"}]}))
        clock.now += timedelta(days=1)
        times["encrypts"] = clock.now
        blob = kms.as_caller(ALICE).encrypt(key, b"secret", encryption_context={"o": "1"}).ciphertext_blob
        for i in range(5):
            clock.now += timedelta(hours=1)
            kms.encrypt(other if i % 2 else key, b"x")
        kms.checkpoint()
        clock.now += timedelta(days=1)
        times["denied"] = clock.now
        with pytest.raises(AccessDeniedException):
            kms.as_caller(ALICE).decrypt(blob, encryption_context={"o": "1"})
        kms.decrypt(blob, encryption_context={"o": "1"})
        kms.checkpoint()
        vkey = kms.verifier_key()
    return Built(home, key, other, blob, times, vkey)


def copy_of(built: Built, dest: Path) -> Path:
    shutil.copytree(built.home, dest, ignore=shutil.ignore_patterns("lock.mdb"))
    return dest


def records(home: Path) -> list[ev.Record]:
    store = Store(str(home), readonly=True)
    try:
        return list(store.records())
    finally:
        store.close()


# -- help and registration --------------------------------------------------------------

def test_every_new_command_has_help() -> None:
    groups = {"audit": audit, "forensics": forensics}
    for name, group in groups.items():
        assert group.help
        for sub, command in group.commands.items():
            assert command.help, f"{name} {sub}"
            assert "Show this message" in CliRunner().invoke(KEYLEDGER, [name, sub, "--help"]).stdout
    assert set(audit.commands) == {"public-key", "checkpoint", "verify", "prove", "prove-consistency",
                                   "verify-proof", "log"}
    assert set(forensics.commands) == {"ciphertext", "key", "at", "who-can", "signature", "access-key"}
    assert bill.help and prove_decryptable.help


def test_a_group_alone_takes_its_home_from_the_environment(built: Built) -> None:
    result = CliRunner().invoke(audit, ["public-key"], env={"KEYLEDGER_HOME": str(built.home)})
    assert result.exit_code == 0 and result.stdout == built.vkey + "\n"


# -- public key, checkpoint, verify ------------------------------------------------------

def test_public_key_and_verify_on_a_copy_without_the_root_key(built: Built, tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    (home / "root.key").unlink()
    (home / "checkpoint.key").unlink()
    before = (home / "data.mdb").read_bytes()
    assert run(home, "audit", "public-key").stdout == built.vkey + "\n"
    n = len(records(home))
    result = run(home, "audit", "verify", "--public-key", built.vkey)
    lines = result.stdout.splitlines()
    assert lines[0] == f"verifier key: {built.vkey}"
    assert lines[1] == f"records verified: {n}"
    assert lines[-1] == "verdict: OK" and len([x for x in lines if x.startswith("checkpoint of size")]) == 2
    data = run_json(home, "audit", "verify", "--json")
    assert data["Ok"] and data["Records"] == n and data["FirstBadSeq"] is None
    assert data["Verifier"] == {"Key": built.vkey, "Source": "ledger"}
    assert "recorded in the ledger itself" in run(home, "audit", "verify").stdout
    assert (home / "data.mdb").read_bytes() == before  # read-only


def test_checkpoint_to_stdout_and_to_a_file(built: Built, tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    note = run(home, "audit", "checkpoint").stdout.encode()
    name, public = cp.parse_verifier_key(built.vkey)
    c = cp.verify(note, name, public)
    assert c.size == len(records(home))
    out = tmp_path / "cp.note"
    result = run(home, "audit", "checkpoint", "--out", str(out))
    assert result.stdout == "" and f"checkpoint of size {c.size} written" in result.stderr
    assert cp.verify(out.read_bytes(), name, public).root == c.root
    kept = run_json(home, "audit", "verify", "--json", "--checkpoint", str(out), "--public-key", built.vkey)
    assert kept["Ok"] and kept["CheckpointsOk"][-1] == c.size


def test_verify_with_a_stranger_key_or_no_ledger_fails(built: Built, tmp_path: Path) -> None:
    with keyledger.open(tmp_path / "stranger", create=True) as other:
        stranger = other.verifier_key()
    result = run(built.home, "audit", "verify", "--public-key", stranger, expect=1)
    assert "FAIL (signature)" in result.stdout and result.stdout.endswith("verdict: FAILED\n")
    keyfile = tmp_path / "vkey"
    keyfile.write_text(built.vkey + "\n")
    assert run(built.home, "audit", "verify", "--public-key-file", str(keyfile)).stdout.endswith("verdict: OK\n")
    run(built.home, "audit", "verify", "--public-key", "not-a-key", expect=2)
    missing = run(tmp_path / "nothing-here", "audit", "verify", expect=1)
    assert "no ledger at" in missing.stderr


# -- proofs -------------------------------------------------------------------------------

def test_prove_and_verify_proof(built: Built, tmp_path: Path) -> None:
    proof = run_json(built.home, "audit", "prove", "3")
    assert proof["Type"] == "inclusion" and proof["Seq"] == 3
    assert proof["TreeSize"] == len(records(built.home))  # the newest stored checkpoint
    assert proof["RootHash"] == proof["Checkpoint"].split("\n")[2]  # base64, as in the note
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    ok = run(tmp_path, "audit", "verify-proof", str(path), "--public-key", built.vkey)
    assert ok.stdout == f"OK: record 3 is in the checkpointed log of size {proof['TreeSize']}\n"
    # from stdin, and with the key in a file
    keyfile = tmp_path / "vkey"
    keyfile.write_text(built.vkey)
    run(tmp_path, "audit", "verify-proof", "-", "--public-key-file", str(keyfile), input=json.dumps(proof))

    record = base64.b64decode(proof["Record"])
    altered = [
        {**proof, "Record": base64.b64encode(record[:-1] + bytes([record[-1] ^ 1])).decode()},
        {**proof, "Proof": proof["Proof"][:-1]},
        {**proof, "Proof": [*proof["Proof"], proof["Proof"][0]]},
        {**proof, "Proof": [base64.b64encode(bytes(32)).decode(), *proof["Proof"][1:]]},
        {**proof, "Seq": 4},
        {**proof, "TreeSize": proof["TreeSize"] - 1},
        {**proof, "RootHash": base64.b64encode(bytes(32)).decode()},
        {**proof, "Checkpoint": proof["Checkpoint"].replace("\n", "\n1", 1)},
        {**proof, "Checkpoint": 7},
        {**proof, "Type": "something"},
        {"Type": "inclusion"},
        {"type": "inclusion"},
    ]
    for bad in altered:
        path.write_text(json.dumps(bad))
        result = run(tmp_path, "audit", "verify-proof", str(path), "--public-key", built.vkey, expect=1)
        assert result.stdout.startswith("FAILED: ")
    path.write_text("{not json")
    assert run(tmp_path, "audit", "verify-proof", str(path), "--public-key", built.vkey, expect=1) \
        .stdout.startswith("FAILED")
    path.write_text(json.dumps(proof))
    with keyledger.open(tmp_path / "stranger", create=True) as other:
        stranger = other.verifier_key()
    run(tmp_path, "audit", "verify-proof", str(path), "--public-key", stranger, expect=1)
    run(tmp_path, "audit", "verify-proof", str(path), expect=2)  # the key is required


def test_prove_against_an_older_checkpoint_file(built: Built, tmp_path: Path) -> None:
    store = Store(str(built.home), readonly=True)
    with store.snapshot() as snap:
        older, newer = snap.checkpoints()
    store.close()
    old_file = tmp_path / "old.note"
    old_file.write_bytes(older)
    old_size = cp.parse(older)[0].size
    proof = run_json(built.home, "audit", "prove", "0", "--checkpoint", str(old_file))
    assert proof["TreeSize"] == old_size
    too_new = run(built.home, "audit", "prove", str(old_size), "--checkpoint", str(old_file), expect=1)
    assert f"not in the checkpointed tree of size {old_size}" in too_new.stderr
    with keyledger.open(tmp_path / "stranger", create=True) as other:
        foreign = other.checkpoint().note
    (tmp_path / "foreign.note").write_bytes(foreign)
    run(built.home, "audit", "prove", "0", "--checkpoint", str(tmp_path / "foreign.note"), expect=1)


def test_prove_consistency_by_size_and_by_file(built: Built, tmp_path: Path) -> None:
    store = Store(str(built.home), readonly=True)
    with store.snapshot() as snap:
        older, newer = snap.checkpoints()
    store.close()
    a, b = cp.parse(older)[0].size, cp.parse(newer)[0].size
    proof = run_json(built.home, "audit", "prove-consistency", str(a), str(b))
    assert (proof["Type"], proof["OldSize"], proof["NewSize"]) == ("consistency", a, b)
    path = tmp_path / "consistency.json"
    path.write_text(json.dumps(proof))
    assert run(tmp_path, "audit", "verify-proof", str(path), "--public-key", built.vkey).stdout == \
        f"OK: the log of size {b} extends the log of size {a}\n"
    (tmp_path / "a").write_bytes(older)
    (tmp_path / "b").write_bytes(newer)
    by_file = run_json(built.home, "audit", "prove-consistency", "--old-checkpoint", str(tmp_path / "a"),
                       "--new-checkpoint", str(tmp_path / "b"))
    assert by_file == proof
    for bad in ({**proof, "Proof": proof["Proof"][1:]}, {**proof, "OldSize": a + 1},
                {**proof, "OldCheckpoint": newer.decode()}, {**proof, "OldRootHash": proof["RootHash"]}):
        path.write_text(json.dumps(bad))
        run(tmp_path, "audit", "verify-proof", str(path), "--public-key", built.vkey, expect=1)
    missing = run(built.home, "audit", "prove-consistency", str(a), "999", expect=1)
    assert f"no stored checkpoint of size 999 (stored sizes: {a}, {b})" in missing.stderr
    run(built.home, "audit", "prove-consistency", str(a), expect=2)
    run(built.home, "audit", "prove-consistency", str(b), str(a), expect=2)


def test_prove_on_a_rolled_back_copy_is_refused(built: Built, tmp_path: Path) -> None:
    home = copy_of(built, tmp_path / "copy")
    old = (home / "data.mdb").read_bytes()
    with keyledger.open(home) as kms:
        kms.encrypt(built.key, b"later")
        later = kms.checkpoint()
    (home / "data.mdb").write_bytes(old)
    (tmp_path / "later.note").write_bytes(later.note)
    result = run(home, "audit", "prove", "1", "--checkpoint", str(tmp_path / "later.note"), expect=1)
    assert f"fewer than the checkpoint of size {later.size}" in result.stderr


# -- the trail ----------------------------------------------------------------------------

def jsonl(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_log_filters(built: Built) -> None:
    all_records = records(built.home)
    everything = jsonl(run(built.home, "audit", "log"))
    assert [r["seq"] for r in everything] == list(range(len(all_records)))[::-1]  # newest first
    oldest = jsonl(run(built.home, "audit", "log", "--oldest-first", "--limit", "2"))
    assert [r["seq"] for r in oldest] == [0, 1] and oldest[0]["event"]["type"] == "KeyCreated"

    about_key = [r.seq for r in reversed(all_records) if built.key in ev.key_ids_of(r.event)]
    for form in (built.key, ARN + "key/" + built.key, "alias/orders", ARN + "alias/orders"):
        assert [r["seq"] for r in jsonl(run(built.home, "audit", "log", "--key-id", form))] == about_key
    assert "alias/nope does not exist now" in run(built.home, "audit", "log", "--key-id", "alias/nope",
                                                  expect=1).stderr

    by_alice = jsonl(run(built.home, "audit", "log", "--principal", ALICE))
    assert {r["principal"] for r in by_alice} == {ALICE} and len(by_alice) == 2
    errors = jsonl(run(built.home, "audit", "log", "--errors-only"))
    assert [(r["operation"], r["event"]["error_code"]) for r in errors] == [("Decrypt", "AccessDeniedException")]
    decrypts = jsonl(run(built.home, "audit", "log", "--event-name", "Decrypt", "--oldest-first"))
    assert [r["event"]["type"] for r in decrypts] == ["RequestDenied", "Decrypted"]

    since = built.times["denied"].isoformat().replace("+00:00", "Z")
    late = jsonl(run(built.home, "audit", "log", "--since", since))
    assert [r["operation"] for r in late] == ["Decrypt", "Decrypt"]
    window = jsonl(run(built.home, "audit", "log", "--since", "2", "--until", "4", "--oldest-first"))
    assert [r["seq"] for r in window] == [2, 3, 4]
    until = (built.times["encrypts"] - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")  # no offset: UTC
    assert max(r["seq"] for r in jsonl(run(built.home, "audit", "log", "--until", until))) < \
        min(r["seq"] for r in by_alice)
    run(built.home, "audit", "log", "--since", "yesterday", expect=2)
    digest = next(r for r in everything if r["event"]["type"] == "Encrypted")["event"]["ciphertext_digest"]
    assert len(base64.b64decode(digest, validate=True)) == 32  # bytes as base64, as in the notes


def test_log_formats(built: Built) -> None:
    table = run(built.home, "audit", "log", "--format", "table", "--errors-only").stdout.splitlines()
    assert table[0].split() == ["SEQ", "TIME", "PRINCIPAL", "EVENT", "NAME", "EVENT", "KEY", "RESULT"]
    assert table[1].split()[2:5] == [ALICE, "Decrypt", "RequestDenied"]
    assert table[1].split()[-1] == "AccessDeniedException"
    assert run(built.home, "audit", "log", "--format", "table", "--principal", "arn:aws:iam::1:user/x") \
        .stdout == "no matching records\n"

    trail = json.loads(run(built.home, "audit", "log", "--format", "cloudtrail", "--oldest-first").stdout)
    assert list(trail) == ["Records"] and len(trail["Records"]) == len(records(built.home))
    first = trail["Records"][0]
    assert (first["eventName"], first["eventSource"], first["awsRegion"]) == \
        ("CreateKey", "kms.amazonaws.com", "us-east-1")
    denied = [r for r in trail["Records"] if "errorCode" in r]
    assert [(r["eventName"], r["errorCode"], r["userIdentity"]["arn"]) for r in denied] == \
        [("Decrypt", "AccessDeniedException", ALICE)]
    assert json.loads(run(built.home, "audit", "log", "--format", "cloudtrail", "--limit", "0").stdout) == \
        {"Records": []}


# -- forensics ------------------------------------------------------------------------------

def test_forensics_ciphertext(built: Built, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(built.blob)
    found = run_json(built.home, "forensics", "ciphertext", "--ciphertext-blob", f"fileb://{path}")
    assert (found["KeyId"], found["KeyVersion"]) == (built.key, 1)
    assert found["KeyArn"] == ARN + "key/" + built.key
    assert found["ProducedBy"]["Principal"] == ALICE
    assert [u["Event"] for u in found["LaterUses"]] == ["Decrypted"]
    assert run_json(built.home, "forensics", "ciphertext", "--ciphertext-blob",
                    base64.b64encode(built.blob).decode()) == found
    result = run(built.home, "forensics", "ciphertext", "--ciphertext-blob",
                 base64.b64encode(b"garbage").decode(), expect=2)
    assert "not a keyledger ciphertext" in result.stderr


def test_forensics_key_at_and_who_can(built: Built) -> None:
    timeline = run_json(built.home, "forensics", "key", "alias/orders")
    assert timeline["KeyId"] == built.key and timeline["AliasesNow"] == ["alias/orders"]
    assert [e["Event"] for e in timeline["Timeline"]][:2] == ["KeyCreated", "AliasCreated"]
    assert timeline["UsageByPrincipal"] == [{"Principal": ROOT, "Requests": 4}, {"Principal": ALICE, "Requests": 1}]
    run(built.home, "forensics", "key", "00000000-0000-4000-8000-000000000000", expect=1)

    at_start = run_json(built.home, "forensics", "at", "0")
    assert [k["KeyId"] for k in at_start["Keys"]] == [built.key] and at_start["Until"] == {"Seq": 0}
    later = run_json(built.home, "forensics", "at", built.times["denied"].isoformat())
    assert {k["KeyId"] for k in later["Keys"]} == {built.key, built.other}
    assert next(k for k in later["Keys"] if k["KeyId"] == built.key)["Aliases"] == ["alias/orders"]
    run(built.home, "forensics", "at", "soon", expect=2)

    who = run_json(built.home, "forensics", "who-can", "--key-id", "alias/orders", "--action", "kms:Encrypt")
    assert {a["Principal"] for a in who["Allowed"]} == {ROOT, ALICE}
    decrypt = run_json(built.home, "forensics", "who-can", "--key-id", built.key)
    assert {a["Principal"] for a in decrypt["Allowed"]} == {ROOT}
    assert ALICE in {d["Principal"] for d in decrypt["Denied"]}
    before_alice = run_json(built.home, "forensics", "who-can", "--key-id", built.key, "--action",
                            "kms:Encrypt", "--at", (T0 + timedelta(minutes=1)).isoformat())
    assert {a["Principal"] for a in before_alice["Allowed"]} == {ROOT}
    assert ALICE not in {d["Principal"] for d in before_alice["Denied"]}  # she did not exist yet
    run(built.home, "forensics", "who-can", "--key-id", built.key, "--at", "3", expect=2)


# -- the bill -------------------------------------------------------------------------------

def test_bill(built: Built) -> None:
    data = run_json(built.home, "bill", "--month", "2031-06")
    every = records(built.home)
    iam = [r for r in every if r.operation in ("CreateUser", "PutUserPolicy")]
    assert iam  # IAM's (and STS's) own requests are free in AWS: no KMS request to bill
    assert data["Month"] == "2031-06" and data["HoursInMonth"] == 720
    assert data["RequestCount"] == len(every) - len(iam)  # one record per request here, none by the service
    assert not {"CreateUser", "PutUserPolicy"} & set(data.get("Requests", {}))
    assert {k["KeyId"] for k in data["Keys"]} == {built.key, built.other}
    # two keys created at the start of June, alive to its end: $2.00; requests negligible
    assert data["KeyCost"] == "$2.00" and data["Total"] == "$2.00"
    key = next(k for k in data["Keys"] if k["KeyId"] == built.key)
    assert key["BillableHours"] == 720 and key["KeyArn"] == ARN + "key/" + built.key
    assert key["Requests"]["Encrypt"] == 4 and key["Requests"]["Decrypt"] == 2
    text = run(built.home, "bill", "--month", "2031-06", "--output", "text").stdout
    assert text.startswith("bill for 2031-06 (720 hours)\n") and text.endswith("total:    $2.00\n")
    assert built.key in text and "Encrypt=4" in text
    assert run(built.home, "--output", "text", "bill", "--month", "2031-06").stdout == text
    assert run_json(built.home, "bill", "--month", "2031-05")["Total"] == "$0.00"
    run(built.home, "bill", "--month", "June", expect=2)


# -- prove-decryptable ------------------------------------------------------------------------

def _corpus(kms: keyledger.KeyLedger, key: str) -> list[str]:
    lines = []
    for i in range(3):
        ctx = {"i": str(i)}
        blob = kms.encrypt(key, b"x", encryption_context=ctx).ciphertext_blob
        lines.append(f"{base64.b64encode(blob).decode()}\t{json.dumps(ctx)}")
    lines.append(base64.b64encode(kms.encrypt(key, b"no context").ciphertext_blob).decode())
    return lines


def test_prove_decryptable(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    clock = Clock()
    with keyledger.open(home, create=True, clock=clock) as kms:
        key = kms.create_key().key_metadata.key_id
        gone = kms.create_key().key_metadata.key_id
        lines = _corpus(kms, key)
        kms.encrypt(gone, b"soon unreadable")
        kms.schedule_key_deletion(gone, pending_window_in_days=7)
        clock.now += timedelta(days=8)
        kms.rotate_due()
    result = run(home, "prove-decryptable")
    assert result.stderr == ""  # no progress off a terminal
    assert f"key {key} (Enabled): OK\n  version 1: 4 ciphertext(s) issued; material unwraps and matches its KCV" \
        in result.stdout
    assert f"key {gone} (Deleted): crypto-shredded" in result.stdout
    assert result.stdout.endswith("verdict: OK\n")

    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("\n".join(lines) + "\n")
    ok = run(home, "prove-decryptable", "--ciphertexts", str(corpus))
    assert "corpus: 4 ciphertext(s) to open, 4 opened" in ok.stdout
    data = run_json(home, "--output", "json", "prove-decryptable", "--ciphertexts", str(corpus))
    assert data["Ok"] and data["Corpus"] == {"Total": 4, "Opened": 4, "Failures": []}
    assert {k["KeyId"]: k["Verdict"] for k in data["Keys"]} == {key: "ok", gone: "shredded"}

    blob, _ = lines[1].split("\t")
    corpus.write_text("\n".join([lines[0], blob + '\t{"i": "wrong"}', *lines[2:]]) + "\n")
    failed = run(home, "prove-decryptable", "--ciphertexts", str(corpus), expect=1)
    assert "  FAIL line 2: does not open (wrong context or altered)\n" in failed.stdout
    assert failed.stdout.endswith("verdict: FAILED\n")

    corpus.write_text(lines[0] + "\nnot base64 at all\n")
    assert "line 2: expected" in run(home, "prove-decryptable", "--ciphertexts", str(corpus), expect=2).stderr


def test_prove_decryptable_fails_on_a_corrupted_projection_row(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        key = kms.create_key().key_metadata.key_id
        lines = _corpus(kms, key)
    store = Store(str(home))  # a bad row written on the (test's own) ledger
    try:
        with store.env.begin(write=True) as txn:
            db = store._dbs["keys"]
            state = decode_row("keys", txn.get(key_row(key), db=db))
            [v1] = state.versions
            wrapped = bytearray(v1.wrapped)
            wrapped[20] ^= 0x04
            txn.put(key_row(key), encode_row(replace(state, versions=(replace(v1, wrapped=bytes(wrapped)),))),
                    db=db)
    finally:
        store.close()
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("\n".join(lines))
    result = run(home, "prove-decryptable", "--ciphertexts", str(corpus), expect=1)
    assert f"key {key} (Enabled): FAILED\n  version 1: 4 ciphertext(s) issued; FAILED: version 1 of key {key} " \
           "does not unwrap" in result.stdout
    assert "corpus: 4 ciphertext(s) to open, 0 opened" in result.stdout
    assert result.stdout.endswith("verdict: FAILED\n")


def test_audit_log_by_where_requests_came_from(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        key = kms.create_key().key_metadata.key_id  # the library: no address
        kms.from_address("10.1.2.3", True).encrypt(key, b"a")
        kms.from_address("10.9.9.9", False).describe_key(key)
        kms.from_address("2001:db8::5", True).encrypt(key, b"b")
    lines = [json.loads(x) for x in run(home, "audit", "log", "--source-ip", "10.0.0.0/8",
                                        "--oldest-first").stdout.splitlines()]
    assert [(x["operation"], x["source"]) for x in lines] == [("Encrypt", "10.1.2.3"), ("DescribeKey", "10.9.9.9")]
    one = [json.loads(x) for x in run(home, "audit", "log", "--source-ip", "2001:db8::5").stdout.splitlines()]
    assert [x["source"] for x in one] == ["2001:db8::5"]
    everything = [json.loads(x) for x in run(home, "audit", "log").stdout.splitlines()]
    assert "source" not in everything[-1] and everything[-1]["operation"] == "CreateKey"  # newest first
    trail = json.loads(run(home, "audit", "log", "--format", "cloudtrail", "--source-ip", "10.1.2.3").stdout)
    assert [r["sourceIPAddress"] for r in trail["Records"]] == ["10.1.2.3"]
    refused = run(home, "audit", "log", "--source-ip", "office", expect=2)
    assert "not an IP address or CIDR network" in refused.stderr
