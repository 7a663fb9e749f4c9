"""Access keys: where the SigV4 verifier finds an access key's principal and
secret. Two sources, asked in order (`KeySources`): a credentials file
(`Credentials`, below) and the ledger itself (`HeldKeys`: keys made by
`keyledger iam create-access-key` or IAM's CreateAccessKey, whose secrets
the ledger holds wrapped under its root key and whose status its log folds).

The credentials file maps an access key id to a principal and secret.

The file is JSON lines, one access key a line, appended to and never
rewritten in place:

    {"AccessKeyId": "AKIA...", "SecretAccessKey": "...", "Principal": "arn:aws:iam::111122223333:user/alice",
     "UserName": "alice", "Status": "Active", "CreateDate": "2026-01-01T00:00:00Z"}

SigV4 is a shared-secret scheme, so the server must hold each secret in the
clear, as AWS does: the file is created with mode 0600 and refused if group
or others can read it. Secrets never reach the ledger, the logs or a repr.
The last line for an access key id wins, so a key is deactivated by
appending it again with `"Status": "Inactive"`; `keyledger iam
update-access-key` and `delete-access-key` instead rewrite the file
atomically (a new file renamed over the old), so a deleted key's secret
leaves it. Appends and rewrites hold an exclusive lock on the file.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import msgspec

from keyledger.home import private_opener
from keyledger.secret import Secret

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: appends and rewrites are not locked
    fcntl = None  # type: ignore[assignment]

DEFAULT_FILE = "access-keys.jsonl"
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class CredentialsError(Exception):
    """The credentials file is missing, unsafe or unreadable."""


class AccessKeyLine(msgspec.Struct, rename="pascal", omit_defaults=True):
    access_key_id: str
    secret_access_key: str
    principal: str
    user_name: str = ""
    status: str = "Active"
    create_date: str = ""

    def __repr__(self) -> str:  # the line holds a secret
        return f"AccessKeyLine({self.access_key_id!r}, principal={self.principal!r}, status={self.status!r}, " \
               "secret=<redacted>)"


class AccessKey:
    """One access key as the verifier needs it; the secret stays wrapped."""

    __slots__ = ("access_key_id", "principal", "secret", "active", "issued")

    def __init__(self, access_key_id: str, principal: str, secret: Secret, active: bool,
                 issued: int | None = None) -> None:
        self.access_key_id, self.principal, self.secret, self.active = access_key_id, principal, secret, active
        self.issued = issued  # a session's: when its token was issued (us since the epoch)

    def __repr__(self) -> str:
        return f"AccessKey({self.access_key_id!r}, principal={self.principal!r}, secret=<redacted>)"


_line_decoder = msgspec.json.Decoder(AccessKeyLine)
_line_encoder = msgspec.json.Encoder()


def check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): "
                               f"it holds secret keys; run chmod 600 {path}")


def read(path: Path) -> dict[str, AccessKey]:
    try:
        lines = entries(path)
    except FileNotFoundError:
        raise CredentialsError(
            f"no credentials file {path}: create an access key with "
            f"`keyledger iam create-access-key --user-name NAME --credentials {path}`") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
    return {e.access_key_id: AccessKey(e.access_key_id, e.principal, Secret(e.secret_access_key.encode()),
                                       e.status == "Active") for e in lines}


class Credentials:
    """The access keys of a credentials file, re-read when the file changes.
    With `missing_ok`, a file that does not exist yet is no error: there
    are no keys in it until it appears.

    Every lookup checks the file's change stamp (at most once per `recheck`
    seconds, so a busy server stats it about once a second), so a key
    created, deactivated or deleted while the server runs takes effect
    within that time. A file that cannot be parsed keeps the keys last read
    (a hand edit in progress) and is tried again; a file that is gone
    revokes every key (fail closed)."""

    def __init__(self, path: str | os.PathLike[str], *, recheck: float = 1.0, missing_ok: bool = False) -> None:
        self.path = Path(path)
        self._recheck = recheck
        self._lock = threading.Lock()
        self._mtime = self._stamp()
        self._keys = {} if missing_ok and self._mtime is None else read(self.path)
        self._checked = time.monotonic()

    def _stamp(self) -> tuple[int, int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        # the inode too: a rewrite is a rename, possibly within one mtime tick
        return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, access_key_id: str) -> AccessKey | None:
        """The active key with this id, or None."""
        self._maybe_reload()
        key = self._keys.get(access_key_id)
        return key if key is not None and key.active else None

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._recheck:
            return
        with self._lock:
            if now - self._checked < self._recheck:
                return
            self._checked = now
            stamp = self._stamp()
            if stamp == self._mtime:
                return
            if stamp is None:
                self._keys, self._mtime = {}, None
                return
            try:
                self._keys = read(self.path)
            except CredentialsError:
                return  # keep serving with the keys we have; the next change is tried again
            self._mtime = stamp


class HeldKeys:
    """The access keys whose secrets the ledger holds (`keyledger iam
    create-access-key`, IAM's CreateAccessKey on `keyledger serve`),
    looked up in the ledger. A key found active is remembered for at most
    `recheck` seconds, as a credentials file's keys are: a key switched off
    or deleted by another process on this home, or on another node of its
    cluster, is refused within that time; through this server (IAM's
    UpdateAccessKey, DeleteAccessKey), from the next request (`forget`). (Reading the ledger
    on every request cost the server about 15% of its throughput: each
    LMDB read lets the writer thread take the GIL from the event loop.)
    An id not found is not remembered, so a new key works at once."""

    def __init__(self, kms: Any, *, recheck: float = 1.0) -> None:
        self._kms = kms
        self._recheck = recheck
        # id -> (the key, when it was read): the same object while nothing changed (the signing keys cache by it)
        self._keys: dict[str, tuple[AccessKey, float]] = {}

    def lookup(self, access_key_id: str) -> AccessKey | None:
        """The active key with this id, or None."""
        now = time.monotonic()
        known = self._keys.get(access_key_id)
        if known is not None and now - known[1] < self._recheck:
            return known[0]
        found = self._kms.held_access_key(access_key_id)
        if found is None or not found[2]:
            self._keys.pop(access_key_id, None)
            return None
        principal, secret, _ = found
        key = known[0] if known is not None and known[0].secret is secret and known[0].principal == principal \
            else AccessKey(access_key_id, principal, secret, True)
        self._keys[access_key_id] = (key, now)
        return key

    def forget(self, access_key_id: str) -> None:
        """Read the key from the ledger on its next use (this process changed it)."""
        self._keys.pop(access_key_id, None)


class Sessions:
    """Temporary credentials (STS AssumeRole) whose session token this
    ledger sealed: the token carries the session's secret, so nothing is
    stored. A session found good is remembered for at most `recheck`
    seconds (its role deleted elsewhere is refused within that time) and
    never past its expiry, after which ExpiredTokenException. Bounded: at
    most `limit` sessions are remembered, dropped wholesale beyond that."""

    def __init__(self, kms: Any, *, recheck: float = 1.0, limit: int = 4096) -> None:
        self._kms = kms
        self._recheck = recheck
        self._limit = limit
        # (id, token) -> (the key, when it was read, its expiry in microseconds)
        self._known: dict[tuple[str, str], tuple[AccessKey, float, int]] = {}

    def lookup(self, access_key_id: str, session_token: str) -> AccessKey | None:
        """The session's key, or None; ExpiredTokenException once it has ended."""
        from keyledger.errors import ExpiredTokenException
        now = time.monotonic()
        known = self._known.get((access_key_id, session_token))
        if known is not None and now - known[1] < self._recheck:
            if self._kms.now() >= known[2]:
                raise ExpiredTokenException("The security token included in the request is expired")
            return known[0]
        found = self._kms.session_credentials(access_key_id, session_token)
        if found is None:
            self._known.pop((access_key_id, session_token), None)
            return None
        principal, secret, expires, issued = found
        key = known[0] if known is not None and known[0].principal == principal \
            else AccessKey(access_key_id, principal, secret, True, issued)
        if len(self._known) >= self._limit:
            self._known.clear()
        self._known[(access_key_id, session_token)] = (key, now, expires)
        return key


class KeyLookup(Protocol):
    def lookup(self, access_key_id: str) -> AccessKey | None: ...


class KeySources:
    """Several sources of access keys, asked in order (a credentials file,
    then the ledger): what the SigV4 verifier looks keys up in."""

    def __init__(self, *sources: KeyLookup) -> None:
        self.sources = sources

    def lookup(self, access_key_id: str) -> AccessKey | None:
        for source in self.sources:
            key = source.lookup(access_key_id)
            if key is not None:
                return key
        return None

    def forget(self, access_key_id: str) -> None:
        """A key this process just switched off or deleted: no source answers from memory for it."""
        for source in self.sources:
            if isinstance(source, HeldKeys):
                source.forget(access_key_id)


def new_access_key_id() -> str:
    return "AKIA" + "".join(secrets.choice(_BASE32) for _ in range(16))


def new_secret() -> str:
    return base64.b64encode(secrets.token_bytes(30)).decode()


def new_access_key(principal: str, user_name: str = "") -> AccessKeyLine:
    """A fresh active access key for `principal` (not yet stored)."""
    return AccessKeyLine(new_access_key_id(), new_secret(), principal, user_name, "Active",
                         datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))


def append(path: str | os.PathLike[str], entry: AccessKeyLine) -> None:
    """Append an access key to the file, creating it with mode 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path) as fd:
        check_private(path)
        os.write(fd, _line_encoder.encode(entry) + b"\n")
        os.fsync(fd)


def entries(path: str | os.PathLike[str]) -> list[AccessKeyLine]:
    """The file's access keys, the last line of each id winning, in the
    order the ids first appear (FileNotFoundError if there is no file)."""
    path = Path(path)
    check_private(path)
    found: dict[str, AccessKeyLine] = {}
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(b"#"):
            continue
        try:
            entry = _line_decoder.decode(line)
        except msgspec.DecodeError as exc:  # the message names the field, never the value
            raise CredentialsError(f"{path}, line {n}: {exc}") from None
        found[entry.access_key_id] = entry
    return list(found.values())


def set_status(path: str | os.PathLike[str], access_key_id: str, status: str) -> AccessKeyLine:
    """Mark an access key Active or Inactive (an atomic rewrite of the
    file); KeyError if the file has no such key."""
    if status not in ("Active", "Inactive"):
        raise ValueError(status)
    return _rewrite(Path(path), access_key_id, lambda e: msgspec.structs.replace(e, status=status))


def delete(path: str | os.PathLike[str], access_key_id: str) -> AccessKeyLine:
    """Remove an access key and its secret from the file (an atomic
    rewrite); KeyError if the file has no such key."""
    return _rewrite(Path(path), access_key_id, lambda e: None)


def _rewrite(path: Path, access_key_id: str,
             change: Callable[[AccessKeyLine], AccessKeyLine | None]) -> AccessKeyLine:
    """Rewrite the file with one key changed (or dropped): a new file,
    mode 0600, synced, renamed over the old one, so that a reader (the
    server) sees the old file or the new one, never a mix, and the old
    lines (a deleted key's secret) leave the file."""
    with _locked(path):
        current = entries(path)
        target = next((e for e in current if e.access_key_id == access_key_id), None)
        if target is None:
            raise KeyError(access_key_id)
        out = []
        for entry in current:
            if entry.access_key_id == access_key_id:
                replaced = change(entry)
                if replaced is not None:
                    out.append(replaced)
            else:
                out.append(entry)
        data = b"".join(_line_encoder.encode(e) + b"\n" for e in out)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _sync_dir(path.parent)
        return target


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    """The file open for appending under an exclusive lock, so appends and
    rewrites never interleave. A rewrite renames a new file over the locked
    one, so a waiter that finds its file replaced locks the new one."""
    while True:
        fd = private_opener(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # 0600 whatever the umask
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            current = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)
    try:
        yield fd
    finally:
        os.close(fd)  # releases the lock
