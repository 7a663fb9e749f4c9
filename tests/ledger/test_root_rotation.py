"""Root-key rotation: every KEK re-wrapped, the old root key gone, nothing
lost, and a crash at any point leaves a ledger that opens."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import keyledger
from keyledger import crypto
from keyledger.errors import AccessDeniedException, LedgerError, NotFoundException
from keyledger.projections import replay


def _workload(kms):
    a = kms.create_key().key_metadata.key_id
    b = kms.create_key().key_metadata.key_id
    kms.rotate_key_on_demand(a)
    blobs = {a: kms.encrypt(a, b"alpha", encryption_context={"k": "v"}).ciphertext_blob,
             b: kms.encrypt(b, b"beta").ciphertext_blob}
    return a, b, blobs


def test_rotation_rewraps_every_kek_and_destroys_the_old_root(tmp_path: Path) -> None:
    kms = keyledger.open(tmp_path, create=True)
    a, b, blobs = _workload(kms)
    old_root = (tmp_path / "root.key").read_bytes()
    old_wrapped = {k: kms.store.kek(k) for k in (a, b)}
    assert kms.rotate_root_key() == 2
    new_root = (tmp_path / "root.key").read_bytes()
    assert new_root != old_root and len(new_root) == 32
    assert not (tmp_path / "root.key.next").exists()
    assert (tmp_path / "root.key").stat().st_mode & 0o777 == 0o600
    for key_id, wrapped in old_wrapped.items():
        assert kms.store.kek(key_id) != wrapped
        with pytest.raises(LedgerError):  # the old wrapping is useless without the old root
            crypto.unwrap_kek(keyledger.Secret(new_root), key_id, wrapped)
    # the same instance, copies of it, and a fresh open all still decrypt
    assert kms.decrypt(blobs[a], encryption_context={"k": "v"}).plaintext == b"alpha"
    assert kms.as_caller(kms.caller).decrypt(blobs[b]).plaintext == b"beta"
    kms.close()
    with keyledger.open(tmp_path) as again:
        assert again.decrypt(blobs[b]).plaintext == b"beta"
        assert [r.operation for r in again.store.records()].count("RotateRootKey") == 1
        with again.store.snapshot() as snap:
            assert replay.check(snap).ok


def test_old_root_key_no_longer_opens_the_ledger(tmp_path: Path) -> None:
    kms = keyledger.open(tmp_path, create=True)
    _workload(kms)
    old_root = (tmp_path / "root.key").read_bytes()
    kms.rotate_root_key()
    kms.close()
    with pytest.raises(LedgerError, match="does not match"):
        keyledger.open(tmp_path, root_key=old_root)


def test_only_the_account_root_may_rotate(tmp_path: Path) -> None:
    with keyledger.open(tmp_path, create=True) as kms:
        kms.create_user("bob")
        with pytest.raises(AccessDeniedException):
            kms.as_caller("arn:aws:iam::111122223333:user/bob").rotate_root_key()
        assert not (tmp_path / "root.key.next").exists()
        with pytest.raises(AccessDeniedException):
            kms.as_caller("arn:aws:iam::111122223333:user/bob").stage_root_key()
        assert not (tmp_path / "root.key.staged").exists()


def test_a_staged_key_waits_for_a_cluster_rotation(tmp_path: Path) -> None:
    """root.key.staged is the next key of a cluster's node: reopening the
    ledger keeps it (unlike root.key.next, dropped when its rotation never
    committed), a ledger of one node rotates to a fresh key of its own, and
    the staged file is a secret file like root.key."""
    with keyledger.open(tmp_path, create=True) as kms:
        check = kms.stage_root_key()
        assert len(check) == 32  # 16 bytes, hex
    staged = tmp_path / "root.key.staged"
    assert staged.exists() and stat.S_IMODE(staged.stat().st_mode) == 0o600
    with keyledger.open(tmp_path) as kms:
        kms.rotate_root_key()
        assert kms.store.meta()["root_check"].hex() != check
    assert staged.exists()
    with pytest.raises(keyledger.LedgerError, match="32 bytes"):
        keyledger.stage_root_key(tmp_path, b"short")


def test_a_crash_after_commit_before_rename_is_finished_at_open(tmp_path: Path) -> None:
    kms = keyledger.open(tmp_path, create=True)
    a, _, blobs = _workload(kms)
    old_root = (tmp_path / "root.key").read_bytes()
    kms.rotate_root_key()
    kms.close()
    new_root = (tmp_path / "root.key").read_bytes()
    # put the files back as a crash between commit and rename leaves them
    (tmp_path / "root.key.next").write_bytes(new_root)
    (tmp_path / "root.key").write_bytes(old_root)
    with keyledger.open(tmp_path) as again:
        assert again.decrypt(blobs[a], encryption_context={"k": "v"}).plaintext == b"alpha"
    assert (tmp_path / "root.key").read_bytes() == new_root
    assert not (tmp_path / "root.key.next").exists()


def test_a_crash_before_commit_drops_the_unused_next_key(tmp_path: Path) -> None:
    kms = keyledger.open(tmp_path, create=True)
    a, _, blobs = _workload(kms)
    kms.close()
    root = (tmp_path / "root.key").read_bytes()
    (tmp_path / "root.key.next").write_bytes(b"\x01" * 32)
    with keyledger.open(tmp_path) as again:
        assert again.decrypt(blobs[a], encryption_context={"k": "v"}).plaintext == b"alpha"
    assert (tmp_path / "root.key").read_bytes() == root
    assert not (tmp_path / "root.key.next").exists()


def test_deleted_keys_stay_deleted(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    kms = keyledger.open(tmp_path, create=True, clock=lambda: now[0])
    a, b, blobs = _workload(kms)
    kms.schedule_key_deletion(a, pending_window_in_days=7)
    now[0] += timedelta(days=8)
    kms.rotate_due()
    assert kms.rotate_root_key() == 1
    with pytest.raises(NotFoundException):
        kms.decrypt(blobs[a], encryption_context={"k": "v"})
    assert kms.decrypt(blobs[b]).plaintext == b"beta"
    kms.close()


def test_an_open_waits_while_a_rotation_is_in_flight(tmp_path: Path) -> None:
    """A rotation holds root.lock from writing root.key.next until it renames
    it root.key. A process opening the home meanwhile waits, instead of
    reading a next key whose commit has not come yet as one that never will
    (and deleting it, which would lose the key the commit then needs)."""
    import os
    import threading
    import time

    from keyledger import home as home_

    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        key_id = kms.create_key().key_metadata.key_id
    opened: list[keyledger.KeyLedger] = []
    with home_.root_key_lock(home):  # a rotation in flight: its next key written, the commit to come
        (home / "root.key.next").write_bytes(os.urandom(32))
        (home / "root.key.next").chmod(0o600)
        opening = threading.Thread(target=lambda: opened.append(keyledger.open(home)))
        opening.start()
        time.sleep(0.5)
        assert opening.is_alive() and not opened  # waiting on the lock
        assert (home / "root.key.next").exists()
    opening.join(10)  # released (this rotation's commit failed): the open finds a next key that never committed
    assert opened and not (home / "root.key.next").exists()
    with opened[0] as kms:
        assert kms.describe_key(key_id).key_metadata.enabled
