"""The ledger home: only `create=True` makes a ledger, a home that lost its
log or holds a cut data.mdb is refused (never crashed on, never started
over), everything in it is private whatever the umask, and a read-only
open works where LMDB's lock file cannot be written."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import keyledger
from keyledger import home as home_
from keyledger.store import Store, check_data_file

FILES = ("data.mdb", "lock.mdb", "root.key", "checkpoint.key", "root.lock")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def make_ledger(home: Path, keys: int = 3) -> None:
    with keyledger.open(home, create=True, durability="relaxed") as kms:
        for n in range(keys):
            key = kms.create_key(description=f"key {n}").key_metadata.key_id
            for _ in range(20):
                kms.encrypt(key, b"x" * 2000)
        kms.checkpoint()


# -- only create=True creates ---------------------------------------------------

def test_a_missing_ledger_is_refused_naming_the_path_and_nothing_is_created(tmp_path: Path) -> None:
    typo = tmp_path / "typo"
    with pytest.raises(keyledger.LedgerNotFoundError) as raised:
        keyledger.open(typo)
    assert str(raised.value) == f"no ledger at {typo} (run keyledger init --home {typo} to create one)"
    assert not typo.exists()
    # an existing but empty directory is no ledger either
    typo.mkdir()
    with pytest.raises(keyledger.LedgerNotFoundError):
        keyledger.open(typo)
    assert list(typo.iterdir()) == []


def test_create_makes_the_ledger_and_then_it_opens_without(tmp_path: Path) -> None:
    home = tmp_path / "a" / "b"
    with keyledger.open(home, create=True, region="eu-west-1") as kms:
        key = kms.create_key().key_metadata.key_id
    with keyledger.open(home) as kms:
        assert kms.region == "eu-west-1"
        assert kms.describe_key(key).key_metadata.key_id == key


@pytest.mark.parametrize("lost", [["data.mdb"], ["data.mdb", "lock.mdb"], ["data.mdb", "root.key"]])
def test_a_home_with_keys_but_no_log_is_refused_as_damaged(tmp_path: Path, lost: list[str]) -> None:
    home = tmp_path / "ledger"
    make_ledger(home, keys=1)
    for name in lost:
        (home / name).unlink()
    for create in (False, True):
        with pytest.raises(keyledger.LedgerDamagedError, match=r"is damaged: it has .*but no data\.mdb"):
            keyledger.open(home, create=create)
    assert not (home / "data.mdb").exists()  # never started over


def test_a_data_file_without_the_ledger_metadata_is_not_opened_as_new(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    Store(str(home)).close()  # the LMDB file exists, the ledger was never initialized
    with pytest.raises(keyledger.LedgerDamagedError, match="never finished"):
        keyledger.open(home)
    assert not (home / "root.key").exists()
    with keyledger.open(home, create=True):  # init, run again, finishes it
        pass


def test_an_lmdb_file_of_someone_else_is_not_a_keyledger_ledger(tmp_path: Path) -> None:
    import lmdb  # the test builds a foreign LMDB file; the package itself never imports lmdb here

    home = tmp_path / "other"
    env = lmdb.open(str(home), max_dbs=4)
    with env.begin(write=True) as txn:
        txn.put(b"hello", b"world")
    env.close()
    for create in (False, True):
        with pytest.raises(keyledger.LedgerDamagedError, match="not a keyledger ledger"):
            keyledger.open(home, create=create)
    with pytest.raises(keyledger.LedgerDamagedError, match="not a keyledger ledger"):
        Store(str(home), readonly=True)


def test_garbage_in_data_mdb_is_not_a_keyledger_ledger(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    home.mkdir()
    (home / "data.mdb").write_bytes(os.urandom(64 * 1024))
    with pytest.raises(keyledger.LedgerDamagedError, match=r"^not a keyledger ledger: .* is not an LMDB file$"):
        keyledger.open(home)


# -- a cut data.mdb ---------------------------------------------------------------

# In a child process: a regression is a SIGBUS, which must fail this test, not kill the session.
OPEN_CUT = r"""
import sys
import keyledger
from keyledger.store import Store
try:
    if sys.argv[2] == "readonly":
        Store(sys.argv[1], readonly=True).close()
    else:
        keyledger.open(sys.argv[1]).close()
except keyledger.LedgerError as exc:
    print(exc)
    sys.exit(1)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("built") / "ledger"
    make_ledger(home)
    return home


@pytest.mark.parametrize("how", ["readonly", "service"])
@pytest.mark.parametrize("keep", ["nothing", "a header", "the meta pages", "half", "all but a page"])
def test_a_truncated_data_file_is_refused_not_a_bus_error(built: Path, tmp_path: Path, how: str,
                                                          keep: str) -> None:
    home = tmp_path / "cut"
    shutil.copytree(built, home)
    data = home / "data.mdb"
    full = data.stat().st_size
    need = check_data_file(str(data))
    assert need == full  # a healthy file is exactly as long as its newest meta says
    psize = 4096
    size = {"nothing": 0, "a header": 100, "the meta pages": 2 * psize, "half": full // 2,
            "all but a page": full - psize}[keep]
    os.truncate(data, size)
    child = subprocess.run([sys.executable, "-c", OPEN_CUT, str(home), how], capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == 1, (child.returncode, child.stderr)  # -7 would be SIGBUS
    wanted = need if size >= 2 * psize else 2 * psize if size < 200 else need
    assert child.stdout == f"data.mdb is truncated: {size} bytes, the ledger needs at least {wanted}\n"
    assert data.stat().st_size == size  # nothing wrote to it


def test_a_data_file_grown_past_its_meta_still_opens(built: Path, tmp_path: Path) -> None:
    home = tmp_path / "grown"
    shutil.copytree(built, home)
    with open(home / "data.mdb", "ab") as f:  # LMDB may leave pages past the last one in use
        f.write(b"\0" * 8192)
    with keyledger.open(home) as kms:
        assert kms.list_keys().keys


# -- file modes -------------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
def test_everything_in_a_new_home_is_private_whatever_the_umask(tmp_path: Path, umask: None,
                                                                mask: int) -> None:
    home = tmp_path / "ledger"
    os.umask(mask)
    with keyledger.open(home, create=True) as kms:
        kms.create_key()
        kms.rotate_root_key()  # writes root.key.next, renamed over root.key
    os.umask(0o022)
    assert mode(home) == 0o700
    assert {p.name: mode(p) for p in home.iterdir()} == {name: 0o600 for name in FILES}
    with keyledger.open(home) as kms:  # and it still opens (0277 would have left 0400 files)
        kms.create_key()


@pytest.mark.parametrize("mask", [0o000, 0o277])
def test_private_file_creates_0600_and_leaves_an_existing_file_alone(tmp_path: Path, umask: None,
                                                                     mask: int) -> None:
    os.umask(mask)
    with keyledger.private_file(tmp_path / "access.log", "a") as f:
        f.write("one\n")
    with open(tmp_path / "creds", "ab", opener=keyledger.private_opener) as f:
        f.write(b"x")
    existing = tmp_path / "existing"
    existing.write_text("keep")
    existing.chmod(0o640)
    with keyledger.private_file(existing, "a") as f:
        f.write("!")
    home_.ensure_private_file(tmp_path / "empty")
    os.umask(0o022)
    assert mode(tmp_path / "access.log") == mode(tmp_path / "creds") == mode(tmp_path / "empty") == 0o600
    assert (tmp_path / "access.log").read_text() == "one\n"
    assert mode(existing) == 0o640 and existing.read_text() == "keep!"


def test_a_home_open_to_others_gets_one_warning_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "ledger"
    make_ledger(home, keys=1)
    with caplog.at_level(logging.WARNING, logger="keyledger"):
        keyledger.open(home).close()
    assert caplog.records == []  # private: nothing to say
    home.chmod(0o755)
    (home / "root.key").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="keyledger"):
        keyledger.open(home).close()
    assert [r.getMessage() for r in caplog.records] == [
        f"keyledger: warning: the ledger home {home} is open to other users ({home} is 0755, root.key is "
        f"0644); run chmod -R go= {home}"]


# -- read-only opens ----------------------------------------------------------------

def test_a_readonly_open_writes_nothing_and_needs_no_lock_file(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    (copy / "lock.mdb").unlink()
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    store = Store(str(copy), readonly=True)
    try:
        assert store.head().seq > 0
    finally:
        store.close()
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.name != "lock.mdb"} == before


@pytest.fixture
def readonly_mount(built: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the ledger under a read-only bind mount (needs root and mount)."""
    copy, view = tmp_path / "copy", tmp_path / "view"
    shutil.copytree(built, copy)
    (copy / "lock.mdb").unlink()  # as on a backup: LMDB cannot create it on a read-only mount
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


def test_a_readonly_open_on_a_read_only_mount(readonly_mount: Path) -> None:
    with pytest.raises(OSError):
        (readonly_mount / "probe").write_bytes(b"")  # really read-only, even for root
    store = Store(str(readonly_mount), readonly=True)
    try:
        assert store.head().seq > 0
        assert not (readonly_mount / "lock.mdb").exists()
    finally:
        store.close()
    # a writing open says why, in the user's words
    with pytest.raises(keyledger.LedgerError) as raised:
        keyledger.open(readonly_mount)
    assert str(raised.value).startswith(f"cannot write lock.mdb in {readonly_mount}")
    assert "Error" not in str(raised.value)
