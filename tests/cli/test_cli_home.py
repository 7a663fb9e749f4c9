"""The CLI and the ledger home: `init` is the only command that creates a
ledger; a missing, damaged or cut ledger is a one-line error (exit 1, never
a signal); an auditor with read access only can verify, query and replay;
a home open to others gets a warning; the demo runs on a temporary home."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

import keyledger
from keyledger.cli.main import main

if TYPE_CHECKING:
    from conftest import Cli

AUDIT_COMMANDS = [["audit", "verify"], ["audit", "log"], ["replay", "--check"], ["forensics", "key", "KEY"],
                  ["forensics", "at", "0"]]


def run(home: Path, *args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    """`keyledger --home HOME ARGS` in a child process (as another user if
    asked): a SIGBUS there is a failed assertion here, not a dead session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYLEDGER_")}
    return subprocess.run([*as_user(user), sys.executable, "-c", "from keyledger.cli.main import main; main()",
                           "--home", str(home), *args], capture_output=True, text=True, env=env, timeout=120,
                          cwd="/")


def as_user(user: int | None) -> list[str]:
    return [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]


NOBODY = 65534


def can_run_as_nobody() -> str | None:
    """Why the commands cannot run as another user here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root to run the commands as another user (the chmod test covers the rest)"
    if shutil.which("setpriv") is None:
        return "no setpriv(1) to run the commands as another user"
    probe = subprocess.run([*as_user(NOBODY), sys.executable, "-c", "import keyledger.cli.main"],
                           capture_output=True, text=True, cwd="/")
    if probe.returncode != 0:
        return f"user nobody cannot run this Python and keyledger: {probe.stderr.strip()[-200:]}"
    return None


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("built") / "ledger"
    assert CliRunner().invoke(main, ["--home", str(home), "init"]).exit_code == 0
    with keyledger.open(home) as kms:
        key = kms.create_key(description="audited").key_metadata.key_id
        for _ in range(30):
            kms.encrypt(key, b"y" * 3000)
        kms.checkpoint()
    return home, key


@pytest.fixture
def bare(cli: Cli) -> Callable[[Path], Cli]:
    """The conftest's driver on a given home, without its implicit `init`."""
    return lambda home: type(cli)(home, init=False)


def audit_commands(key: str) -> list[list[str]]:
    return [[key if arg == "KEY" else arg for arg in args] for args in AUDIT_COMMANDS]


# -- init is the only creator ---------------------------------------------------------

@pytest.mark.parametrize("args", [["describe-key", "--key-id", "1234abcd-12ab-34cd-56ef-1234567890ab"],
                                  ["list-keys"], ["create-key"], ["rotate-due"], ["audit", "verify"],
                                  ["replay", "--check"], ["iam", "list-users"]])
def test_a_missing_ledger_is_an_error_naming_the_path(bare: Callable[[Path], Cli], tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "typo"
    cli = bare(typo)
    result = cli(*args, expect=1)
    assert result.stdout == ""
    assert re.fullmatch(rf"keyledger: error: no ledger at {re.escape(str(typo))} \(.*\)\n", result.stderr)
    if args[0] not in ("audit", "replay"):
        assert result.stderr == (f"keyledger: error: no ledger at {typo} (run keyledger init --home {typo} "
                                 "to create one)\n")
    assert not typo.exists()


def test_the_default_home_is_not_created_either(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYLEDGER_HOME", str(tmp_path / "env-home"))
    result = CliRunner().invoke(main, ["list-keys"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"keyledger: error: no ledger at {tmp_path / 'env-home'} (run keyledger init")
    assert not (tmp_path / "env-home").exists()


def test_init_creates_and_then_every_command_works(bare: Callable[[Path], Cli], tmp_path: Path) -> None:
    cli = bare(tmp_path / "ledger")
    cli("init")
    key = cli.create_key()
    assert cli.json("describe-key", "--key-id", key)["KeyMetadata"]["KeyId"] == key


@pytest.mark.parametrize("lost", ["data.mdb", "both"])
def test_a_home_that_lost_its_log_is_refused_by_every_command(bare: Callable[[Path], Cli], tmp_path: Path, lost: str) -> None:
    cli = bare(tmp_path / "ledger")
    cli("init", "--region", "eu-west-1")
    cli.create_key()
    (cli.home / "data.mdb").unlink()
    if lost == "both":
        (cli.home / "lock.mdb").unlink()
    for args in (["list-keys"], ["create-key"], ["init"], ["replay", "--check"], ["audit", "verify"]):
        result = cli(*args, expect=1)
        assert result.stderr.startswith(f"keyledger: error: the ledger at {cli.home} is damaged: it has root.key "
                                        "and checkpoint.key but no data.mdb"), (args, result.stderr)
    assert not (cli.home / "data.mdb").exists()  # never started over with a fresh log


# -- a cut data.mdb -------------------------------------------------------------------

def test_a_truncated_ledger_is_a_one_line_error_for_every_command(built: tuple[Path, str], tmp_path: Path) -> None:
    source, key = built
    home = tmp_path / "cut"
    shutil.copytree(source, home)
    full = (home / "data.mdb").stat().st_size
    os.truncate(home / "data.mdb", full // 2)
    for args in [*audit_commands(key), ["list-keys"], ["encrypt", "--key-id", key, "--plaintext", "eA=="],
                 ["init"]]:
        child = run(home, *args)
        assert child.returncode == 1, (args, child.returncode, child.stderr)  # -SIGBUS before
        assert child.stderr == (f"keyledger: error: data.mdb is truncated: {full // 2} bytes, the ledger needs "
                                f"at least {full}\n"), args
    assert (home / "data.mdb").stat().st_size == full // 2


# -- read-only auditing -----------------------------------------------------------------

@pytest.fixture
def shared_copy(built: tuple[Path, str]) -> Iterator[Path]:
    """A copy of the ledger that other users may read but not write, in a
    directory they can reach (pytest's tmp_path is private to root)."""
    top = Path(tempfile.mkdtemp(prefix="keyledger-ro-"))
    try:
        top.chmod(0o755)
        copy = top / "ledger"
        shutil.copytree(built[0], copy)
        yield copy
    finally:
        for path in [top, *top.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(top)


def read_only_for_others(copy: Path, *, lock: bool) -> None:
    if not lock:
        (copy / "lock.mdb").unlink()
    copy.chmod(0o755)
    for path in copy.iterdir():
        path.chmod(0o644)


@pytest.mark.parametrize("lock", [True, False], ids=["lock.mdb there", "no lock.mdb"])
def test_another_user_with_read_access_can_audit(shared_copy: Path, built: tuple[Path, str], lock: bool) -> None:
    why = can_run_as_nobody()
    if why:
        pytest.skip(why)
    read_only_for_others(shared_copy, lock=lock)
    before = sorted(p.name for p in shared_copy.iterdir())
    for args in audit_commands(built[1]):
        child = run(shared_copy, *args, user=NOBODY)
        assert child.returncode == 0, (args, child.stderr)
        assert "Error" not in child.stderr and "error" not in child.stderr, (args, child.stderr)
    assert "verdict: OK" in run(shared_copy, "audit", "verify", user=NOBODY).stdout
    assert sorted(p.name for p in shared_copy.iterdir()) == before  # no lock.mdb made, nothing else
    # a command that writes says why it cannot, in the user's words
    denied = run(shared_copy, "create-key", user=NOBODY)
    assert denied.returncode == 1
    assert re.fullmatch(rf"keyledger: error: cannot write (lock|data)\.mdb in {re.escape(str(shared_copy))} "
                        r"\(read-only here: .*\)\n", denied.stderr), denied.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits (the nobody and mount tests cover it)")
def test_a_write_protected_copy_can_be_audited(bare: Callable[[Path], Cli], shared_copy: Path, built: tuple[Path, str]) -> None:
    read_only_for_others(shared_copy, lock=False)
    shared_copy.chmod(0o555)
    for path in shared_copy.iterdir():
        path.chmod(0o444)
    cli = bare(shared_copy)
    for args in audit_commands(built[1]):
        cli(*args)
    assert not (shared_copy / "lock.mdb").exists()


@pytest.fixture
def mounted(built: tuple[Path, str], tmp_path: Path) -> Iterator[Path]:
    copy, view = tmp_path / "copy", tmp_path / "view"
    shutil.copytree(built[0], copy)
    (copy / "lock.mdb").unlink()
    view.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) here: the read-only bind mount cannot be made")
    made = subprocess.run(["mount", "--bind", "-o", "ro", str(copy), str(view)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount (needs root in a mount namespace): {made.stderr.strip()}")
    try:
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=True)


def test_a_read_only_mount_can_be_audited(bare: Callable[[Path], Cli], mounted: Path, built: tuple[Path, str]) -> None:
    cli = bare(mounted)
    for args in audit_commands(built[1]):
        cli(*args)
    assert "verdict: OK" in cli("audit", "verify").stdout
    result = cli("list-keys", expect=1)
    assert result.stderr.startswith(f"keyledger: error: cannot write lock.mdb in {mounted} (read-only here")


def test_not_a_ledger_is_said_in_words(bare: Callable[[Path], Cli], tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    home.mkdir()
    (home / "data.mdb").write_bytes(b"\x13" * 65536)
    for args in (["list-keys"], ["audit", "verify"], ["replay", "--check"]):
        result = bare(home)(*args, expect=1)
        assert result.stderr == f"keyledger: error: not a keyledger ledger: {home / 'data.mdb'} is not an LMDB file\n"


# -- modes and the warning ------------------------------------------------------------------

def test_init_makes_a_private_home_whatever_the_umask(bare: Callable[[Path], Cli], tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        bare(tmp_path / "ledger")("init")
    finally:
        os.umask(old)
    home = tmp_path / "ledger"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.iterdir()} == \
        {"data.mdb": 0o600, "lock.mdb": 0o600, "root.key": 0o600, "checkpoint.key": 0o600, "root.lock": 0o600}


def test_a_home_open_to_others_is_warned_about_on_stderr(bare: Callable[[Path], Cli], tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    bare(home)("init")
    assert run(home, "list-keys").stderr == ""
    home.chmod(0o750)
    child = run(home, "list-keys")
    assert child.returncode == 0
    assert child.stderr == (f"keyledger: warning: the ledger home {home} is open to other users ({home} is "
                            f"0750); run chmod -R go= {home}\n")


# -- the demo ------------------------------------------------------------------------------

def test_the_demo_runs_on_a_fresh_temporary_home_each_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYLEDGER_HOME", str(tmp_path / "real"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for _ in range(2):
        result = CliRunner().invoke(main, ["demo"])
        assert result.exit_code == 0, result.output
        assert re.search(r"  log           (\d+) records \(\1 from this run\)\n", result.stdout), result.stdout
        started = re.search(r"demo clock starts at (\S+)", result.stdout)
        assert started
        when = datetime.fromisoformat(started.group(1).replace("Z", "+00:00"))
        assert abs(when - datetime.now(timezone.utc)) < timedelta(hours=1)  # a rerun starts now, not a year on
        temporary = re.search(r"on a temporary ledger (\S+)", result.stdout)
        assert temporary and not Path(temporary.group(1)).exists()
    assert not (tmp_path / "real").exists() and not (tmp_path / "xdg").exists()

