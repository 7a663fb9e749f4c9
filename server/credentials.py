"""Access keys: the file that maps an access key id to a principal and secret.

The file is JSON lines, one access key a line, appended to and never
rewritten in place:

    {"AccessKeyId": "AKIA...", "SecretAccessKey": "...", "Principal": "arn:aws:iam::111122223333:user/alice",
     "UserName": "alice", "Status": "Active", "CreateDate": "2026-01-01T00:00:00Z"}

SigV4 is a shared-secret scheme, so the server must hold each secret in the
clear, as AWS does: the file is created with mode 0600 and refused if group
or others can read it. Secrets never reach the ledger, the logs or a repr.
The last line for an access key id wins, so a key is deactivated by
appending it again with `"Status": "Inactive"`.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from keyledger.secret import Secret

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


class AccessKey:
    """One access key as the verifier needs it; the secret stays wrapped."""

    __slots__ = ("access_key_id", "principal", "secret", "active")

    def __init__(self, access_key_id: str, principal: str, secret: Secret, active: bool) -> None:
        self.access_key_id, self.principal, self.secret, self.active = access_key_id, principal, secret, active

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
        check_private(path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise CredentialsError(
            f"no credentials file {path}: create an access key with "
            f"`keyledger iam create-access-key --user-name NAME --credentials {path}`") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
    keys: dict[str, AccessKey] = {}
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(b"#"):
            continue
        try:
            entry = _line_decoder.decode(line)
        except msgspec.DecodeError as exc:  # the message names the field, never the value
            raise CredentialsError(f"{path}, line {n}: {exc}") from None
        keys[entry.access_key_id] = AccessKey(entry.access_key_id, entry.principal,
                                              Secret(entry.secret_access_key.encode()),
                                              entry.status == "Active")
    return keys


class Credentials:
    """The access keys of a credentials file, re-read when the file changes
    (checked at most once a second, and only when an unknown key shows up),
    so keys created while the server runs work at once."""

    def __init__(self, path: str | os.PathLike[str], *, recheck: float = 1.0) -> None:
        self.path = Path(path)
        self._recheck = recheck
        self._lock = threading.Lock()
        self._keys = read(self.path)
        self._mtime = self._stamp()
        self._checked = time.monotonic()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, access_key_id: str) -> AccessKey | None:
        """The active key with this id, or None."""
        key = self._keys.get(access_key_id)
        if key is None:
            self._maybe_reload()
            key = self._keys.get(access_key_id)
        return key if key is not None and key.active else None

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._recheck:
            return
        with self._lock:
            self._checked = now
            stamp = self._stamp()
            if stamp == self._mtime:
                return
            try:
                self._keys = read(self.path)
            except CredentialsError:
                return  # keep serving with the keys we have; the next change is tried again
            self._mtime = stamp


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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        check_private(path)
        os.write(fd, _line_encoder.encode(entry) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
