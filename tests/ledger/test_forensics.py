"""Forensics (keyledger.forensics) on real ledgers: a ciphertext's history, a
key's timeline, every key at a moment, and the decryptability proof (healthy,
with a crypto-shredded key, with a corrupted projection row on a copy, with a
corpus holding a wrong-context line)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import lmdb
import pytest
from msgspec.structs import replace

import keyledger
from keyledger import events as ev
from keyledger import forensics
from keyledger.errors import AccessDeniedException, LedgerError
from keyledger.service import to_us
from keyledger.store import Store
from keyledger.projections import decode_row, encode_row, key_row
from clockkit import Clock

T0 = datetime(2030, 1, 10, tzinfo=timezone.utc)
ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"


def _allow(*actions: str) -> str:
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]})


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def kms(tmp_path, clock):
    with keyledger.open(tmp_path / "ledger", create=True, clock=clock, durability="relaxed") as service:
        for name, actions in (("alice", ("kms:*",)), ("bob", ("kms:Decrypt",))):
            service.create_user(name)
            service.put_principal_policy(f"arn:aws:iam::{ACCOUNT}:user/{name}", "p", _allow(*actions))
        yield service


def snapshot(kms):
    return kms.store.snapshot()


# -- a ciphertext's history -----------------------------------------------------------

def test_ciphertext_history_names_producer_and_later_uses(kms, clock) -> None:
    alice, bob = kms.as_caller(ALICE), kms.as_caller(BOB)
    orders = alice.create_key(description="orders").key_metadata.key_id
    archive = kms.create_key(description="archive").key_metadata.key_id
    clock.advance(minutes=1)
    blob = alice.encrypt(orders, b"card", encryption_context={"order": "7"}).ciphertext_blob
    clock.advance(minutes=1)
    bob.decrypt(blob, encryption_context={"order": "7"})
    with pytest.raises(AccessDeniedException):  # bob may not re-encrypt: a refusal, not a use
        bob.re_encrypt(blob, archive, source_encryption_context={"order": "7"})
    clock.advance(minutes=1)
    moved = kms.re_encrypt(blob, archive, source_encryption_context={"order": "7"}).ciphertext_blob
    kms.decrypt(moved)
    unrelated = alice.encrypt(orders, b"other").ciphertext_blob
    kms.decrypt(unrelated)

    with snapshot(kms) as snap:
        found = forensics.ciphertext_history(snap, blob)
        later = forensics.ciphertext_history(snap, moved)
    data_key = kms.generate_data_key(orders, key_spec="AES_256").ciphertext_blob  # a write: outside the read
    with snapshot(kms) as snap:
        made = forensics.ciphertext_history(snap, data_key)
    assert (found["key_id"], found["key_version"]) == (orders, 1)
    assert found["produced_by"]["principal"] == ALICE and found["produced_by"]["event"] == "Encrypted"
    assert found["produced_by"]["time"] == "2030-01-10T00:01:00Z"
    assert [(u["principal"], u["event"]) for u in found["later_uses"]] == [(BOB, "Decrypted"),
                                                                          (kms.caller, "ReEncrypted")]
    assert (later["key_id"], later["produced_by"]["event"]) == (archive, "ReEncrypted")
    assert [u["event"] for u in later["later_uses"]] == ["Decrypted"]
    assert made["produced_by"]["operation"] == "GenerateDataKey" and made["later_uses"] == []


# -- a key's timeline, and every key at a moment ------------------------------------------------

def test_key_timeline(kms, clock) -> None:
    alice = kms.as_caller(ALICE)
    key = kms.create_key(description="timeline").key_metadata.key_id
    other = kms.create_key(description="other").key_metadata.key_id
    kms.create_alias("alias/app", key)
    kms.create_alias("alias/old", key)
    kms.update_alias("alias/old", other)  # no longer points here
    kms.enable_key_rotation(key, rotation_period_in_days=90)
    alice.encrypt(key, b"jan")
    clock.advance(days=30)
    kms.rotate_key_on_demand(key)
    kms.encrypt(key, b"feb")
    kms.as_caller(BOB).decrypt(alice.encrypt(key, b"x").ciphertext_blob)
    clock.advance(days=70)  # past the automatic rotation date
    kms.disable_key(key)  # appends the due AUTOMATIC rotation first
    kms.schedule_key_deletion(key, pending_window_in_days=7)
    kms.cancel_key_deletion(key)

    with snapshot(kms) as snap:
        t = forensics.key_timeline(snap, key)
    assert [e["event"] for e in t["timeline"]] == [
        "KeyCreated", "AliasCreated", "AliasCreated", "AliasUpdated", "KeyRotationEnabled", "KeyRotated",
        "KeyRotated", "KeyDisabled", "KeyDeletionScheduled", "KeyDeletionCancelled"]
    rotations = [e for e in t["timeline"] if e["event"] == "KeyRotated"]
    assert [(r["rotation_type"], r["new_version"], r["principal"]) for r in rotations] == [
        ("ON_DEMAND", 2, kms.caller), ("AUTOMATIC", 3, ev.SERVICE_PRINCIPAL)]
    assert t["aliases_now"] == ["alias/app"]
    assert t["usage_by_principal"] == {ALICE: 2, kms.caller: 1, BOB: 1}
    assert t["usage_by_month"] == {"2030-01": 1, "2030-02": 3}


def test_keys_at_a_time_and_a_seq(kms, clock) -> None:
    first = kms.create_key(description="first").key_metadata.key_id
    clock.advance(hours=1)
    before_second = to_us(clock.now)
    clock.advance(hours=1)
    second = kms.create_key(description="second").key_metadata.key_id
    clock.advance(hours=1)
    kms.disable_key(first)
    disabled_at = kms.store.head().seq - 1
    with snapshot(kms) as snap:
        early = forensics.keys_at(snap, until_time=before_second)
        assert [(k["key_id"], k["state"]) for k in early] == [(first, "Enabled")]
        late = forensics.keys_at(snap, until_seq=disabled_at)
        assert [(k["key_id"], k["state"]) for k in late] == [(first, "Disabled"), (second, "Enabled")]
        just_before = forensics.keys_at(snap, until_seq=disabled_at - 1)
        assert [k["state"] for k in just_before] == ["Enabled", "Enabled"]


def test_keys_at_refuses_a_state_past_a_chain_break(kms, tmp_path) -> None:
    key = kms.create_key().key_metadata.key_id
    for _ in range(4):
        kms.encrypt(key, b"x")
    kms.disable_key(key)
    n = kms.store.head().seq
    kms.close()
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "ledger", copy, ignore=shutil.ignore_patterns("lock.mdb"))
    broken = n - 3
    env = lmdb.open(str(copy), max_dbs=32)
    with env.begin(write=True) as txn:
        db = env.open_db(b"records", txn=txn)
        value = bytearray(txn.get(broken.to_bytes(8, "big"), db=db))
        value[-2] ^= 1
        txn.put(broken.to_bytes(8, "big"), bytes(value), db=db)
    env.close()
    store = Store(str(copy), readonly=True)
    try:
        with store.snapshot() as snap:
            assert forensics.keys_at(snap, until_seq=broken - 1)[0]["state"] == "Enabled"
            for bound in ({"until_seq": broken}, {"until_seq": n - 1}, {}):
                with pytest.raises(LedgerError, match=f"seq {broken}"):
                    forensics.keys_at(snap, **bound)
    finally:
        store.close()


# -- the decryptability proof -------------------------------------------------------------

def _workload(kms, clock) -> dict[str, list[tuple[bytes, dict[str, str]]]]:
    """Two live keys (one rotated), one key deleted after use; the ciphertexts."""
    blobs: dict[str, list[tuple[bytes, dict[str, str]]]] = {"live": [], "gone": []}
    live = kms.create_key(description="live").key_metadata.key_id
    other = kms.create_key(description="other").key_metadata.key_id
    gone = kms.create_key(description="gone").key_metadata.key_id
    for i in range(3):
        ctx = {"i": str(i)}
        blobs["live"].append((kms.encrypt(live, b"v1", encryption_context=ctx).ciphertext_blob, ctx))
    kms.rotate_key_on_demand(live)
    blobs["live"].append((kms.encrypt(live, b"v2").ciphertext_blob, {}))
    blobs["live"].append((kms.generate_data_key(other, key_spec="AES_256").ciphertext_blob, {}))
    moved = kms.re_encrypt(blobs["live"][0][0], other, source_encryption_context={"i": "0"},
                           destination_encryption_context={"moved": "yes"}).ciphertext_blob
    blobs["live"].append((moved, {"moved": "yes"}))
    blobs["gone"].append((kms.encrypt(gone, b"bye").ciphertext_blob, {}))
    kms.schedule_key_deletion(gone, pending_window_in_days=7)
    clock.advance(days=8)
    assert kms.rotate_due()["deleted"] == 1
    blobs["ids"] = [(live.encode(), {}), (other.encode(), {}), (gone.encode(), {})]  # type: ignore[list-item]
    return blobs


def _ids(blobs) -> tuple[str, str, str]:
    return tuple(k.decode() for k, _ in blobs["ids"])  # type: ignore[return-value]


def test_prove_decryptable_on_a_healthy_ledger_with_a_shredded_key(kms, clock) -> None:
    blobs = _workload(kms, clock)
    live, other, gone = _ids(blobs)
    with snapshot(kms) as snap:
        report = forensics.prove_decryptable(snap, kms._root, corpus=blobs["live"] + blobs["gone"])
    assert report.ok
    by_key = {k.key_id: k for k in report.keys}
    assert set(by_key) == {live, other, gone}
    assert [(v.version, v.ciphertexts, v.ok) for v in by_key[live].versions] == [(1, 3, True), (2, 1, True)]
    assert [(v.version, v.ciphertexts, v.ok) for v in by_key[other].versions] == [(1, 2, True)]
    shredded = by_key[gone]
    assert shredded.shredded and shredded.ok and shredded.state == "Deleted"
    assert [(v.version, v.ciphertexts, v.reason) for v in shredded.versions] == [(1, 1, "crypto-shredded")]
    # every live ciphertext opened; the shredded key's one is not counted as a failure
    assert (report.corpus_total, report.corpus_opened, report.corpus_failures) == (6, 6, [])


def test_a_wrong_context_line_in_the_corpus_fails(kms, clock) -> None:
    blobs = _workload(kms, clock)
    corpus = list(blobs["live"])
    corpus[1] = (corpus[1][0], {"i": "not what it was"})
    corpus.append((b"KL\x01" + b"\x00" * 70, {}))  # names a key this ledger never had
    with snapshot(kms) as snap:
        report = forensics.prove_decryptable(snap, kms._root, corpus=corpus)
    assert not report.ok and all(k.ok for k in report.keys)
    assert report.corpus_failures[0] == "line 2: does not open (wrong context or altered)"
    assert len(report.corpus_failures) == 2 and report.corpus_failures[1].startswith("line 7: ")
    assert report.corpus_opened == 5


def corrupt_material(home: Path, key_id: str, version: int) -> None:
    """Write a bad projection row: one version's wrapped material altered."""
    store = Store(str(home))
    try:
        with store.env.begin(write=True) as txn:
            db = store._dbs["keys"]
            state = decode_row("keys", txn.get(key_row(key_id), db=db))
            versions = list(state.versions)
            bad = bytearray(versions[version - 1].wrapped)
            bad[-1] ^= 0x01
            versions[version - 1] = replace(versions[version - 1], wrapped=bytes(bad))
            txn.put(key_row(key_id), encode_row(replace(state, versions=tuple(versions))), db=db)
    finally:
        store.close()


def test_corrupted_wrapped_material_is_a_failure(kms, clock, tmp_path) -> None:
    blobs = _workload(kms, clock)
    live, other, gone = _ids(blobs)
    root = kms._root
    kms.close()
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "ledger", copy, ignore=shutil.ignore_patterns("lock.mdb"))
    corrupt_material(copy, live, 2)
    store = Store(str(copy), readonly=True)
    try:
        with store.snapshot() as snap:
            report = forensics.prove_decryptable(snap, root, corpus=blobs["live"])
    finally:
        store.close()
    assert not report.ok
    by_key = {k.key_id: k for k in report.keys}
    assert not by_key[live].ok and by_key[other].ok and by_key[gone].shredded
    v1, v2 = by_key[live].versions
    assert v1.ok and not v2.ok and "does not unwrap" in v2.reason
    # the one ciphertext under the corrupted version cannot be opened; the rest can
    assert report.corpus_total == 6 and report.corpus_opened == 5
    [failure] = report.corpus_failures
    assert failure.startswith("line 4: ")


def test_a_refused_reencrypt_is_filed_under_the_key_that_refused(kms) -> None:
    """A ReEncrypt names two keys; its refusal is indexed (and shown by `audit
    log --key-id`) under the key the refusal is about: the source when the
    source is disabled, the destination when the destination is. It was filed
    under the destination whatever refused."""
    from keyledger.errors import DisabledException
    from keyledger.projections.query import Filter, query
    source = kms.create_key().key_metadata.key_id
    destination = kms.create_key().key_metadata.key_id
    blob = kms.encrypt(source, b"x").ciphertext_blob
    kms.disable_key(source)
    with pytest.raises(DisabledException):
        kms.re_encrypt(blob, destination)
    kms.enable_key(source)
    kms.disable_key(destination)
    with pytest.raises(DisabledException):
        kms.re_encrypt(blob, destination)
    with pytest.raises(DisabledException):  # the source named by alias: filed under its id
        kms.create_alias("alias/src", source)
        kms.disable_key(source)
        kms.re_encrypt(blob, destination, source_key_id="alias/src")

    def refusals(key_id: str) -> list[str]:
        with snapshot(kms) as snap:
            return [r.event.key_id for r in query(snap, Filter(key_id=key_id, operation="ReEncrypt",
                                                                  errors_only=True), newest_first=False)]
    assert refusals(source) == [source, source]
    assert refusals(destination) == [destination]


# -- an access key's history ------------------------------------------------------------

def test_access_key_history_follows_its_lifecycle_and_only_its_own_requests(kms, clock) -> None:
    made = kms.create_access_key(ALICE)
    other = kms.create_access_key(ALICE)  # the same owner's other key: none of its requests are this one's
    clock.advance(minutes=1)
    kms.update_access_key(ALICE, made.access_key_id, "Inactive")
    kms.delete_access_key(ALICE, made.access_key_id)
    key_id = kms.create_key().key_metadata.key_id
    signed = kms.as_caller(ALICE).from_address("192.0.2.10", True, access_key=other.access_key_id)
    signed.encrypt(key_id, b"x")
    with pytest.raises(AccessDeniedException):
        signed.create_user("mallory")  # alice may use KMS, not IAM
    with snapshot(kms) as snap:
        gone = forensics.access_key_history(snap, made.access_key_id)
        used = forensics.access_key_history(snap, other.access_key_id)
    assert gone["owner"] == ALICE
    assert [(e["event"], e.get("status"), e.get("held")) for e in gone["lifecycle"]] == [
        ("AccessKeyCreated", None, True), ("AccessKeyStatusChanged", "Inactive", None),
        ("AccessKeyDeleted", None, None)]
    assert gone["requests"] == 0 and gone["first_use"] is None
    assert used["requests"] == 2 and used["by_operation"] == {"Encrypt": 1, "CreateUser": 1}
    assert used["by_key"] == {key_id: 1} and used["by_source"] == {"192.0.2.10": 2}
    assert [r["error_code"] for r in used["refused"]] == ["AccessDeniedException"]
