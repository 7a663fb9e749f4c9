"""The raw LMDB files hold no secret, and deleting a key shreds it.

After a workload that encrypts recognisable random plaintexts, makes data
keys and random bytes, decrypts, re-encrypts and rotates (on demand and by
jumping the clock), the test unwraps every secret the ledger has (each KEK
from the `keks` table under the root key file, each version's material from
the key projection under its KEK, and each message key derived from those)
and finds none of them, nor any plaintext, data key or the root key, in the
bytes of `data.mdb` or `lock.mdb`: not whole, and not any 16-byte piece.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import keyledger
from keyledger import crypto
from keyledger import events as ev
from keyledger.errors import NotFoundException
from keyledger.secret import Secret
from keyledger.projections import key_row, replay
from clockkit import Clock

WINDOW = 16  # any 16 consecutive secret bytes found in the file is a leak


def pieces(secret: bytes) -> list[bytes]:
    """The secret, and every 16-byte window of it (step 8), so a partial
    copy is found too."""
    if len(secret) <= WINDOW:
        return [secret]
    return [secret] + [secret[i:i + WINDOW] for i in range(0, len(secret) - WINDOW + 1, 8)]


def assert_absent(blob: bytes, secrets: dict[str, bytes], where: str) -> None:
    for name, secret in secrets.items():
        assert len(secret) >= WINDOW, f"{name} is too short to search for reliably"
        for piece in pieces(secret):
            assert piece not in blob, f"{name} found in {where}"


def unwrap_everything(kms: keyledger.KeyLedger, root: Secret, key_ids: list[str]) -> dict[str, bytes]:
    """Every KEK and every version's material, unwrapped by hand."""
    out = {}
    for key_id in key_ids:
        wrapped_kek = kms.store.kek(key_id)
        assert wrapped_kek is not None
        kek = crypto.unwrap_kek(root, key_id, wrapped_kek)
        out[f"KEK of {key_id}"] = kek.reveal()
        state = kms.store.get("keys", key_row(key_id))
        for info in state.versions:
            material = crypto.unwrap_material(kek, key_id, info.version, info.wrapped)
            assert crypto.kcv_matches(material, info.kcv)
            out[f"material v{info.version} of {key_id}"] = material.reveal()
    return out


def message_key(materials: dict[str, bytes], blob: bytes) -> bytes:
    """The per-message AES key a ciphertext was sealed with (HKDF of its
    version's material and salt, DESIGN.md section 6)."""
    key_id, version = crypto.parse_header(blob)
    salt_at = crypto.HEADER_BYTES - crypto.NONCE_BYTES - crypto.SALT_BYTES  # magic, format, id, version
    salt = blob[salt_at:salt_at + crypto.SALT_BYTES]
    material = Secret(materials[f"material v{version} of {key_id}"])
    return crypto._message_key(material, crypto.key_uuid_bytes(key_id), version, salt)


@pytest.fixture
def workload(tmp_path):
    clock = Clock(datetime(2025, 1, 1, tzinfo=timezone.utc))
    home = tmp_path / "ledger"
    kms = keyledger.open(home, create=True, durability="durable", clock=clock)
    secrets: dict[str, bytes] = {}
    blobs: list[tuple[bytes, bytes, str, dict[str, str]]] = []  # ciphertext, plaintext, key id, context
    keys = [kms.create_key(description=f"scan {i}").key_metadata.key_id for i in range(3)]
    kms.create_alias("alias/scan", keys[0])
    kms.enable_key_rotation(keys[1], rotation_period_in_days=90)
    kms.rotate_key_on_demand(keys[2])

    for i in range(12):
        plaintext = b"KEYLEDGER-PLAINTEXT-" + os.urandom(4096 - 20) if i % 3 == 0 else os.urandom(32 + 97 * i)
        target = ("alias/scan", keys[1], keys[2])[i % 3]
        resp = kms.encrypt(target, plaintext, encryption_context={"n": str(i)})
        assert kms.decrypt(resp.ciphertext_blob, encryption_context={"n": str(i)}).plaintext == plaintext
        secrets[f"plaintext {i}"] = plaintext
        blobs.append((resp.ciphertext_blob, plaintext, crypto.parse_header(resp.ciphertext_blob)[0], {"n": str(i)}))
        if i == 5:  # an automatic rotation half way
            clock.now += timedelta(days=91)
    for i, spec in enumerate(("AES_256", "AES_128", None)):
        size = {"key_spec": spec} if spec else {"number_of_bytes": 64}
        resp = kms.generate_data_key(keys[i], encryption_context={"dk": str(i)}, **size)
        secrets[f"data key {i}"] = resp.plaintext
        blobs.append((resp.ciphertext_blob, resp.plaintext, keys[i], {"dk": str(i)}))
    secrets["random bytes"] = kms.generate_random(number_of_bytes=64).plaintext
    blob, plaintext, _, context = blobs[1]
    moved = kms.re_encrypt(blob, keys[2], source_encryption_context=context).ciphertext_blob
    blobs.append((moved, plaintext, keys[2], {}))
    assert kms.list_key_rotations(keys[1]).rotations[0].rotation_type == "AUTOMATIC"

    root = Secret((home / "root.key").read_bytes())
    secrets["root key"] = root.reveal()
    if (home / "checkpoint.key").exists():
        secrets["checkpoint signing key"] = (home / "checkpoint.key").read_bytes()
    materials = unwrap_everything(kms, root, keys)
    secrets.update(materials)
    for n, (blob, *_) in enumerate(blobs):
        secrets[f"message key {n}"] = message_key(materials, blob)
    yield kms, clock, keys, blobs, secrets
    kms.close()


def test_no_secret_in_the_raw_files(workload):
    kms, _, _, _, secrets = workload
    data_path = Path(kms.store.file_path())
    lock_path = data_path.with_name("lock.mdb")
    kms.close()  # everything on disk; the fixture's close is then a no-op
    data, lock = data_path.read_bytes(), lock_path.read_bytes()
    assert len(data) > 64 * 1024  # the workload really is in there
    assert len(secrets) > 30
    assert_absent(data, secrets, "data.mdb")
    assert_absent(lock, secrets, "lock.mdb")
    # the scan itself works: what the log does hold is found
    reopened = keyledger.open(data_path.parent)
    try:
        with reopened.store.snapshot() as snap:
            first = next(snap.raw_records())
            assert replay.check(snap).ok
        assert first.body in data
    finally:
        reopened.close()


def test_deleting_a_key_shreds_its_material(workload):
    """The sweep deletes the key, its KEK row goes in the same transaction,
    and its ciphertexts fail with NotFoundException while others still work.

    (What this cannot show: LMDB is copy-on-write, so the old page that held
    the *wrapped* KEK stays in the file's free space until reused; with the
    root key, such a residue or any earlier backup still unwraps it.)"""
    kms, clock, keys, blobs, _ = workload
    doomed = keys[2]
    assert kms.store.kek(doomed) is not None
    kms.schedule_key_deletion(doomed, pending_window_in_days=7)
    clock.now += timedelta(days=7, seconds=1)
    assert kms.rotate_due()["deleted"] == 1
    assert kms.store.kek(doomed) is None  # the KEK row is gone
    # the log keeps its history: the versions are still described, wrapped
    state = kms.store.get("keys", key_row(doomed))
    assert state.state == "Deleted" and len(state.versions) >= 2
    deleted = [r for r in kms.store.records() if isinstance(r.event, ev.KeyDeleted)]
    assert [r.event.key_id for r in deleted] == [doomed]

    mine = [(blob, context) for blob, _, key_id, context in blobs if key_id == doomed]
    others = [(blob, plaintext, context) for blob, plaintext, key_id, context in blobs if key_id != doomed]
    assert mine and others
    for blob, context in mine:
        with pytest.raises(NotFoundException):
            kms.decrypt(blob, encryption_context=context)
    for blob, plaintext, context in others:  # the other keys are untouched
        assert kms.decrypt(blob, encryption_context=context).plaintext == plaintext

    # and a fresh open has no KEK for it either: nothing in memory kept it alive
    kms.close()
    reopened = keyledger.open(Path(kms.store.path))
    try:
        assert reopened.store.kek(doomed) is None
        with pytest.raises(NotFoundException):
            reopened.decrypt(mine[0][0], encryption_context=mine[0][1])
        with reopened.store.snapshot() as snap:
            assert replay.check(snap).ok
    finally:
        reopened.close()

