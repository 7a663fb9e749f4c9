"""init, rotate-due, the demo, and the help text of every command."""

from __future__ import annotations

import re
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest
from click.testing import CliRunner

import keyledger
from keyledger import operations as ops
from keyledger.cli import kms as kms_commands
from keyledger.cli.main import main
from keyledger.service import KeyLedger

if TYPE_CHECKING:
    from conftest import Cli

README = Path(__file__).resolve().parents[2] / "README.md"


def test_init_with_region_and_account(cli: Cli) -> None:
    out = cli.json("init", "--region", "eu-west-1", "--account", "123456789012")
    assert out == {"Home": str(cli.home.resolve()), "Region": "eu-west-1", "Account": "123456789012"}
    mode = stat.S_IMODE((cli.home / "root.key").stat().st_mode)
    assert mode == 0o600
    key = cli.create_key()
    arn = cli.json("describe-key", "--key-id", key)["KeyMetadata"]["Arn"]
    assert arn == f"arn:aws:kms:eu-west-1:123456789012:key/{key}"
    # init again: same ledger, nothing changes; another region is refused
    assert cli.json("init") == out
    assert cli("init", "--region", "us-east-1", expect=1).stderr.startswith("keyledger: error: ")


def test_init_takes_the_global_options_too(cli: Cli) -> None:
    out = cli.json("--region", "ap-south-1", "--account", "999988887777", "init")
    assert (out["Region"], out["Account"]) == ("ap-south-1", "999988887777")


def test_home_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYLEDGER_HOME", str(tmp_path / "env-home"))
    result = CliRunner().invoke(main, ["init", "--output", "text"])
    assert result.exit_code == 0, result.output
    # text output: the scalars in key order (Account, Home, Region), tab-separated
    assert result.stdout == f"111122223333\t{tmp_path / 'env-home'}\tus-east-1\n"


def test_rotate_due_appends_the_rotations_that_fell_due(cli: Cli) -> None:
    first = cli.json("rotate-due")
    assert (first["Rotated"], first["Deleted"]) == (0, 0)
    past = datetime.now(timezone.utc) - timedelta(days=400)
    with keyledger.open(cli.home, clock=lambda: past) as kms:
        rotating = kms.create_key().key_metadata.key_id
        kms.enable_key_rotation(rotating, rotation_period_in_days=90)  # due 4 times since
        doomed = kms.create_key().key_metadata.key_id
        kms.schedule_key_deletion(doomed, pending_window_in_days=7)
    swept = cli.json("rotate-due")
    assert (swept["Rotated"], swept["Deleted"]) == (4, 1)
    again = cli.json("rotate-due")
    assert (again["Rotated"], again["Deleted"]) == (0, 0)
    # each sweep signs a checkpoint of the whole log as it then is
    # a sweep with nothing due appends nothing, so its checkpoint is the same tree
    assert again["CheckpointTreeSize"] == swept["CheckpointTreeSize"] > first["CheckpointTreeSize"]
    with keyledger.open(cli.home) as kms, kms.store.snapshot() as snap:
        assert len(snap.checkpoints()) == 2
    rotations = cli.json("list-key-rotations", "--key-id", rotating)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"] * 4


DEMO_SUMMARY = re.compile(
    r"summary\n"
    r"  keys          A [0-9a-f]{8} \(3 versions: ORIGINAL, ON_DEMAND, AUTOMATIC\), B [0-9a-f]{8} \(1 version\)\n"
    r"  alias         alias/demo-[0-9a-f]{8} -> key B\n"
    r"  ciphertexts   5 encrypted \(key A v1, key A v1, key A v2, key A v3, key B v1\); 5/5 decrypted\n"
    r"  log           (\d+) records \((\d+) from this run\)\n"
    r"  replay check  OK: hash chain intact, 0 difference\(s\)\n$")


def test_demo_runs_end_to_end_and_can_be_rerun(cli: Cli) -> None:
    first = DEMO_SUMMARY.search(cli("demo").stdout)
    assert first, "the demo's summary is not as expected"
    assert first.group(1) == first.group(2)  # a fresh ledger: every record is this run's
    out = cli("demo").stdout
    second = DEMO_SUMMARY.search(out)
    assert second, out
    assert int(second.group(1)) == int(first.group(1)) + int(second.group(2))
    assert "refused with InvalidCiphertextException" in out
    cli("replay", "--check")

    # the demo jumped its clock; the log's times never run backwards
    with keyledger.open(cli.home) as kms, kms.store.snapshot() as snap:
        times = [r.time for r in snap.records()]
    assert times == sorted(times)
    assert times[-1] > times[0] + 2 * 365 * 86_400 * 10**6


def test_demo_uses_its_own_ledger_unless_home_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real"
    monkeypatch.setenv("KEYLEDGER_HOME", str(real))
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    assert not real.exists()  # the real ledger got no future-dated records, nor any file
    temporary = re.search(r"on a temporary ledger (\S+)", result.stdout)
    assert temporary, result.stdout
    assert not Path(temporary.group(1)).exists()  # removed at the end


def _commands() -> dict[str, click.Command]:
    return dict(main.commands)


# The `aws kms` commands are generated from botocore's model (cli/kms.py), one per model operation the
# library implements: derived here, never listed. keyledger's own verbs are listed, each with why.
OWN_VERBS = {
    "init", "demo", "serve",  # a ledger: make one, show one, serve one over HTTP
    "rotate-due", "rotate-root-key",  # maintenance: the rotation sweep, crypto-shredding's root rewrap
    "stage-root-key",  # a cluster's next root key, placed on each node before `cluster rotate-root-key`
    "replay", "audit", "forensics", "bill",  # the read-only audit side
    "iam", "policy",  # groups: IAM users, roles, policies, access keys; the policy simulator
    "sts",  # group: assume-role, temporary credentials for a role (cli/iam.py)
    "ssm",  # group: the parameter store (SSM's operations)
    "encrypt-file", "decrypt-file",  # issue 14: envelope encryption (cli/files.py)
    "cluster",  # issue 15: group, a node's status, join, compact (cli/cluster.py)
}
GENERATED = {command.name for command in kms_commands.COMMANDS}
EXPECTED = GENERATED | OWN_VERBS


def _implemented_model_operations() -> set[str]:
    """The model's operations KeyLedger has a method for, as command names."""
    return {ops.kebab(name) for name in ops.MODEL["operations"]
            if callable(getattr(KeyLedger, ops.snake(name), None))}


def test_rotate_root_key_rewraps_and_keeps_every_key_usable(cli: Cli) -> None:
    key = cli.json("create-key")["KeyMetadata"]["KeyId"]
    before = (cli.home / "root.key").read_bytes()
    assert cli.json("rotate-root-key") == {"KeksRewrapped": 1}
    assert (cli.home / "root.key").read_bytes() != before
    assert cli.json("describe-key", "--key-id", key)["KeyMetadata"]["Enabled"] is True


def test_stage_root_key_writes_the_next_key_and_prints_its_check(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    staged = cli.json("stage-root-key")
    path = cli.home / "root.key.staged"
    assert staged["Path"] == str(path.resolve()) and len(staged["StagedRootKeyCheck"]) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32
    copy = tmp_path / "copied.key"
    copy.write_bytes(path.read_bytes())
    assert cli.json("stage-root-key", "--key-file", str(copy)) == staged  # the same key: the same check
    copy.write_bytes(b"short")
    assert "32 bytes" in cli("stage-root-key", "--key-file", str(copy), expect=1).output
    copy.write_bytes((cli.home / "root.key").read_bytes())
    assert "current root key" in cli("stage-root-key", "--key-file", str(copy), expect=1).output


def test_every_operation_is_a_command() -> None:
    implemented = _implemented_model_operations()
    assert GENERATED == implemented, (
        f"generated but not implemented: {sorted(GENERATED - implemented)}; "
        f"implemented but no command: {sorted(implemented - GENERATED)}")
    commands = _commands()
    for command in kms_commands.COMMANDS:  # registered as generated, not shadowed by a hand-written one
        assert commands[command.name] is command
    every_model_operation = {ops.kebab(name) for name in ops.MODEL["operations"]}
    assert not OWN_VERBS & every_model_operation, "an own verb is named like an AWS KMS operation"
    assert set(commands) == EXPECTED, (f"unlisted: {sorted(set(commands) - EXPECTED)}; "
                                       f"missing: {sorted(EXPECTED - set(commands))}")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_command_has_help(name: str) -> None:
    command = _commands()[name]
    assert command.help and len(command.help.strip()) > 20
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts[0]} has no help"
    result = CliRunner().invoke(main, [name, "--help"], prog_name="keyledger")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: keyledger {name} [OPTIONS]")
    assert command.help.split()[0] in result.stdout


def test_every_command_is_in_the_readme() -> None:
    text = README.read_text() if README.exists() else ""
    missing = sorted(name for name in EXPECTED if f"keyledger {name}" not in text and f"`{name}`" not in text)
    assert not missing, f"not in README.md: {missing}"
    for name, group in main.commands.items():  # and every subcommand of a group
        for sub in getattr(group, "commands", {}):
            assert f"{name} {sub}" in text, f"`keyledger {name} {sub}` is not in README.md"
