"""The files of a ledger as LMDB leaves them: the data file checked against
LMDB's own meta pages before it is mapped (a cut file would otherwise kill
the process with SIGBUS), and LMDB's errors said in the user's words."""

from __future__ import annotations

import errno
import os
import struct
from typing import Any

import lmdb
from keyledger import home
from keyledger.errors import LedgerError

_MDB_MAGIC = 0xBEEFC0DE
_PAGE_HEADER = 16
_META = struct.Struct("=IIQQI")  # magic, version, address, mapsize, psize (md_pad of mm_dbs[0])
_META_TAIL = struct.Struct("=QQ")  # last page number, txn id
_META_TAIL_AT = 120  # offset of mm_last_pg inside MDB_meta
_META_BYTES = _META_TAIL_AT + _META_TAIL.size
_MIN_PAGE, _MAX_PAGE = 512, 1 << 16


class _Meta:
    __slots__ = ("psize", "mapsize", "last_pg", "txnid")

    def __init__(self, psize: int, mapsize: int, last_pg: int, txnid: int) -> None:
        self.psize, self.mapsize, self.last_pg, self.txnid = psize, mapsize, last_pg, txnid


def _read_meta(f: Any, offset: int) -> _Meta | None:
    f.seek(offset + _PAGE_HEADER)
    raw = f.read(_META_BYTES)
    if len(raw) < _META_BYTES:
        return None
    magic, _version, _address, mapsize, psize = _META.unpack_from(raw)
    last_pg, txnid = _META_TAIL.unpack_from(raw, _META_TAIL_AT)
    if magic != _MDB_MAGIC:
        return None
    return _Meta(psize, mapsize, last_pg, txnid)


def check_data_file(path: str) -> int:
    """Refuse a data.mdb that LMDB would crash on: not an LMDB file, or
    shorter than its newest meta page says (a cut copy, a full disk, a
    truncation). Returns the bytes the ledger needs."""
    if struct.calcsize("P") != 8:  # the layout above is the 64-bit one
        return 0
    name = os.path.basename(path)
    min_size = 2 * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 8192
    with open(path, "rb") as f:
        first = _read_meta(f, 0)
        if first is None:
            size = os.fstat(f.fileno()).st_size
            if size < _PAGE_HEADER + _META_BYTES:
                raise home.LedgerDamagedError(f"{name} is truncated: {size} bytes, the ledger needs at "
                                              f"least {min_size}")
            raise home.LedgerDamagedError(f"not a keyledger ledger: {path} is not an LMDB file")
        if not (_MIN_PAGE <= first.psize <= _MAX_PAGE and first.psize & (first.psize - 1) == 0):
            raise home.LedgerDamagedError(f"{name} is damaged: its header gives a page size of {first.psize}")
        second = _read_meta(f, first.psize)
        newest = first if second is None or second.txnid < first.txnid else second
        need = max(2 * first.psize, (newest.last_pg + 1) * first.psize)
        # the size is read after the meta: a writer extends the file before
        # it writes the meta that counts the new pages, never after
        size = os.fstat(f.fileno()).st_size
    if size < need:
        raise home.LedgerDamagedError(f"{name} is truncated: {size} bytes, the ledger needs at least {need}")
    return need


_DENIED = tuple(os.strerror(code) for code in (errno.EACCES, errno.EPERM, errno.EROFS))


def _denied(exc: lmdb.Error) -> bool:
    """py-lmdb gives no errno: EACCES is its ReadonlyError, the others
    show only in the message (LMDB formats it with strerror)."""
    return isinstance(exc, lmdb.ReadonlyError) or any(text in str(exc) for text in _DENIED)


def _storage_error(exc: lmdb.Error, path: str, readonly: bool) -> LedgerError:
    """An LMDB failure to open, in the user's words (never the class name)."""
    if isinstance(exc, lmdb.InvalidError):
        return home.LedgerDamagedError(f"not a keyledger ledger: {os.path.join(path, home.DATA_FILE)} "
                                       "is not an LMDB file")
    if isinstance(exc, lmdb.VersionMismatchError):
        return home.LedgerDamagedError(f"{os.path.join(path, home.DATA_FILE)} was written by an "
                                       "incompatible LMDB version")
    if isinstance(exc, (lmdb.CorruptedError, lmdb.PanicError)):
        return home.LedgerDamagedError(f"{os.path.join(path, home.DATA_FILE)} is damaged (LMDB cannot read it)")
    if _denied(exc):
        for name in (home.LOCK_FILE, home.DATA_FILE):
            target = os.path.join(path, name)
            if name == home.DATA_FILE and not readonly and os.path.exists(target):
                if not _writable(target):
                    return LedgerError(f"cannot write {name} in {path} (read-only here: audit verify, "
                                       "audit log, forensics and replay --check can still read it)")
            elif name == home.LOCK_FILE and not _writable(target if os.path.exists(target) else path):
                return LedgerError(f"cannot write {name} in {path}" + (
                    "" if readonly else " (read-only here: audit verify, audit log, forensics and "
                                        "replay --check can still read it)"))
        return LedgerError(f"cannot open the ledger at {path}: permission denied")
    text = str(exc)
    if text.startswith(path + ":"):
        text = text[len(path) + 1:].strip()
    return LedgerError(f"cannot open the ledger at {path}: {text}")


def _writable(path: str) -> bool:
    # os.access answers for the real uid and knows read-only mounts (EROFS)
    return os.access(path, os.W_OK)
