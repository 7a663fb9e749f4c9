"""AWS managed keys through a real ledger: made on first use by a service
integration (one record, the service's principal), listed by ListAliases
before they exist, usable only through their service, unmanageable by
customers (AWS's errors), rotated every year, free in the bill."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from clockkit import T0, Clock
import keyledger
from keyledger import events as ev
from keyledger.errors import AccessDeniedException, NotAuthorizedException
from keyledger.projections import billing, replay
from keyledger.service import managed

ACCOUNT = "111122223333"
SSM = "ssm.us-east-1.amazonaws.com"



@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def kms(tmp_path, clock):
    with keyledger.open(tmp_path / "ledger", create=True, clock=clock) as service:
        yield service


def records(kms) -> list[ev.Record]:
    with kms.store.snapshot() as snap:
        return list(snap.records(0))


def test_created_on_first_use_as_one_record(kms) -> None:
    before = len(records(kms))
    key_id = kms.managed_key("ssm")
    (created,) = records(kms)[before:]
    assert isinstance(created.event, ev.AwsManagedKeyCreated)
    assert (created.principal, created.operation, created.event.alias_name) == ("ssm.amazonaws.com", "CreateKey",
                                                                                 "alias/aws/ssm")
    assert kms.managed_key("ssm") == key_id and len(records(kms)) == before + 1  # made once
    meta = kms.describe_key("alias/aws/ssm").key_metadata
    assert (meta.key_id, meta.key_manager, meta.key_state, meta.origin) == (key_id, "AWS", "Enabled", "AWS_KMS")
    status = kms.get_key_rotation_status(key_id)
    assert (status.key_rotation_enabled, status.rotation_period_in_days) == (True, 365)
    assert status.next_rotation_date == T0 + timedelta(days=365)
    policy = json.loads(kms.get_key_policy(key_id).policy)
    assert policy == json.loads(managed.managed_key_policy("ssm", ACCOUNT, "us-east-1"))
    assert policy["Statement"][0]["Condition"] == {"StringEquals": {"kms:CallerAccount": ACCOUNT,
                                                                    "kms:ViaService": SSM}}
    with pytest.raises(ValueError):
        kms.managed_key("nosuchservice")


def test_listed_before_they_exist(kms) -> None:
    aliases = {a.alias_name: a for a in kms.list_aliases().aliases}
    for service in ("ssm", "s3", "ebs", "rds", "secretsmanager", "lambda"):
        entry = aliases[f"alias/aws/{service}"]
        assert entry.target_key_id is None and entry.creation_date is None
        assert entry.alias_arn == f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/aws/{service}"
    key_id = kms.managed_key("s3")
    aliases = {a.alias_name: a for a in kms.list_aliases().aliases}
    assert aliases["alias/aws/s3"].target_key_id == key_id and aliases["alias/aws/ssm"].target_key_id is None
    # paging walks the predefined aliases in order with the others
    kms.create_alias("alias/zz", kms.create_key().key_metadata.key_id)
    names, marker = [], None
    while True:
        page = kms.list_aliases(limit=2, marker=marker)
        names += [a.alias_name for a in page.aliases]
        if not page.truncated:
            break
        marker = page.next_marker
    assert names == sorted(set(names)) == sorted([*managed.PREDEFINED_ALIASES, "alias/zz"])
    assert [a.alias_name for a in kms.list_aliases(key_id=key_id).aliases] == ["alias/aws/s3"]


def test_describe_key_of_a_predefined_alias_makes_the_key(kms) -> None:
    meta = kms.describe_key("alias/aws/ebs").key_metadata
    assert meta.key_manager == "AWS" and kms.managed_key("ebs") == meta.key_id
    policy = json.loads(kms.get_key_policy(meta.key_id).policy)
    assert policy["Statement"][0]["Condition"]["StringEquals"]["kms:ViaService"] == "ec2.us-east-1.amazonaws.com"


def test_usable_only_through_the_service(kms) -> None:
    key_id = kms.managed_key("ssm")
    kms.create_user("alice")
    alice = kms.as_caller(f"arn:aws:iam::{ACCOUNT}:user/alice")
    kms.put_principal_policy(f"arn:aws:iam::{ACCOUNT}:user/alice", "all", json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}))
    with pytest.raises(AccessDeniedException):
        alice.encrypt(key_id, b"direct")
    with pytest.raises(AccessDeniedException):
        kms.encrypt(key_id, b"not even the account root")
    blob = alice.via_service(SSM).encrypt("alias/aws/ssm", b"through ssm").ciphertext_blob
    assert alice.via_service(SSM).decrypt(blob).plaintext == b"through ssm"
    with pytest.raises(AccessDeniedException):
        alice.via_service("s3.us-east-1.amazonaws.com").decrypt(blob)
    outsider = kms.as_caller("arn:aws:iam::444455556666:user/mallory")
    with pytest.raises(AccessDeniedException):
        outsider.via_service(SSM).decrypt(blob)


@pytest.mark.parametrize("manage", [
    lambda k, key: k.disable_key(key),
    lambda k, key: k.schedule_key_deletion(key),
    lambda k, key: k.put_key_policy(key, k.get_key_policy(key).policy),
    lambda k, key: k.rotate_key_on_demand(key),
    lambda k, key: k.disable_key_rotation(key),
    lambda k, key: k.enable_key_rotation(key, rotation_period_in_days=90),
    lambda k, key: k.tag_resource(key, [{"TagKey": "a", "TagValue": "b"}]),
    lambda k, key: k.update_key_description(key, "mine now"),
    lambda k, key: k.create_alias("alias/mine", key),
], ids=["disable", "delete", "put-policy", "rotate-on-demand", "disable-rotation", "rotation-period", "tag",
        "describe", "alias"])
def test_customers_cannot_manage_them(kms, manage) -> None:
    key_id = kms.managed_key("rds")
    with pytest.raises(AccessDeniedException, match="because no resource-based policy allows"):
        manage(kms, key_id)
    assert records(kms)[-1].event.error_code == "AccessDeniedException"
    assert kms.describe_key(key_id).key_metadata.key_state == "Enabled"


def test_their_aliases_are_reserved(kms) -> None:
    kms.managed_key("lambda")
    other = kms.create_key().key_metadata.key_id
    for call in (lambda: kms.create_alias("alias/aws/lambda", other),
                 lambda: kms.update_alias("alias/aws/lambda", other),
                 lambda: kms.delete_alias("alias/aws/lambda")):
        with pytest.raises(NotAuthorizedException):
            call()


def test_rotated_every_year(kms, clock) -> None:
    key_id = kms.managed_key("secretsmanager")
    clock.now = T0 + timedelta(days=365 * 2 + 1)
    assert kms.managed_key("secretsmanager") == key_id
    rotated = [r for r in records(kms) if isinstance(r.event, ev.KeyRotated)]
    assert [r.event.rotation_type for r in rotated] == ["AUTOMATIC", "AUTOMATIC"]
    assert all(r.principal == ev.SERVICE_PRINCIPAL for r in rotated)
    with kms.store.snapshot() as snap:
        report = replay.check(snap)
    assert report.ok, report.differences


def test_free_in_the_bill(kms, clock) -> None:
    kms.managed_key("ssm")
    customer = kms.create_key().key_metadata.key_id
    bill = billing.compute(records(kms), "2030-01")
    assert set(bill.keys) == {customer}  # no key-month for the AWS managed key
    assert bill.requests["CreateKey"] == 1  # the customer's; the service's creation is not a billed request
    assert bill.keys[customer].key_cost > 0
