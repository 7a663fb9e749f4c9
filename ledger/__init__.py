"""keyledger: an embedded AWS KMS whose event log is its audit trail.

    import keyledger
    with keyledger.open(home="/tmp/kl", create=True) as kms:  # create: only the first time
        key = kms.create_key(description="orders").key_metadata
        blob = kms.encrypt(key.key_id, b"secret", encryption_context={"order": "42"}).ciphertext_blob
        assert kms.decrypt(blob, encryption_context={"order": "42"}).plaintext == b"secret"
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
import uuid
from pathlib import Path

from typing import TYPE_CHECKING, Any, Callable

from keyledger.errors import KMSError, LedgerError
from keyledger.home import (CHECKPOINT_KEY_FILE, NEXT_ROOT_KEY_FILE, ROOT_KEY_FILE, STAGED_ROOT_KEY_FILE,
                            LedgerDamagedError, LedgerNotFoundError, private_file, private_opener)
from keyledger.secret import Secret

if TYPE_CHECKING:  # imported lazily below: projections import keyledger.events,
    from keyledger.service import Clock, KeyLedger, Rng  # and the store imports projections
    from keyledger.cluster import ClusterConfig

__all__ = ["open", "default_home", "KeyLedger", "KMSError", "LedgerError", "LedgerNotFoundError",
           "LedgerDamagedError", "Secret", "DEFAULT_REGION", "DEFAULT_ACCOUNT", "private_file",
           "private_opener", "stage_root_key"]

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "111122223333"
ROOT_KEY_ENV = "KEYLEDGER_ROOT_KEY"
CHECKPOINT_KEY_ENV = "KEYLEDGER_CHECKPOINT_KEY"


def default_home() -> Path:
    """$KEYLEDGER_HOME, else the user's data directory."""
    if os.environ.get("KEYLEDGER_HOME"):
        return Path(os.environ["KEYLEDGER_HOME"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "keyledger"


def __getattr__(name: str) -> Any:
    if name == "KeyLedger":
        from keyledger.service import KeyLedger
        return KeyLedger
    raise AttributeError(name)


def _root_key(home: Path, given: bytes | None, creating: bool, rng: Callable[[int], bytes]) -> Secret:
    if given is not None:
        return Secret(given)
    env = os.environ.get(ROOT_KEY_ENV)
    if env:
        try:
            raw = base64.b64decode(env, validate=True)
        except binascii.Error:
            raise LedgerError(f"{ROOT_KEY_ENV} must be the base64 of 32 bytes") from None
        if len(raw) != 32:
            raise LedgerError(f"{ROOT_KEY_ENV} must be the base64 of 32 bytes")
        return Secret(raw)
    path = home / ROOT_KEY_FILE
    stored = _secret_file(path, creating, rng)
    if stored is None:
        raise LedgerError(f"the root key {path} is missing (or set {ROOT_KEY_ENV})")
    return Secret(stored)


def _secret_file(path: Path, create: bool, rng: Callable[[int], bytes]) -> bytes | None:
    """32 secret bytes from a 0600 file, made (exclusively) if asked."""
    if create and not path.exists():
        _write_secret_file(path, rng(32), replace=False)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) != 32:
        raise LedgerError(f"{path} must hold exactly 32 bytes")
    return raw


def _write_secret_file(path: Path, data: bytes, *, replace: bool) -> None:
    """`data` in a 0600 file at `path`, written whole under a private name
    and then put in place, so a crash mid-write, or a second writer racing
    this one, never sees a short file; the new name itself made durable.
    `replace=False`: never replaces a file another writer made first."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    fd = private_opener(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)  # 0600 whatever the umask
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic; never replaces a key another opener made first
            except FileExistsError:
                pass
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _node_checkpoint_public(home: Path, rng: Callable[[int], bytes]) -> bytes | None:
    """A joining node's own checkpoint key (made now), as its public key."""
    from keyledger import crypto, home as home_
    home_.make_private_dir(home)
    signer = _checkpoint_key(home, True, rng)
    return None if signer is None else crypto.ed25519_public_key(signer)


def _checkpoint_key(home: Path, create: bool, rng: Callable[[int], bytes]) -> Secret | None:
    env = os.environ.get(CHECKPOINT_KEY_ENV)
    if env:
        try:
            raw = base64.b64decode(env, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise LedgerError(f"{CHECKPOINT_KEY_ENV} must be the base64 of 32 bytes")
        return Secret(raw)
    stored = _secret_file(home / CHECKPOINT_KEY_FILE, create, rng)
    return None if stored is None else Secret(stored)


def stage_root_key(home: str | os.PathLike[str] | None = None, key: bytes | None = None, *,
                   rng: Callable[[int], bytes] = os.urandom) -> str:
    """Place the next root key of a cluster's node in its home
    (`root.key.staged`, 0600, written whole): `key` (32 bytes, the same on
    every node) or a fresh one, to copy to the other nodes' homes. Returns
    its check value (hex), to compare across nodes. `rotate_root_key` on any
    node then switches every node to it, each node checking its staged key
    against the rotation's check first. Does not open the ledger (a node's
    home is in use by its server); the home's root key must be a file."""
    from keyledger import crypto

    home_path = Path(home) if home is not None else default_home()
    if os.environ.get(ROOT_KEY_ENV):
        raise LedgerError(f"the root key comes from {ROOT_KEY_ENV}; rotate it where it is kept")
    current = home_path / ROOT_KEY_FILE
    if not current.exists():
        raise LedgerNotFoundError(f"no root key at {current}: stage the next key in a ledger's home")
    if key is None:
        key = rng(32)
    if not isinstance(key, bytes) or len(key) != 32:
        raise LedgerError("a root key is 32 bytes")
    check = crypto.root_check(Secret(key))
    if check == crypto.root_check(Secret(current.read_bytes())):
        raise LedgerError("that is the current root key: stage a new one")
    _write_secret_file(home_path / STAGED_ROOT_KEY_FILE, key, replace=True)
    return check.hex()


def _finish_root_rotation(home: Path, root: Secret, expected: bytes, given: bool) -> Secret:
    """A root-key rotation writes root.key.next, commits the re-wrapped KEKs,
    then renames. After a crash in between, the ledger tells which key it
    needs: finish the rename, or drop a next key that never committed. On a
    node of a cluster the next key is the staged one (root.key.staged), which
    is kept until a rotation commits: it waits for one."""
    from keyledger import crypto

    if given or os.environ.get(ROOT_KEY_ENV):
        return root
    staged = home / STAGED_ROOT_KEY_FILE
    if staged.exists() and crypto.root_check(root) != expected:
        raw = staged.read_bytes()
        if len(raw) == 32 and crypto.root_check(Secret(raw)) == expected:  # committed, not yet renamed
            os.replace(staged, home / ROOT_KEY_FILE)
            _fsync_dir(home)
            return Secret(raw)
    pending = home / NEXT_ROOT_KEY_FILE
    if not pending.exists():
        return root
    raw = pending.read_bytes()
    if crypto.root_check(root) == expected:
        pending.unlink()  # the rotation never committed
        return root
    if len(raw) == 32 and crypto.root_check(Secret(raw)) == expected:
        os.replace(pending, home / ROOT_KEY_FILE)
        _fsync_dir(home)
        return Secret(raw)
    return root


def _fsync_dir(path: Path) -> None:
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def open(home: str | os.PathLike[str] | None = None, *, create: bool = False, region: str | None = None,
         account: str | None = None, durability: str = "durable", clock: "Clock | None" = None,
         rng: "Rng | None" = None, caller: str | None = None, root_key: bytes | None = None,
         sync_interval: float = 0.2, cluster: "str | ClusterConfig | None" = None,
         node: str | None = None) -> "KeyLedger":
    """Open the ledger at `home` (default: `default_home()`) and return the service.

    Only `create=True` (what `keyledger init` does) makes a new ledger: the
    home (mode 0700), its LMDB file, root key and checkpoint key (0600).
    Without it a missing ledger raises `LedgerNotFoundError` naming the
    path, so a mistyped home never becomes a new, empty ledger. A home that
    holds keys but no log, a cut data.mdb or a file that is not a ledger
    raise `LedgerDamagedError`, with or without `create`. A home open to
    other users is opened, with a warning logged on `keyledger.home`.

    A ledger is one account with any number of regions. `region` is the
    region requests are made in (`kms.in_region(...)` makes another view);
    it defaults to the ledger's initial region, which `region` sets when the
    ledger is created (default us-east-1). `account` is fixed at creation;
    giving another for an existing ledger is an error. `durability` is "durable"
    (every commit synced) or "relaxed" (synced every `sync_interval` s).
    `clock` and `rng` are injectable for tests (the clock returns aware
    datetimes; rng(n) returns n random bytes).

    `cluster` ("etcd://host:port,...[/prefix]", "etcds://...?cacert=&cert=&key=" for TLS, or a
    `keyledger.cluster.ClusterConfig`)
    opens the ledger as node `node` of a cluster whose log etcd orders
    (keyledger.cluster). With `create=True` a missing home joins the cluster
    (it needs the cluster's root key: root.key in the home, KEYLEDGER_ROOT_KEY
    or `root_key`), or, if the cluster has no ledger yet, becomes its first
    node. A node's home is never opened without its cluster (that would fork
    the log); the audit tools read it as any other.
    """
    from keyledger import crypto
    from keyledger import home as home_
    from keyledger.service import KeyLedger
    from keyledger.store import Store

    home_path = Path(home) if home is not None else default_home()
    rng = rng or os.urandom
    cluster_config = None
    if cluster is not None:
        from keyledger import cluster as cluster_
        cluster_config = cluster_.config(cluster, node=node)
        if create and not (home_path / home_.DATA_FILE).exists() and cluster_.has_ledger(cluster_config):
            cluster_.join(home_path, cluster_config, _root_key(home_path, root_key, False, rng),
                          checkpoint_public=_node_checkpoint_public(home_path, rng))
    home_.check_home(home_path, create=create)
    store = Store(str(home_path), durability=durability, sync_interval=sync_interval, create=create)
    try:
        with home_.root_key_lock(home_path):  # not while a rotation is between its commit and its rename
            meta = store.meta()
            creating = "root_check" not in meta
            if creating and not create:
                raise LedgerDamagedError(f"the ledger at {home_path} was never finished (its creation was "
                                         f"interrupted): run keyledger init --home {home_path} again")
            root = _root_key(home_path, root_key, creating, rng)
            if creating:
                meta = store.init_meta({
                    "format": str(crypto.FORMAT).encode(),
                    "region": (region or DEFAULT_REGION).encode(),
                    "account": (account or DEFAULT_ACCOUNT).encode(),
                    "root_check": crypto.root_check(root),
                })
            signer = _checkpoint_key(home_path, "checkpoint_public" not in meta, rng)
            if "checkpoint_public" not in meta and signer is not None:
                ledger_id = str(uuid.UUID(bytes=rng(16), version=4))
                meta = store.init_meta({"ledger_id": ledger_id.encode(),
                                        "origin": f"keyledger.local/{ledger_id}".encode(),
                                        "checkpoint_public": crypto.ed25519_public_key(signer)})
            root = _finish_root_rotation(home_path, root, meta["root_check"], root_key is not None)
            if meta["root_check"] != crypto.root_check(root):
                raise LedgerError("the root key does not match this ledger")
        stored_region, stored_account = meta["region"].decode(), meta["account"].decode()
        if account not in (None, stored_account):
            raise LedgerError(f"this ledger was created for account {stored_account}; it cannot be "
                              "reopened for another")
        if region is not None:  # the request region (any region of the account)
            from keyledger.service.base import check_region
            try:
                check_region(region)
            except ValueError as exc:
                raise LedgerError(str(exc)) from None
        if cluster_config is None and "cluster_rev" in meta:
            raise LedgerError(f"the ledger at {home_path} is a node of a cluster: open it with its cluster "
                              "(keyledger serve --cluster ...); audit verify, audit log, forensics and "
                              "replay --check read it as it is")
        home_.warn_if_exposed(home_path)
        kms = KeyLedger(store, root, region=region or stored_region, account=stored_account,
                        clock=clock, rng=rng, caller=caller, signer=signer, home_region=stored_region)
        if cluster_config is not None:
            from keyledger import cluster as cluster_
            cluster_.attach(kms, cluster_config, root)
        return kms
    except BaseException:
        store.close()
        raise
