"""Multi-Region keys on a real ledger: `mrk-` keys of every spec AWS allows,
ReplicateKey (same id and material, own policy, tags, description, aliases,
state and KEK), UpdatePrimaryRegion, MultiRegionConfiguration, interchangeable
ciphertexts, signatures and MACs, rotation shared by the set, AWS's deletion
rules (PendingReplicaDeletion), crypto-shredding per replica, replay."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

from clockkit import T0
import keyledger
import pytest
from keyledger import crypto
from keyledger import events as ev
from keyledger.errors import (
    AlreadyExistsException,
    IncorrectKeyMaterialException,
    KMSInvalidStateException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from keyledger.projections import key_row, replay
from keyledger.secret import Secret

sys.path.insert(0, str(Path(__file__).parent))
from test_import import wrap

ACCOUNT = keyledger.DEFAULT_ACCOUNT
US, EU, AP = "us-east-1", "eu-west-1", "ap-southeast-2"



def arn(region: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"


def replay_ok(kms) -> None:
    with kms.store.snapshot() as snap:
        report = replay.check(snap)
    assert report.ok, report.differences


def test_create_replicate_and_describe(kms) -> None:
    eu, ap = kms.in_region(EU), kms.in_region(AP)
    meta = kms.create_key(multi_region=True, description="primary",
                          tags=[{"TagKey": "t", "TagValue": "p"}]).key_metadata
    key = meta.key_id
    assert re.fullmatch(r"mrk-[0-9a-f]{32}", key)
    assert meta.multi_region and meta.multi_region_configuration.multi_region_key_type == "PRIMARY"
    assert meta.multi_region_configuration.primary_key.arn == arn(US, key)
    assert meta.multi_region_configuration.replica_keys == []
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*",
         "Resource": "*"}]})
    out = kms.replicate_key(key, EU, description="replica", policy=policy,
                            tags=[{"TagKey": "t", "TagValue": "r"}])
    replica = out.replica_key_metadata
    # the response shows the replica as AWS's does, being made (recorded against AWS, 2025) ...
    assert (replica.key_id, replica.arn, replica.description, replica.key_state, replica.enabled,
            replica.current_key_material_id) == (key, arn(EU, key), "replica", "Creating", False, None)
    assert out.replica_policy == policy and [(t.tag_key, t.tag_value) for t in out.replica_tags] == [("t", "r")]
    # ... while here it is made, and usable, when the call returns
    described = eu.describe_key(key).key_metadata
    assert (described.key_state, described.enabled) == ("Enabled", True)
    assert described.current_key_material_id == kms.describe_key(key).key_metadata.current_key_material_id
    assert eu.decrypt(kms.encrypt(key, b"m").ciphertext_blob).plaintext == b"m"
    assert kms.replicate_key(key, AP).replica_tags is None  # no ReplicaTags member without tags
    for service, kind in ((kms, "PRIMARY"), (eu, "REPLICA"), (ap, "REPLICA")):
        config = service.describe_key(key).key_metadata.multi_region_configuration
        assert config.multi_region_key_type == kind
        assert (config.primary_key.arn, config.primary_key.region) == (arn(US, key), US)
        assert [(k.arn, k.region) for k in config.replica_keys] == [(arn(AP, key), AP), (arn(EU, key), EU)]
    # independent properties: policy, tags, description, aliases, state
    assert eu.get_key_policy(key).policy == policy
    assert [(t.tag_key, t.tag_value) for t in kms.list_resource_tags(key).tags] == [("t", "p")]
    kms.create_alias("alias/shared-name", key)
    eu.create_alias("alias/shared-name", key)
    eu.disable_key(key)
    assert kms.describe_key(key).key_metadata.key_state == "Enabled"
    assert eu.describe_key("alias/shared-name").key_metadata.key_state == "Disabled"
    assert [k.key_id for k in ap.list_keys().keys] == [key]
    replay_ok(kms)


def test_replicate_key_refusals(kms) -> None:
    eu = kms.in_region(EU)
    key = kms.create_key(multi_region=True).key_metadata.key_id
    single = kms.create_key().key_metadata.key_id
    with pytest.raises(UnsupportedOperationException):
        kms.replicate_key(single, EU)
    with pytest.raises(ValidationException):
        kms.replicate_key(key, US)  # its own region
    with pytest.raises(ValidationException):
        kms.replicate_key(key, "EU-WEST-1")  # the model's RegionType pattern
    kms.replicate_key(key, EU)
    with pytest.raises(AlreadyExistsException) as info:
        kms.replicate_key(key, EU)
    assert arn(EU, key) in info.value.message
    with pytest.raises(UnsupportedOperationException) as info:
        eu.replicate_key(key, AP)  # only the primary replicates
    assert info.value.message == f"{arn(EU, key)} is not a multi-region primary key."  # AWS's words
    with pytest.raises(NotFoundException):
        eu.replicate_key(arn(US, key), AP)  # another region's ARN
    for call in (lambda: eu.enable_key_rotation(key), lambda: eu.disable_key_rotation(key),
                 lambda: eu.rotate_key_on_demand(key)):
        with pytest.raises(UnsupportedOperationException):
            call()
    kms.disable_key(key)
    with pytest.raises(keyledger.KMSError) as info:
        kms.replicate_key(key, AP)
    assert info.value.code == "DisabledException"
    denied = [r for r in kms.store.records() if isinstance(r.event, ev.RequestDenied)]
    assert all(r.operation in ("ReplicateKey", "EnableKeyRotation", "DisableKeyRotation", "RotateKeyOnDemand")
               for r in denied) and len(denied) == 10


@pytest.mark.parametrize("spec,usage", [("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                                        ("RSA_2048", "ENCRYPT_DECRYPT"), ("HMAC_256", "GENERATE_VERIFY_MAC")])
def test_every_key_of_the_set_is_interchangeable(kms, spec: str, usage: str) -> None:
    eu = kms.in_region(EU)
    key = kms.create_key(multi_region=True, key_spec=spec, key_usage=usage).key_metadata.key_id
    kms.replicate_key(key, EU)
    if spec == "SYMMETRIC_DEFAULT":
        ctx = {"k": "v"}
        blob = kms.encrypt(key, b"from us", encryption_context=ctx).ciphertext_blob
        assert blob[:3] == b"KL\x81"  # a multi-Region key's ciphertext format byte
        assert eu.decrypt(blob, encryption_context=ctx).plaintext == b"from us"
        assert eu.decrypt(blob, encryption_context=ctx, key_id=key).key_id == arn(EU, key)
        back = eu.encrypt(key, b"from eu").ciphertext_blob
        assert kms.decrypt(back).plaintext == b"from eu"
        data_key = eu.generate_data_key(key, key_spec="AES_256")
        assert kms.decrypt(data_key.ciphertext_blob).plaintext == data_key.plaintext
    elif usage == "SIGN_VERIFY":
        signature = eu.sign(key, b"m", "ECDSA_SHA_256").signature
        assert kms.verify(key, b"m", signature, "ECDSA_SHA_256").signature_valid
        assert eu.get_public_key(key).public_key == kms.get_public_key(key).public_key
    elif spec == "RSA_2048":
        blob = kms.encrypt(key, b"rsa", encryption_algorithm="RSAES_OAEP_SHA_256").ciphertext_blob
        assert eu.decrypt(blob, key_id=key, encryption_algorithm="RSAES_OAEP_SHA_256").plaintext == b"rsa"
    else:
        mac = kms.generate_mac(key, b"m", "HMAC_SHA_256").mac
        assert eu.verify_mac(key, b"m", "HMAC_SHA_256", mac).mac_valid
    replay_ok(kms)


def test_ciphertext_format_of_a_multi_region_key() -> None:
    """Known answer: format byte 0x81, the id's 16 bytes, then format 1's
    layout; the message key binds the id and version, never a region."""
    key_id = "mrk-" + "11" * 16
    material = Secret(bytes(range(32)))
    blob = crypto.seal(material, key_id, 3, b"hello", crypto.canonical_context({}), salt=b"\x02" * 16,
                       nonce=b"\x03" * 12)
    assert blob[:51] == b"KL\x81" + b"\x11" * 16 + (3).to_bytes(4, "big") + b"\x02" * 16 + b"\x03" * 12
    assert crypto.parse_header(blob) == (key_id, 3)
    assert crypto.open_(material, blob, crypto.canonical_context({})) == b"hello"
    uuid_blob = crypto.seal(material, "11111111-1111-1111-1111-111111111111", 3, b"hello",
                            crypto.canonical_context({}), salt=b"\x02" * 16, nonce=b"\x03" * 12)
    assert uuid_blob[3:51] == blob[3:51] and uuid_blob[51:] != blob[51:]  # the header is in the AAD
    with pytest.raises(keyledger.KMSError):
        crypto.open_(material, b"KL\x01" + blob[3:], crypto.canonical_context({}))


def test_rotation_of_the_primary_reaches_every_replica(kms, clock) -> None:
    eu = kms.in_region(EU)
    key = kms.create_key(multi_region=True).key_metadata.key_id
    kms.replicate_key(key, EU)
    kms.rotate_key_on_demand(key)
    ids = [r.key_material_id for r in kms.list_key_rotations(key).rotations]
    assert ids == [r.key_material_id for r in eu.list_key_rotations(key).rotations] and len(ids) == 1
    blob = kms.encrypt(key, b"v2").ciphertext_blob
    assert eu.decrypt(blob).plaintext == b"v2"
    kms.enable_key_rotation(key, rotation_period_in_days=90)
    status = eu.get_key_rotation_status(key)
    assert status.key_rotation_enabled and status.rotation_period_in_days == 90
    assert status.next_rotation_date == kms.get_key_rotation_status(key).next_rotation_date
    clock.now = T0 + timedelta(days=91)
    blob3 = eu.encrypt(key, b"v3").ciphertext_blob  # touching the replica rotates the primary first
    assert crypto.parse_header(blob3)[1] == 3
    assert kms.decrypt(blob3).plaintext == b"v3"
    rotated = [(r.region, r.event.rotation_type, r.principal) for r in kms.store.records()
               if isinstance(r.event, ev.KeyRotated)]
    assert rotated == [(ev.msgspec.UNSET, "ON_DEMAND", kms.caller), (EU, "ON_DEMAND", ev.SERVICE_PRINCIPAL),
                       (ev.msgspec.UNSET, "AUTOMATIC", ev.SERVICE_PRINCIPAL), (EU, "AUTOMATIC", ev.SERVICE_PRINCIPAL)]
    clock.now = T0 + timedelta(days=182)
    assert kms.rotate_due() == {"rotated": 2, "deleted": 0}  # the primary's, and the replica's copy
    assert len(eu.list_key_rotations(key).rotations) == 3
    replay_ok(kms)


def test_update_primary_region(kms) -> None:
    eu = kms.in_region(EU)
    key = kms.create_key(multi_region=True).key_metadata.key_id
    kms.replicate_key(key, EU)
    with pytest.raises(UnsupportedOperationException):
        eu.update_primary_region(key, US)  # only the primary's region asks
    with pytest.raises(NotFoundException):
        kms.update_primary_region(key, AP)  # no replica there
    eu.disable_key(key)
    with pytest.raises(keyledger.KMSError) as info:
        kms.update_primary_region(key, EU)
    assert info.value.code == "DisabledException"
    eu.enable_key(key)
    kms.update_primary_region(key, EU)
    assert eu.describe_key(key).key_metadata.multi_region_configuration.multi_region_key_type == "PRIMARY"
    config = kms.describe_key(key).key_metadata.multi_region_configuration
    assert config.multi_region_key_type == "REPLICA" and config.primary_key.region == EU
    assert [k.region for k in config.replica_keys] == [US]
    eu.rotate_key_on_demand(key)  # the new primary rotates the set
    assert len(kms.list_key_rotations(key).rotations) == 1
    with pytest.raises(UnsupportedOperationException):
        kms.rotate_key_on_demand(key)
    eu.replicate_key(key, AP)
    replay_ok(kms)


def test_deletion_waits_for_the_replicas_and_shreds_per_replica(kms, clock) -> None:
    eu = kms.in_region(EU)
    key = kms.create_key(multi_region=True).key_metadata.key_id
    kms.replicate_key(key, EU)
    blob = kms.encrypt(key, b"keep").ciphertext_blob
    out = kms.schedule_key_deletion(key, pending_window_in_days=7)
    assert (out.key_state, out.deletion_date, out.pending_window_in_days) == ("PendingReplicaDeletion", None, 7)
    meta = kms.describe_key(key).key_metadata
    assert (meta.key_state, meta.pending_deletion_window_in_days, meta.deletion_date) == (
        "PendingReplicaDeletion", 7, None)
    with pytest.raises(KMSInvalidStateException):
        kms.encrypt(key, b"x")
    with pytest.raises(KMSInvalidStateException):
        kms.schedule_key_deletion(key)
    eu.schedule_key_deletion(key, pending_window_in_days=7)
    clock.now = T0 + timedelta(days=8)
    with pytest.raises(NotFoundException):
        eu.describe_key(key)  # the replica is deleted now ...
    meta = kms.describe_key(key).key_metadata  # ... and the primary's own wait began then
    assert meta.key_state == "PendingDeletion" and meta.deletion_date == clock.now + timedelta(days=7)
    assert meta.multi_region_configuration.replica_keys == []
    with kms.store.snapshot() as snap:
        assert snap.kek(key_row(key, EU).decode()) is None  # the replica's copy is shredded
        assert snap.kek(key_row(key).decode()) is not None
    kms.cancel_key_deletion(key)
    kms.enable_key(key)
    assert kms.decrypt(blob).plaintext == b"keep"
    # a deleted replica can be made again
    kms.replicate_key(key, EU)
    assert eu.decrypt(blob).plaintext == b"keep"
    replay_ok(kms)


def test_imported_material_must_be_imported_into_each_replica(kms) -> None:
    eu = kms.in_region(EU)
    key = kms.create_key(multi_region=True, origin="EXTERNAL").key_metadata.key_id
    material = os.urandom(32)

    def do_import(service, what: bytes):
        params = service.get_parameters_for_import(key, "RSAES_OAEP_SHA_256", "RSA_2048")
        return service.import_key_material(key, params.import_token,
                                           wrap(params.public_key, "RSAES_OAEP_SHA_256", what),
                                           expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE")
    do_import(kms, material)
    blob = kms.encrypt(key, b"imported").ciphertext_blob
    assert kms.replicate_key(key, EU).replica_key_metadata.key_state == "PendingImport"
    with pytest.raises(KMSInvalidStateException):
        eu.decrypt(blob)
    with pytest.raises(IncorrectKeyMaterialException):
        do_import(eu, os.urandom(32))
    do_import(eu, material)
    assert eu.decrypt(blob).plaintext == b"imported"
    with pytest.raises(UnsupportedOperationException):
        kms.rotate_key_on_demand(key)
    replay_ok(kms)


def test_nothing_secret_in_the_replication_records(kms) -> None:
    key = kms.create_key(multi_region=True).key_metadata.key_id
    blob = kms.encrypt(key, b"plain-secret-text").ciphertext_blob
    kms.replicate_key(key, EU)
    (created,) = [r for r in kms.store.records() if isinstance(r.event, ev.ReplicaKeyCreated)]
    (replicated,) = [r for r in kms.store.records() if isinstance(r.event, ev.KeyReplicated)]
    assert (created.region, created.operation, replicated.region) == (EU, "ReplicateKey", ev.msgspec.UNSET)
    assert replicated.event == ev.KeyReplicated(key, EU, "", [EU])
    # the replica's material is wrapped under its own KEK: not the primary's bytes
    primary_version = kms.store.get("keys", key_row(key)).versions[0]
    assert created.event.versions[0].material.wrapped != primary_version.wrapped
    assert created.event.versions[0].material.kcv == primary_version.kcv
    assert b"plain-secret-text" not in Path(kms.store.file_path()).read_bytes()
    assert blob
