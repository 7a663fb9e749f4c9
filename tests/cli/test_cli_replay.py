"""replay --check (passing, a tampered projection, a broken chain) and replay --until."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from msgspec.structs import replace

import keyledger
from keyledger.projections import decode_row, encode_row, key_row

if TYPE_CHECKING:
    from conftest import Cli

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


class StepClock:
    """A clock the test sets by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_check_passes_on_a_healthy_ledger(cli: Cli, key: str) -> None:
    cli("encrypt", "--key-id", key, "--plaintext", "x")
    result = cli("replay", "--check")
    assert result.stdout == ("records checked: 2\n"
                             "hash chain:      ok\n"
                             "projections:     match the log\n"
                             "verdict:         OK\n")
    assert result.stderr == ""  # no progress when stderr is not a terminal


def test_check_as_json(cli: Cli, key: str) -> None:
    assert cli.json("--output", "json", "replay", "--check") == {
        "RecordsChecked": 1, "ChainOk": True, "Differences": [], "Ok": True}


def test_check_fails_on_a_wrong_projection_row(cli: Cli, key: str) -> None:
    with keyledger.open(cli.home) as kms:
        store = kms.store
        with store.env.begin(write=True) as txn:
            db = store._dbs["keys"]
            state = decode_row("keys", txn.get(key_row(key), db=db))
            txn.put(key_row(key), encode_row(replace(state, description="not what the log says")), db=db)
    result = cli("replay", "--check", expect=1)
    assert result.stdout == ("records checked: 1\n"
                             "hash chain:      ok\n"
                             "projections:     1 difference(s) from the log\n"
                             f"  keys[{key}]: live value differs from the replayed one\n"
                             "verdict:         FAILED\n")
    data = json.loads(cli("--output", "json", "replay", "--check", expect=1).stdout)
    assert data["Ok"] is False and data["ChainOk"] is True and len(data["Differences"]) == 1


def test_check_fails_on_a_broken_chain(cli: Cli, key: str) -> None:
    cli("encrypt", "--key-id", key, "--plaintext", "x")
    with keyledger.open(cli.home) as kms:
        store = kms.store
        seq1 = (1).to_bytes(8, "big")
        with store.env.begin(write=True) as txn:
            value = bytearray(txn.get(seq1, db=store._dbs["records"]))
            value[-1] ^= 0x01
            txn.put(seq1, bytes(value), db=store._dbs["records"])
    result = cli("replay", "--check", expect=1)
    assert "hash chain:      BROKEN at seq 1: hash does not match the record's bytes\n" in result.stdout
    assert result.stdout.endswith("verdict:         FAILED\n")
    # state at a point past the break cannot be trusted: an error, not a table
    until = cli("replay", "--until", "5", expect=1)
    assert until.stdout == ""
    assert until.stderr.startswith("keyledger: error: the hash chain breaks at seq 1")
    assert cli.json("replay", "--until", "0")["Keys"][0]["KeyId"] == key  # before the break is fine


@pytest.fixture
def history(cli: Cli) -> dict[str, object]:
    """A key created on 1 Jan 2024, tagged on 1 Feb, rotated on 1 Mar, disabled on 1 Apr."""
    clock = StepClock(T0)
    seqs = {}
    with keyledger.open(cli.home, create=True, clock=clock) as kms:
        key = kms.create_key(description="history").key_metadata.key_id
        seqs["created"] = kms.store.head().seq - 1
        clock.now = T0 + timedelta(days=31)
        kms.tag_resource(key, {"team": "payments"})
        kms.create_alias("alias/hist", key)
        seqs["tagged"] = kms.store.head().seq - 1
        clock.now = T0 + timedelta(days=60)
        kms.rotate_key_on_demand(key)
        seqs["rotated"] = kms.store.head().seq - 1
        clock.now = T0 + timedelta(days=91)
        kms.disable_key(key)
    return {"key": key, "seqs": seqs}


def test_until_seq(cli: Cli, history: dict) -> None:
    key, seqs = history["key"], history["seqs"]
    out = cli.json("replay", "--until", str(seqs["created"]))
    assert out == {"Until": {"Seq": seqs["created"]}, "Keys": [{
        "KeyId": key, "Arn": f"arn:aws:kms:us-east-1:111122223333:key/{key}", "KeyState": "Enabled",
        "Description": "history", "CreationDate": "2024-01-01T00:00:00Z",
        "Versions": [{"Version": 1, "CreationDate": "2024-01-01T00:00:00Z"}],
        "KeyRotationEnabled": False, "OnDemandRotations": 0, "Aliases": [], "Tags": []}]}

    [later] = cli.json("replay", "--until", str(seqs["rotated"]))["Keys"]
    assert later["Aliases"] == ["alias/hist"]
    assert later["Tags"] == [{"TagKey": "team", "TagValue": "payments"}]
    assert later["Versions"][1] == {"Version": 2, "CreationDate": "2024-03-01T00:00:00Z",
                                    "RotationType": "ON_DEMAND"}
    assert later["KeyState"] == "Enabled"


def test_until_time(cli: Cli, history: dict) -> None:
    def at(when: str) -> dict:
        return cli.json("replay", "--until", when)

    assert at("2023-12-31T23:59:59Z") == {"Until": {"Time": "2023-12-31T23:59:59Z"}, "Keys": []}
    [k] = at("2024-01-15")["Keys"]  # a naive time is UTC
    assert (k["KeyState"], len(k["Versions"]), k["Tags"]) == ("Enabled", 1, [])
    [k] = at("2024-02-15T00:00:00+00:00")["Keys"]
    assert (k["KeyState"], len(k["Versions"]), k["Aliases"]) == ("Enabled", 1, ["alias/hist"])
    [k] = at("2024-03-15T01:00:00+01:00")["Keys"]
    assert (k["KeyState"], len(k["Versions"])) == ("Enabled", 2)
    [k] = at("2030-01-01")["Keys"]
    assert k["KeyState"] == "Disabled"


def test_until_as_a_table(cli: Cli, history: dict) -> None:
    key = history["key"]
    out = cli("--output", "text", "replay", "--until", "2024-03-15").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "ID", "STATE", "VERSIONS", "ROTATION", "ALIASES", "TAGS"]
    assert lines[1].split() == [key, "Enabled", "2", "off", "alias/hist", "team=payments"]
    assert len(lines) == 2


def test_until_shows_rotation_settings(cli: Cli, key: str) -> None:
    cli("enable-key-rotation", "--key-id", key, "--rotation-period-in-days", "180")
    [k] = cli.json("replay", "--until", "999999")["Keys"]
    assert k["KeyRotationEnabled"] is True and k["RotationPeriodInDays"] == 180
    assert "NextRotationDate" in k


def test_until_on_an_empty_ledger(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    assert cli("--output", "text", "replay", "--until", "0").stdout == "no keys\n"
