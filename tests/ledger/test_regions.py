"""Regions on a real ledger: one ledger is one account with any number of
regions. Keys, aliases and grants belong to the request's region; ARNs
name it; the initial region's records and rows keep the bytes and names
they had before regions existed; replay, audit queries, CloudTrail
renderings and the bill see the regions."""

from __future__ import annotations

from datetime import timedelta

from clockkit import T0
import keyledger
import pytest
from keyledger import LedgerError, audit
from keyledger import events as ev
from keyledger.errors import AlreadyExistsException, NotFoundException
from keyledger.projections import billing, cloudtrail, key_row, replay
from keyledger.projections.query import Filter, query

ACCOUNT = keyledger.DEFAULT_ACCOUNT
EU = "eu-west-1"



def test_keys_belong_to_the_request_region(kms) -> None:
    eu = kms.in_region(EU)
    assert (kms.region, kms.home_region, eu.region, eu.home_region) == ("us-east-1", "us-east-1", EU, "us-east-1")
    us_key = kms.create_key(description="us").key_metadata
    eu_key = eu.create_key(description="eu").key_metadata
    assert us_key.arn == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{us_key.key_id}"
    assert eu_key.arn == f"arn:aws:kms:{EU}:{ACCOUNT}:key/{eu_key.key_id}"
    assert eu.describe_key(eu_key.key_id).key_metadata.arn == eu_key.arn
    # another region's key does not exist here, by id or by ARN
    with pytest.raises(NotFoundException) as info:
        eu.describe_key(us_key.key_id)
    assert info.value.message == f"Key 'arn:aws:kms:{EU}:{ACCOUNT}:key/{us_key.key_id}' does not exist"
    with pytest.raises(NotFoundException) as info:
        kms.describe_key(eu_key.arn)
    assert info.value.message == f"Invalid arn {EU}"
    with pytest.raises(NotFoundException):
        eu.encrypt(us_key.key_id, b"x")
    # a ciphertext of one region's key is garbage in another
    blob = kms.encrypt(us_key.key_id, b"x").ciphertext_blob
    with pytest.raises(keyledger.KMSError) as info:
        eu.decrypt(blob)
    assert info.value.code == "InvalidCiphertextException"
    assert [k.key_id for k in kms.list_keys().keys] == [us_key.key_id]
    assert [(k.key_id, k.key_arn) for k in eu.list_keys().keys] == [(eu_key.key_id, eu_key.arn)]
    assert eu.in_region("us-east-1").list_keys().keys == kms.list_keys().keys


def test_list_keys_pages_within_a_region(kms) -> None:
    eu = kms.in_region(EU)
    us_ids = sorted(kms.create_key().key_metadata.key_id for _ in range(5))
    eu_ids = sorted(eu.create_key().key_metadata.key_id for _ in range(5))
    for service, ids in ((kms, us_ids), (eu, eu_ids)):
        seen, marker = [], None
        while True:
            page = service.list_keys(limit=2, marker=marker)
            seen += [k.key_id for k in page.keys]
            if not page.truncated:
                break
            marker = page.next_marker
        assert seen == ids


def test_aliases_are_unique_per_region(kms) -> None:
    eu = kms.in_region(EU)
    us_key = kms.create_key().key_metadata.key_id
    eu_key = eu.create_key().key_metadata.key_id
    kms.create_alias("alias/app", us_key)
    eu.create_alias("alias/app", eu_key)  # the same name in another region
    with pytest.raises(AlreadyExistsException) as info:
        eu.create_alias("alias/app", eu_key)
    assert info.value.message == f"An alias with the name arn:aws:kms:{EU}:{ACCOUNT}:alias/app already exists"
    assert kms.describe_key("alias/app").key_metadata.key_id == us_key
    assert eu.describe_key("alias/app").key_metadata.key_id == eu_key
    mine = [a for a in eu.list_aliases().aliases if a.target_key_id is not None]
    assert [(a.alias_name, a.alias_arn, a.target_key_id) for a in mine] == [
        ("alias/app", f"arn:aws:kms:{EU}:{ACCOUNT}:alias/app", eu_key)]
    eu.delete_alias("alias/app")
    assert kms.describe_key("alias/app").key_metadata.key_id == us_key
    with pytest.raises(NotFoundException):
        eu.describe_key("alias/app")


def test_grants_are_per_region(kms) -> None:
    eu = kms.in_region(EU)
    bob = kms.create_user("bob").arn  # IAM is global: one user for every region
    us_key = kms.create_key().key_metadata.key_id
    eu_key = eu.create_key().key_metadata.key_id
    us_grant = kms.create_grant(us_key, bob, ["Encrypt"], retiring_principal=bob).grant_id
    eu_grant = eu.create_grant(eu_key, bob, ["Encrypt"], retiring_principal=bob).grant_id
    assert [g.grant_id for g in kms.list_retirable_grants(bob).grants] == [us_grant]
    assert [g.grant_id for g in eu.list_retirable_grants(bob).grants] == [eu_grant]
    assert eu.list_grants(eu_key).grants[0].key_id == f"arn:aws:kms:{EU}:{ACCOUNT}:key/{eu_key}"
    eu.as_caller(bob).encrypt(eu_key, b"x")  # the grant works in its region
    with pytest.raises(NotFoundException):
        eu.revoke_grant(us_key, us_grant)
    eu.revoke_grant(eu_key, eu_grant)
    assert kms.list_retirable_grants(bob).grants[0].grant_id == us_grant


def test_open_selects_the_request_region(tmp_path) -> None:
    home = tmp_path / "l"
    with keyledger.open(home, create=True, region="ap-south-1") as kms:
        key = kms.create_key().key_metadata.key_id
    with keyledger.open(home) as kms:  # default: the initial region
        assert (kms.region, kms.home_region) == ("ap-south-1", "ap-south-1")
        assert kms.describe_key(key).key_metadata.arn.startswith("arn:aws:kms:ap-south-1:")
    with keyledger.open(home, region="us-west-2") as kms:
        assert (kms.region, kms.home_region) == ("us-west-2", "ap-south-1")
        with pytest.raises(NotFoundException):
            kms.describe_key(key)
    with pytest.raises(LedgerError, match="region name"):
        keyledger.open(home, region="Mars")
    with pytest.raises(LedgerError, match="account"):
        keyledger.open(home, account="999988887777")
    with keyledger.open(home) as kms, pytest.raises(ValueError):
        kms.in_region("not a region")


def test_records_name_only_other_regions(kms) -> None:
    """The initial region's records leave the region out (so their bytes are
    what they were before regions: ledgers made then keep verifying);
    another region's records name it; replay rebuilds the same rows."""
    eu = kms.in_region(EU)
    key = kms.create_key().key_metadata.key_id
    kms.encrypt(key, b"x")
    eu_key = eu.create_key().key_metadata.key_id
    eu.encrypt(eu_key, b"x")
    eu.create_alias("alias/e", eu_key)
    records = list(kms.store.records())
    for record in records:
        body = ev.canonical(record)
        if record.event.__class__ in (ev.KeyCreated, ev.Encrypted) and record.event.key_id == key:
            assert b"region" not in body and record.region is ev.msgspec.UNSET and record.scope == ""
        if getattr(record.event, "key_id", None) == eu_key:
            assert record.region == EU and record.scope == EU
            assert ev.decode(body) == record
    with kms.store.snapshot() as snap:
        assert snap.get("keys", key_row(key)) is not None
        assert snap.get("keys", key_row(eu_key, EU)).region == EU
        assert snap.get("keys", key_row(eu_key)) is None
        assert snap.kek(key_row(eu_key, EU).decode()) is not None
        report = replay.check(snap)
    assert report.ok, report.differences
    kms.checkpoint()
    with kms.store.snapshot() as snap:  # the signed state digest and the per-region KEK rows check out
        verified = audit.verify(snap)
    assert verified.ok, verified.problems


def test_sweep_and_deletion_cover_every_region(kms, clock) -> None:
    eu = kms.in_region(EU)
    key = eu.create_key().key_metadata.key_id
    eu.enable_key_rotation(key, rotation_period_in_days=90)
    doomed = eu.create_key().key_metadata.key_id
    eu.schedule_key_deletion(doomed, pending_window_in_days=7)
    clock.now = T0 + timedelta(days=91)
    assert kms.rotate_due() == {"rotated": 1, "deleted": 1}
    assert len(eu.list_key_rotations(key).rotations) == 1
    with kms.store.snapshot() as snap:  # the deleted key's KEK row is gone (crypto-shredding)
        assert snap.kek(key_row(doomed, EU).decode()) is None
        assert snap.kek(key_row(key, EU).decode()) is not None
    rotated = [r for r in kms.store.records() if isinstance(r.event, ev.KeyRotated)]
    assert [r.region for r in rotated] == [EU]
    assert kms.rotate_root_key() == 1  # every region's KEK rows re-wrapped (the deleted key has none)
    assert eu.decrypt(eu.encrypt(key, b"still").ciphertext_blob).plaintext == b"still"


def test_audit_query_cloudtrail_and_bill_see_regions(kms) -> None:
    eu = kms.in_region(EU)
    key = kms.create_key().key_metadata.key_id
    eu_key = eu.create_key().key_metadata.key_id
    eu.encrypt(eu_key, b"x")
    kms.encrypt(key, b"x")
    with kms.store.snapshot() as snap:
        in_eu = list(query(snap, Filter(region=EU), newest_first=False))
        in_us = list(query(snap, Filter(region="", operation="Encrypt"), newest_first=False))
    assert [r.operation for r in in_eu] == ["CreateKey", "Encrypt"]
    assert [r.event.key_id for r in in_us] == [key]
    rendered = cloudtrail.render(in_eu[1], region="us-east-1", account=ACCOUNT)
    assert rendered["awsRegion"] == EU
    assert rendered["resources"][0]["ARN"] == f"arn:aws:kms:{EU}:{ACCOUNT}:key/{eu_key}"
    us_rendered = cloudtrail.render(in_us[0], region="us-east-1", account=ACCOUNT)
    assert us_rendered["awsRegion"] == "us-east-1"
    month = T0.strftime("%Y-%m")
    bill = billing.compute(kms.store.records(), month)
    assert {(k.key_id, k.region) for k in bill.keys.values()} == {(key, ""), (eu_key, EU)}
