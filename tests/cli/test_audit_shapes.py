"""One output vocabulary for the audit and replay commands (issue 9, point
4): PascalCase JSON, and every hash and Merkle root in base64, as in the
C2SP checkpoint note, so the same root reads the same in `audit
checkpoint`, `audit verify`, `audit prove` and `audit prove-consistency`;
`replay --until` and `forensics at` print one shape."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from click.testing import CliRunner

import keyledger
from keyledger import audit as audit_
from keyledger import checkpoint as cp
from keyledger.cli.main import main


def run(home: Path, *args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.stdout


def test_one_root_one_encoding(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        key = kms.create_key().key_metadata.key_id
        kms.encrypt(key, b"x")
        first = kms.checkpoint()
        kms.encrypt(key, b"y")
    note = run(home, "audit", "checkpoint")
    root_line, state_line = note.split("\n")[2], note.split("\n")[3]
    c = cp.parse(note.encode())[0]
    assert base64.b64decode(root_line) == c.root and state_line.startswith(cp.STATE_LINE + " ")

    text = run(home, "audit", "verify")
    assert f"merkle root: {root_line}\n" in text
    assert f"state hash: {state_line.split(' ')[1]}\n" in text
    assert f"checkpoint of size {c.size}: consistent with the log (and its projection state)\n" in text
    report = json.loads(run(home, "audit", "verify", "--json"))
    assert (report["RootHash"], report["StateHash"]) == (root_line, state_line.split(" ")[1])
    assert report["Ok"] is True and report["StatesOk"] == report["CheckpointsOk"] == [first.size, c.size]

    inclusion = json.loads(run(home, "audit", "prove", "1"))
    assert inclusion["RootHash"] == root_line
    consistency = json.loads(run(home, "audit", "prove-consistency", str(first.size), str(c.size)))
    assert (consistency["OldRootHash"], consistency["RootHash"]) == \
        (base64.b64encode(first.root).decode(), root_line)
    assert set(inclusion) == {"Type", "Seq", "TreeSize", "RootHash", "Record", "Proof", "Checkpoint"}

    # a proof written before the PascalCase names still verifies
    vkey = run(home, "audit", "public-key").strip()
    old = {"type": "inclusion", "seq": 1, "tree_size": inclusion["TreeSize"], "record": inclusion["Record"],
           "proof": inclusion["Proof"], "checkpoint": inclusion["Checkpoint"]}
    assert audit_.verify_proof(old, cp.parse_verifier_key(vkey))[0]


def test_replay_until_and_forensics_at_print_one_shape(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        key = kms.create_key(description="shape").key_metadata.key_id
        kms.create_alias("alias/shape", key)
    replayed = json.loads(run(home, "--output", "json", "replay", "--until", "1"))
    at = json.loads(run(home, "--output", "json", "forensics", "at", "1"))
    assert replayed == at
    assert replayed["Until"] == {"Seq": 1}
    [k] = replayed["Keys"]
    assert (k["KeyId"], k["Aliases"], k["Description"]) == (key, ["alias/shape"], "shape")
