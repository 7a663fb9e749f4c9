"""Key lifecycle with AWS KMS semantics, driven through a real ledger and an
injected clock: states and their errors, deletion after the waiting period,
automatic rotation by jumping the clock, manual rotation through an alias,
paging, and the audit record every call leaves behind.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest

from clockkit import T0
import keyledger
from keyledger import crypto
from keyledger import events as ev
from keyledger.errors import (
    AccessDeniedException, DisabledException, IncorrectKeyException, KMSError, KMSInvalidStateException,
    NotFoundException, ValidationException,
)
from keyledger.service import to_us

DAY = timedelta(days=1)
US = timedelta(microseconds=1)


@pytest.fixture
def kms(tmp_path, clock):
    with keyledger.open(tmp_path / "ledger", create=True, clock=clock) as service:
        yield service


@pytest.fixture
def key(kms):
    return kms.create_key(description="lifecycle").key_metadata.key_id


def state_of(kms, key_id: str) -> str:
    return kms.describe_key(key_id).key_metadata.key_state


def version_of(blob: bytes) -> int:
    return crypto.parse_header(blob)[1]


def records_since(kms, next_seq: int) -> list[ev.Record]:
    return list(kms.store.records(next_seq))


def listed_keys(kms) -> set[str]:
    return {k.key_id for k in kms.list_keys(limit=1000).keys}


def listed_aliases(kms) -> dict[str, str]:
    return {a.alias_name: a.target_key_id for a in kms.list_aliases(limit=100).aliases
            if a.target_key_id is not None}  # not the predefined alias/aws/* (no key yet)


# -- states -----------------------------------------------------------------------

def test_a_disabled_key_refuses_the_data_plane(kms, key):
    other = kms.create_key().key_metadata.key_id
    blob = kms.encrypt(key, b"before").ciphertext_blob
    kms.disable_key(key)
    assert state_of(kms, key) == "Disabled"
    assert kms.describe_key(key).key_metadata.enabled is False
    refused = [
        lambda: kms.encrypt(key, b"x"),
        lambda: kms.decrypt(blob),
        lambda: kms.generate_data_key(key, key_spec="AES_256"),
        lambda: kms.generate_data_key_without_plaintext(key, number_of_bytes=16),
        lambda: kms.re_encrypt(blob, other),                                   # disabled source
        lambda: kms.re_encrypt(kms.encrypt(other, b"y").ciphertext_blob, key),  # disabled destination
    ]
    for call in refused:
        with pytest.raises(DisabledException):
            call()
    kms.enable_key(key)
    assert kms.decrypt(blob).plaintext == b"before"


def test_a_key_pending_deletion_is_in_an_invalid_state(kms, key):
    blob = kms.encrypt(key, b"before").ciphertext_blob
    kms.schedule_key_deletion(key, pending_window_in_days=7)
    assert state_of(kms, key) == "PendingDeletion"
    refused = [
        lambda: kms.encrypt(key, b"x"),
        lambda: kms.decrypt(blob),
        lambda: kms.generate_data_key(key, key_spec="AES_128"),
        lambda: kms.enable_key(key),
        lambda: kms.disable_key(key),
        lambda: kms.schedule_key_deletion(key, pending_window_in_days=7),
        lambda: kms.rotate_key_on_demand(key),
        lambda: kms.enable_key_rotation(key),
        lambda: kms.update_key_description(key, "new"),
    ]
    for call in refused:
        with pytest.raises(KMSInvalidStateException):
            call()
    # AWS's key-state table: a key pending deletion still takes a new key policy
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "only root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{kms.account}:root"},
        "Action": "kms:*", "Resource": "*"}]})
    kms.put_key_policy(key, policy)
    assert kms.get_key_policy(key).policy == policy
    assert state_of(kms, key) == "PendingDeletion"


def test_cancel_deletion_leaves_the_key_disabled(kms, key):
    blob = kms.encrypt(key, b"kept").ciphertext_blob
    with pytest.raises(KMSInvalidStateException):  # nothing to cancel yet
        kms.cancel_key_deletion(key)
    kms.schedule_key_deletion(key, pending_window_in_days=7)
    response = kms.cancel_key_deletion(key)
    assert response.key_id == f"arn:aws:kms:{kms.region}:{kms.account}:key/{key}"
    metadata = kms.describe_key(key).key_metadata
    assert (metadata.key_state, metadata.deletion_date, metadata.pending_deletion_window_in_days) == \
        ("Disabled", None, None)
    with pytest.raises(DisabledException):
        kms.decrypt(blob)
    kms.enable_key(key)
    assert kms.decrypt(blob).plaintext == b"kept"


# -- deletion ----------------------------------------------------------------------

def test_deletion_happens_on_the_first_touch_after_the_window(kms, key, clock):
    kms.create_alias("alias/doomed", key)
    kms.create_alias("alias/doomed-too", key)
    survivor = kms.create_key().key_metadata.key_id
    blob = kms.encrypt(key, b"gone").ciphertext_blob
    deletion_date = kms.schedule_key_deletion(key, pending_window_in_days=7).deletion_date
    assert deletion_date == T0 + 7 * DAY

    clock.now = deletion_date - US
    assert state_of(kms, key) == "PendingDeletion"
    assert kms.store.kek(key) is not None

    clock.now = deletion_date
    next_seq = kms.store.head().seq
    with pytest.raises(NotFoundException):
        kms.encrypt("alias/doomed", b"x")  # the touch, through an alias
    records = records_since(kms, next_seq)
    # The deletion is appended by the service before the refused request.
    assert [type(r.event).__name__ for r in records] == \
        ["AliasDeleted", "AliasDeleted", "KeyDeleted", "RequestDenied"]
    assert {r.operation for r in records[:3]} == {"DeleteKey"}
    assert {r.principal for r in records[:3]} == {ev.SERVICE_PRINCIPAL}
    assert records[3].operation == "Encrypt" and records[3].event.error_code == "NotFoundException"

    for call in (lambda: kms.describe_key(key), lambda: kms.decrypt(blob), lambda: kms.enable_key(key),
                 lambda: kms.cancel_key_deletion(key), lambda: kms.describe_key("alias/doomed")):
        with pytest.raises(NotFoundException):
            call()
    assert listed_keys(kms) == {survivor}
    assert listed_aliases(kms) == {}
    assert kms.store.kek(key) is None  # crypto-shredded
    kms.create_alias("alias/doomed", survivor)  # the name is free again


def test_the_sweep_deletes_due_keys_without_a_touch(kms, clock):
    due = kms.create_key().key_metadata.key_id
    later = kms.create_key().key_metadata.key_id
    kept = kms.create_key().key_metadata.key_id
    kms.create_alias("alias/due", due)
    kms.create_alias("alias/later", later)
    kms.schedule_key_deletion(due, pending_window_in_days=7)
    kms.schedule_key_deletion(later, pending_window_in_days=30)

    clock.advance(7 * DAY)
    assert kms.rotate_due() == {"rotated": 0, "deleted": 1}
    assert listed_keys(kms) == {later, kept}
    assert listed_aliases(kms) == {"alias/later": later}
    assert state_of(kms, later) == "PendingDeletion"
    assert kms.store.kek(due) is None and kms.store.kek(later) is not None

    assert kms.rotate_due() == {"rotated": 0, "deleted": 0}  # idempotent
    clock.advance(23 * DAY)
    assert kms.rotate_due() == {"rotated": 0, "deleted": 1}
    assert listed_keys(kms) == {kept}
    assert listed_aliases(kms) == {}


# -- automatic rotation -----------------------------------------------------------

def rotations(kms, key_id: str) -> list[tuple[datetime, str]]:
    return [(r.rotation_date, r.rotation_type) for r in kms.list_key_rotations(key_id).rotations]


def test_automatic_rotation_by_jumping_the_clock(kms, key, clock):
    kms.enable_key_rotation(key, rotation_period_in_days=90)
    old = kms.encrypt(key, b"version one").ciphertext_blob
    assert version_of(old) == 1

    clock.advance(200 * DAY)
    next_seq = kms.store.head().seq
    new = kms.encrypt(key, b"version three").ciphertext_blob
    records = records_since(kms, next_seq)
    # Two rotations fell due; each is dated at its due time, appended before
    # the encrypt that touched the key, by the service.
    rotated = [r for r in records if isinstance(r.event, ev.KeyRotated)]
    assert [r.event.rotation_type for r in rotated] == ["AUTOMATIC", "AUTOMATIC"]
    assert [r.event.rotation_date for r in rotated] == \
        [to_us(T0 + 90 * DAY), to_us(T0 + 180 * DAY)]
    assert {(r.operation, r.principal) for r in rotated} == {("RotateKey", ev.SERVICE_PRINCIPAL)}
    assert records[-1].operation == "Encrypt"

    assert crypto.parse_header(new) == (key, 3)
    assert kms.describe_key(key).key_metadata.key_id == key
    assert rotations(kms, key) == [(T0 + 90 * DAY, "AUTOMATIC"), (T0 + 180 * DAY, "AUTOMATIC")]
    assert kms.decrypt(old).plaintext == b"version one"
    assert kms.decrypt(new).plaintext == b"version three"
    assert kms.get_key_rotation_status(key).next_rotation_date == T0 + 270 * DAY


def test_the_sweep_rotates_every_due_key(kms, clock):
    keys = [kms.create_key().key_metadata.key_id for _ in range(3)]
    kms.enable_key_rotation(keys[0], rotation_period_in_days=90)
    kms.enable_key_rotation(keys[1], rotation_period_in_days=365)
    clock.advance(400 * DAY)
    assert kms.rotate_due() == {"rotated": 5, "deleted": 0}  # 4 of the 90-day key, 1 of the yearly one
    assert len(rotations(kms, keys[0])) == 4
    assert rotations(kms, keys[1]) == [(T0 + 365 * DAY, "AUTOMATIC")]
    assert rotations(kms, keys[2]) == []
    assert kms.rotate_due() == {"rotated": 0, "deleted": 0}


def test_a_disabled_key_does_not_rotate_and_rotates_when_re_enabled_late(kms, key, clock):
    kms.enable_key_rotation(key, rotation_period_in_days=90)
    clock.advance(10 * DAY)
    kms.disable_key(key)
    clock.advance(190 * DAY)  # T0 + 200: two periods passed while disabled
    assert kms.rotate_due() == {"rotated": 0, "deleted": 0}
    assert rotations(kms, key) == []

    kms.enable_key(key)  # late: the overdue rotation happens now, once
    blob = kms.encrypt(key, b"after").ciphertext_blob
    assert version_of(blob) == 2
    assert rotations(kms, key) == [(T0 + 200 * DAY, "AUTOMATIC")]
    assert kms.get_key_rotation_status(key).next_rotation_date == T0 + 290 * DAY

    clock.now = T0 + 290 * DAY
    assert kms.rotate_due() == {"rotated": 1, "deleted": 0}
    assert rotations(kms, key)[-1] == (T0 + 290 * DAY, "AUTOMATIC")


def test_rotation_status_and_next_rotation_date(kms, key, clock):
    status = kms.get_key_rotation_status(key)
    assert (status.key_rotation_enabled, status.next_rotation_date, status.rotation_period_in_days) == \
        (False, None, None)
    kms.enable_key_rotation(key, rotation_period_in_days=180)
    assert kms.get_key_rotation_status(key).next_rotation_date == T0 + 180 * DAY

    clock.advance(30 * DAY)
    kms.rotate_key_on_demand(key)  # on demand leaves the automatic schedule alone
    assert kms.get_key_rotation_status(key).next_rotation_date == T0 + 180 * DAY

    clock.now = T0 + 181 * DAY
    status = kms.get_key_rotation_status(key)
    assert status.next_rotation_date == T0 + 360 * DAY
    assert rotations(kms, key) == [(T0 + 30 * DAY, "ON_DEMAND"), (T0 + 180 * DAY, "AUTOMATIC")]

    # A new period counts from the last automatic rotation.
    kms.enable_key_rotation(key, rotation_period_in_days=90)
    assert kms.get_key_rotation_status(key).next_rotation_date == T0 + 270 * DAY

    kms.disable_key_rotation(key)
    status = kms.get_key_rotation_status(key)
    assert (status.key_rotation_enabled, status.next_rotation_date) == (False, None)
    clock.advance(3650 * DAY)
    assert kms.rotate_due()["rotated"] == 0


def test_list_key_rotations_pages(kms, key, clock):
    dates = []
    for _ in range(5):
        clock.advance(DAY)
        dates.append(clock.now)
        kms.rotate_key_on_demand(key)
    pages, marker = [], None
    while True:
        page = kms.list_key_rotations(key, limit=2, marker=marker)
        pages.append([(r.rotation_date, r.rotation_type, r.key_id) for r in page.rotations])
        if not page.truncated:
            assert page.next_marker is None
            break
        marker = page.next_marker
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [entry for page in pages for entry in page] == [(d, "ON_DEMAND", key) for d in dates]


# -- manual rotation ----------------------------------------------------------------

def test_manual_rotation_by_re_pointing_an_alias(kms):
    arn = f"arn:aws:kms:{kms.region}:{kms.account}:key/"
    old_key = kms.create_key(description="2030").key_metadata.key_id
    kms.create_alias("alias/app", old_key)
    old_blob = kms.encrypt("alias/app", b"written under the old key").ciphertext_blob

    new_key = kms.create_key(description="2031").key_metadata.key_id
    kms.update_alias("alias/app", new_key)
    response = kms.encrypt("alias/app", b"written under the new key")
    assert response.key_id == arn + new_key
    assert crypto.parse_header(response.ciphertext_blob)[0] == new_key

    # Old ciphertexts name the old key and still decrypt through it.
    old = kms.decrypt(old_blob)
    assert (old.key_id, old.plaintext) == (arn + old_key, b"written under the old key")
    assert kms.decrypt(old_blob, key_id=old_key).plaintext == b"written under the old key"
    with pytest.raises(IncorrectKeyException) as info:  # the alias now means the new key
        kms.decrypt(old_blob, key_id="alias/app")
    # AWS's words, "CMK" and all (as recorded against AWS in 2023 and 2025)
    assert info.value.message == "The key ID in the request does not identify a CMK that can perform this operation."
    assert kms.decrypt(response.ciphertext_blob, key_id="alias/app").plaintext == b"written under the new key"

    # Re-encrypting moves old data onto the new key.
    moved = kms.re_encrypt(old_blob, "alias/app")
    assert (moved.source_key_id, moved.key_id) == (arn + old_key, arn + new_key)
    assert kms.decrypt(moved.ciphertext_blob).plaintext == b"written under the old key"


def test_an_alias_moves_only_to_a_key_of_the_same_type_and_usage(kms):
    symmetric = kms.create_key().key_metadata.key_id
    kms.create_alias("alias/app", symmetric)
    start = kms.store.head().seq
    others = {
        ("RSA_2048", "SIGN_VERIFY"): "from a CMK with key usage ENCRYPT_DECRYPT to a CMK with key usage SIGN_VERIFY",
        ("HMAC_256", "GENERATE_VERIFY_MAC"):
            "from a CMK with key usage ENCRYPT_DECRYPT to a CMK with key usage GENERATE_VERIFY_MAC",
        ("RSA_2048", "ENCRYPT_DECRYPT"): "from a symmetric key to an asymmetric key",
    }
    for (spec, usage), words in others.items():
        other = kms.create_key(key_spec=spec, key_usage=usage).key_metadata.key_id
        with pytest.raises(ValidationException, match=f"^ValidationException: Alias alias/app cannot be changed {words}"):
            kms.update_alias("alias/app", other)
    assert listed_aliases(kms)["alias/app"] == symmetric
    refusals = [r.event for r in records_since(kms, start) if r.operation == "UpdateAlias"]
    assert [e.error_code for e in refusals] == ["ValidationException"] * 3
    # same type and usage moves; so does a move between asymmetric families of one usage
    rsa = kms.create_key(key_spec="RSA_3072", key_usage="SIGN_VERIFY").key_metadata.key_id
    ecc = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
    kms.create_alias("alias/signer", rsa)
    kms.update_alias("alias/signer", ecc)
    newer = kms.create_key().key_metadata.key_id
    kms.update_alias("alias/app", newer)
    assert (listed_aliases(kms)["alias/app"], listed_aliases(kms)["alias/signer"]) == (newer, ecc)


# -- the audit record of every call -------------------------------------------------

def test_every_call_is_a_record_with_its_operation(kms, clock):
    key = kms.create_key().key_metadata.key_id
    other = kms.create_key().key_metadata.key_id
    kms.create_alias("alias/audit", key)
    blob = kms.encrypt(key, b"x").ciphertext_blob
    missing = str(uuid.UUID(int=1))

    calls = [
        # (operation, call, AWS error code or None)
        ("CreateKey", lambda: kms.create_key(description="more"), None),
        ("CreateKey", lambda: kms.create_key(tags={"aws:x": "y"}), "TagException"),
        ("DescribeKey", lambda: kms.describe_key(key), None),
        ("DescribeKey", lambda: kms.describe_key(missing), "NotFoundException"),
        ("ListKeys", lambda: kms.list_keys(), None),
        ("ListKeys", lambda: kms.list_keys(limit=0), "ValidationException"),
        ("UpdateKeyDescription", lambda: kms.update_key_description(key, "d"), None),
        ("UpdateKeyDescription", lambda: kms.update_key_description(key, "d" * 8193), "ValidationException"),
        ("DisableKey", lambda: kms.disable_key(other), None),
        ("Encrypt", lambda: kms.encrypt(other, b"x"), "DisabledException"),
        ("EnableKey", lambda: kms.enable_key(other), None),
        ("EnableKey", lambda: kms.enable_key(missing), "NotFoundException"),
        ("DisableKey", lambda: kms.disable_key(missing), "NotFoundException"),
        ("TagResource", lambda: kms.tag_resource(key, {"team": "a"}), None),
        ("TagResource", lambda: kms.tag_resource(key, {"aws:team": "a"}), "TagException"),
        ("UntagResource", lambda: kms.untag_resource(key, ["team"]), None),
        ("UntagResource", lambda: kms.untag_resource(key, []), "ValidationException"),
        ("ListResourceTags", lambda: kms.list_resource_tags(key), None),
        ("ListResourceTags", lambda: kms.list_resource_tags(key, marker="garbage"), "InvalidMarkerException"),
        ("CreateAlias", lambda: kms.create_alias("alias/audit-2", key), None),
        ("CreateAlias", lambda: kms.create_alias("alias/audit", key), "AlreadyExistsException"),
        ("CreateAlias", lambda: kms.create_alias("alias/aws/x", key), "NotAuthorizedException"),
        ("UpdateAlias", lambda: kms.update_alias("alias/audit-2", other), None),
        ("UpdateAlias", lambda: kms.update_alias("alias/nope", other), "NotFoundException"),
        ("DeleteAlias", lambda: kms.delete_alias("alias/audit-2"), None),
        ("DeleteAlias", lambda: kms.delete_alias("alias/audit-2"), "NotFoundException"),
        ("ListAliases", lambda: kms.list_aliases(), None),
        ("ListAliases", lambda: kms.list_aliases(limit=101), "ValidationException"),
        ("EnableKeyRotation", lambda: kms.enable_key_rotation(key), None),
        ("EnableKeyRotation", lambda: kms.enable_key_rotation(key, rotation_period_in_days=89),
         "ValidationException"),
        ("GetKeyRotationStatus", lambda: kms.get_key_rotation_status(key), None),
        ("GetKeyRotationStatus", lambda: kms.get_key_rotation_status(missing), "NotFoundException"),
        ("DisableKeyRotation", lambda: kms.disable_key_rotation(key), None),
        ("DisableKeyRotation", lambda: kms.disable_key_rotation(missing), "NotFoundException"),
        ("RotateKeyOnDemand", lambda: kms.rotate_key_on_demand(key), None),
        ("RotateKeyOnDemand", lambda: kms.rotate_key_on_demand(missing), "NotFoundException"),
        ("ListKeyRotations", lambda: kms.list_key_rotations(key), None),
        ("ListKeyRotations", lambda: kms.list_key_rotations(key, limit=1001), "ValidationException"),
        ("Encrypt", lambda: kms.encrypt("alias/audit", b"y"), None),
        ("Encrypt", lambda: kms.encrypt(key, b""), "ValidationException"),
        ("Decrypt", lambda: kms.decrypt(blob), None),
        ("Decrypt", lambda: kms.decrypt(blob[:-1]), "InvalidCiphertextException"),
        ("Decrypt", lambda: kms.decrypt(blob, key_id=other), "IncorrectKeyException"),
        ("ReEncrypt", lambda: kms.re_encrypt(blob, other), None),
        ("ReEncrypt", lambda: kms.re_encrypt(blob, missing), "NotFoundException"),
        ("GenerateDataKey", lambda: kms.generate_data_key(key, key_spec="AES_256"), None),
        ("GenerateDataKey", lambda: kms.generate_data_key(key), "ValidationException"),
        ("GenerateDataKeyWithoutPlaintext",
         lambda: kms.generate_data_key_without_plaintext(key, number_of_bytes=8), None),
        ("GenerateDataKeyWithoutPlaintext",
         lambda: kms.generate_data_key_without_plaintext(key, number_of_bytes=1025), "ValidationException"),
        ("GenerateRandom", lambda: kms.generate_random(number_of_bytes=8), None),
        ("GenerateRandom", lambda: kms.generate_random(number_of_bytes=0), "ValidationException"),
        ("ScheduleKeyDeletion", lambda: kms.schedule_key_deletion(other, pending_window_in_days=6),
         "ValidationException"),
        ("ScheduleKeyDeletion", lambda: kms.schedule_key_deletion(other, pending_window_in_days=7), None),
        ("CancelKeyDeletion", lambda: kms.cancel_key_deletion(other), None),
        ("CancelKeyDeletion", lambda: kms.cancel_key_deletion(other), "KMSInvalidStateException"),
    ]
    covered = {op for op, _, _ in calls}
    assert len(covered) == 26  # every key, alias, rotation and data-plane operation

    for operation, call, error in calls:
        clock.advance(timedelta(seconds=1))
        next_seq = kms.store.head().seq
        if error is None:
            call()
        else:
            with pytest.raises(KMSError) as info:
                call()
            assert info.value.code == error, operation
        records = records_since(kms, next_seq)
        assert len(records) >= 1, operation
        assert {r.operation for r in records} == {operation}
        assert len({r.request_id for r in records}) == 1
        assert {r.principal for r in records} == {f"arn:aws:iam::{kms.account}:root"}
        assert {r.time for r in records} == {to_us(clock.now)}
        denied = [r.event for r in records if isinstance(r.event, ev.RequestDenied)]
        if error is None:
            assert denied == [], operation
        else:
            assert len(records) == 1, operation  # a refusal changes nothing else
            assert (denied[0].operation, denied[0].error_code) == (operation, error)


def test_records_name_the_calling_principal(kms, key):
    alice = kms.create_user("alice").arn
    kms.put_principal_policy(alice, "use-keys", json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:DescribeKey"], "Resource": "*"}]}))
    as_alice = kms.as_caller(alice)
    next_seq = kms.store.head().seq
    as_alice.encrypt(key, b"from alice")
    with pytest.raises(NotFoundException):
        as_alice.describe_key(str(uuid.UUID(int=2)))
    with pytest.raises(AccessDeniedException):  # her policy does not allow it
        as_alice.disable_key(key)
    records = records_since(kms, next_seq)
    assert [(r.principal, r.operation, type(r.event).__name__) for r in records] == [
        (alice, "Encrypt", "Encrypted"),
        (alice, "DescribeKey", "RequestDenied"),
        (alice, "DisableKey", "RequestDenied")]
    assert [r.event.error_code for r in records[1:]] == ["NotFoundException", "AccessDeniedException"]
    assert state_of(kms, key) == "Enabled"


# -- paging ---------------------------------------------------------------------------

def page_all(fetch, limit: int) -> list[list]:
    pages, marker = [], None
    while True:
        page = fetch(limit=limit, marker=marker)
        pages.append(page)
        if not page.truncated:
            assert page.next_marker is None
            return pages
        assert page.next_marker
        marker = page.next_marker


def test_list_keys_pages_and_skips_deleted_keys(kms, clock):
    created = [kms.create_key().key_metadata.key_id for _ in range(7)]
    pages = page_all(kms.list_keys, 3)
    assert [len(p.keys) for p in pages] == [3, 3, 1]
    seen = [k.key_id for p in pages for k in p.keys]
    assert sorted(seen) == sorted(created) and len(set(seen)) == 7
    assert all(k.key_arn.endswith("key/" + k.key_id) for p in pages for k in p.keys)

    for gone in sorted(created)[1:3]:
        kms.schedule_key_deletion(gone, pending_window_in_days=7)
    clock.advance(7 * DAY)
    kms.rotate_due()
    pages = page_all(kms.list_keys, 2)
    assert [len(p.keys) for p in pages] == [2, 2, 1]
    assert sorted(k.key_id for p in pages for k in p.keys) == sorted(created)[:1] + sorted(created)[3:]


def test_list_keys_with_a_limit_equal_to_the_count(kms):
    created = {kms.create_key().key_metadata.key_id for _ in range(3)}
    page = kms.list_keys(limit=3)
    assert {k.key_id for k in page.keys} == created
    assert page.truncated is False and page.next_marker is None


def test_list_aliases_pages(kms):
    a = kms.create_key().key_metadata.key_id
    b = kms.create_key().key_metadata.key_id
    names = {f"alias/a{i}": a for i in range(5)} | {f"alias/b{i}": b for i in range(2)}
    for name, target in names.items():
        kms.create_alias(name, target)
    pages = page_all(kms.list_aliases, 2)
    assert all(len(p.aliases) == 2 for p in pages[:-1]) and len(pages[-1].aliases) in (1, 2)
    seen = [(x.alias_name, x.target_key_id) for p in pages for x in p.aliases
            if not x.alias_name.startswith("alias/aws/")]  # AWS lists its predefined aliases too
    assert seen == sorted(names.items())
    assert all(x.alias_arn == f"arn:aws:kms:{kms.region}:{kms.account}:{x.alias_name}"
               for p in pages for x in p.aliases)

    pages = page_all(lambda **kw: kms.list_aliases(key_id=a, **kw), 2)
    assert [len(p.aliases) for p in pages] == [2, 2, 1]
    assert [x.alias_name for p in pages for x in p.aliases] == [f"alias/a{i}" for i in range(5)]
