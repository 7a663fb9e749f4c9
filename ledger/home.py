"""The ledger home: the files it holds, their modes, and what makes it a ledger.

A home is one directory:

    data.mdb        the LMDB file: the log, the projections, the audit tables
    lock.mdb        LMDB's reader table (absent on a read-only copy)
    root.key        the root key (unless KEYLEDGER_ROOT_KEY gives it)
    checkpoint.key  the checkpoint signing key (unless KEYLEDGER_CHECKPOINT_KEY)
    access-keys.jsonl, an access log, ...   the server's files, when kept here

Everything in it is private to its owner: the directory 0700, every file
0600. The modes are set explicitly after creation (`chmod`), so that no
umask makes them wider or, as a umask of 0277 would, too narrow to write.
A home whose modes are wider gets a one-line warning when it is opened.

A ledger exists only once `keyledger init` (`keyledger.open(create=True)`)
made it; opening anything else is refused with a message naming the path,
and a home that still holds keys but lost its log is refused as damaged,
never started over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from keyledger.errors import LedgerError

try:  # POSIX; elsewhere a rotation and an open are not kept apart (run one at a time)
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

DATA_FILE = "data.mdb"
LOCK_FILE = "lock.mdb"
ROOT_KEY_FILE = "root.key"
NEXT_ROOT_KEY_FILE = "root.key.next"  # a root-key rotation in flight
STAGED_ROOT_KEY_FILE = "root.key.staged"  # a cluster's next root key, placed on every node before it rotates
CHECKPOINT_KEY_FILE = "checkpoint.key"
KEY_FILES = (ROOT_KEY_FILE, CHECKPOINT_KEY_FILE, NEXT_ROOT_KEY_FILE, STAGED_ROOT_KEY_FILE)
ROOT_LOCK_FILE = "root.lock"  # held while a root-key rotation is in flight (see `root_key_lock`)

HOME_MODE = 0o700
FILE_MODE = 0o600

# A warning goes through logging, not `warnings`: it is about the machine, not
# about a call in the caller's code, so it needs no file:line and should not
# be deduplicated per call site or turned into an exception by `-W error`.
# Unconfigured (the CLI), logging's last-resort handler prints the bare
# message on stderr; the server's log configuration routes it to its log.
log = logging.getLogger("keyledger.home")


class LedgerNotFoundError(LedgerError):
    """There is no ledger at the home (`keyledger init` makes one)."""


class LedgerDamagedError(LedgerError):
    """The home or its data.mdb is damaged, or is not a keyledger ledger."""


def init_hint(home: Path | str) -> str:
    return f"run keyledger init --home {shlex.quote(str(home))} to create one"


def check_home(home: Path, *, create: bool) -> None:
    """Refuse a home that holds no ledger (unless creating one) and a home
    that holds keys but no log (always: starting a new log next to an old
    root key would silently orphan everything it protected)."""
    if (home / DATA_FILE).exists():
        return
    left = [name for name in KEY_FILES if (home / name).exists()]
    if left:
        raise LedgerDamagedError(
            f"the ledger at {home} is damaged: it has {' and '.join(left)} but no {DATA_FILE} (the log); "
            f"restore {DATA_FILE} from a backup (keyledger never starts a new ledger over old keys)")
    if not create:
        if home.exists() and not home.is_dir():
            raise LedgerNotFoundError(f"no ledger at {home} (it is not a directory)")
        raise LedgerNotFoundError(f"no ledger at {home} ({init_hint(home)})")


def make_private_dir(path: Path | str) -> None:
    """Create `path` (and missing parents) with the home's mode 0700."""
    path = Path(path)
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, HOME_MODE)
    except FileExistsError:
        return  # another opener made it first (or it is a file: the open that follows says so)
    os.chmod(path, HOME_MODE)


def make_private(path: Path | str) -> None:
    """Set the mode of a file this process just created to exactly 0600."""
    os.chmod(path, FILE_MODE)


def private_opener(path: str | os.PathLike[str], flags: int) -> int:
    """An `opener` for the built-in `open`: a file it creates is 0600
    whatever the umask; an existing file is opened as it is.

        with open(path, "a", opener=private_opener) as f: ...
    """
    if flags & os.O_CREAT:
        try:
            fd = os.open(path, flags | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            if flags & os.O_EXCL:
                raise
            return os.open(path, flags & ~os.O_CREAT)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
        return fd
    return os.open(path, flags)


def private_file(path: str | os.PathLike[str], mode: str = "a", **kwargs: Any) -> IO[Any]:
    """`open(path, mode)`, creating the file 0600 whatever the umask (for
    the access log, the credentials file and anything else in a home)."""
    return open(path, mode, opener=private_opener, **kwargs)


def ensure_private_file(path: str | os.PathLike[str]) -> str:
    """Create `path` empty with mode 0600 if it is missing; return it (for
    code that opens the file itself, e.g. `logging.FileHandler`)."""
    private_file(path, "ab").close()
    return os.fspath(path)


def exposed(home: Path) -> list[str]:
    """The home and the files in it that group or others may access."""
    if sys.platform == "win32":  # no POSIX modes: ACLs are the user's business
        return []
    out = []
    try:
        mode = stat.S_IMODE(home.stat().st_mode)
        if mode & 0o077:
            out.append(f"{home} is {mode:04o}")
        with os.scandir(home) as scan:
            entries = sorted(scan, key=lambda e: e.name)
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                    if mode & 0o077:
                        out.append(f"{entry.name} is {mode:04o}")
    except OSError:
        return out
    return out


def warn_if_exposed(home: Path) -> list[str]:
    """One warning line if the home or a file in it is open to other users."""
    found = exposed(home)
    if found:
        log.warning("keyledger: warning: the ledger home %s is open to other users (%s); "
                    "run chmod -R go= %s", home, ", ".join(found), shlex.quote(str(home)))
    return found


@contextlib.contextmanager
def root_key_lock(home: Path) -> Iterator[None]:
    """An exclusive lock on the home's root key files, across processes:
    held by a rotation from writing root.key.next until it is renamed
    root.key, and by a process opening the ledger while it reads which key
    it needs. Without it, a ledger opened mid-rotation would take the
    next key for one whose rotation never committed and delete it."""
    fd = private_opener(home / ROOT_LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (releases the lock)
