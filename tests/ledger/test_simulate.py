"""policy simulate and forensics who-can: the evaluator's answers, explained
live and replayed to a moment."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

import keyledger
from keyledger import forensics
from keyledger.errors import AccessDeniedException
from keyledger.service import to_us
from clockkit import Clock

ACCOUNT = "111122223333"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
EVE = f"arn:aws:iam::{ACCOUNT}:user/eve"
APP = f"arn:aws:iam::{ACCOUNT}:role/app"


def doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture
def world(tmp_path):
    clock = Clock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    kms = keyledger.open(tmp_path, create=True, clock=clock)
    key = kms.create_key().key_metadata.key_id
    kms.create_user("bob")
    kms.create_user("eve")
    yield kms, key, clock
    kms.close()


def test_simulate_names_the_statements_that_decided(world) -> None:
    kms, key, _ = world
    kms.put_principal_policy(BOB, "orders", doc({
        "Sid": "DecryptOrders", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:app": "orders"}}}))
    allowed = kms.simulate_policy(BOB, "kms:Decrypt", key_id=key, encryption_context={"app": "orders"})
    assert allowed["Decision"] == "allowed"
    assert {(m["Source"], m["Statement"]) for m in allowed["MatchedStatements"]} == {
        ("key policy", "Enable IAM User Permissions"), ("IAM policy orders", "DecryptOrders")}
    other = kms.simulate_policy(BOB, "kms:Decrypt", key_id=key, encryption_context={"app": "billing"})
    assert other["Decision"] == "denied"
    assert other["Reason"] == "because no identity-based policy allows the kms:Decrypt action"
    assert [m["Source"] for m in other["MatchedStatements"]] == ["key policy"]


def test_simulate_reports_an_explicit_deny(world) -> None:
    kms, key, _ = world
    kms.put_principal_policy(BOB, "all", doc({"Effect": "Allow", "Action": "kms:*", "Resource": "*"}))
    kms.put_principal_policy(BOB, "no", doc({"Sid": "NoDecrypt", "Effect": "Deny", "Action": "kms:Decrypt",
                                             "Resource": "*"}))
    out = kms.simulate_policy(BOB, "kms:Decrypt", key_id=key)
    assert out["Decision"] == "denied"
    assert out["Reason"] == "with an explicit deny in an identity-based policy"
    assert {"Source": "IAM policy no", "Statement": "NoDecrypt", "Effect": "Deny", "Via": "identity"} \
        in out["MatchedStatements"]


def test_simulate_agrees_with_the_real_call_and_is_logged(world) -> None:
    kms, key, _ = world
    assert kms.simulate_policy(BOB, "kms:Encrypt", key_id=key)["Decision"] == "denied"
    with pytest.raises(AccessDeniedException):
        kms.as_caller(BOB).encrypt(key, b"x")
    kms.put_principal_policy(BOB, "enc", doc({"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}))
    assert kms.simulate_policy(BOB, "kms:Encrypt", key_id=key)["Decision"] == "allowed"
    kms.as_caller(BOB).encrypt(key, b"x")
    ops = [r.operation for r in kms.store.records()]
    assert ops.count("SimulatePrincipalPolicy") == 2


def test_simulate_needs_permission(world) -> None:
    kms, key, _ = world
    with pytest.raises(AccessDeniedException):
        kms.as_caller(EVE).simulate_policy(BOB, "kms:Encrypt", key_id=key)


def test_who_can_lists_principals_by_policy_and_grant(world) -> None:
    kms, key, _ = world
    kms.put_principal_policy(BOB, "dec", doc({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}))
    kms.create_grant(key, APP, ["Decrypt"])
    with kms.store.snapshot() as snap:
        out = forensics.who_can(snap, key, "kms:Decrypt", account=kms.account, region=kms.region)
    allowed = {a["principal"] for a in out["allowed"]}
    assert allowed == {BOB, APP, f"arn:aws:iam::{ACCOUNT}:root"}
    assert {d["principal"] for d in out["denied"]} == {EVE}
    assert out["anyone"] is False


def test_who_can_at_a_past_moment_replays_to_it(world) -> None:
    kms, key, clock = world
    clock.now += timedelta(days=1)
    grant = kms.create_grant(key, APP, ["Decrypt"])
    between = to_us(clock.now + timedelta(hours=1))
    clock.now += timedelta(days=1)
    kms.revoke_grant(key, grant.grant_id)
    before = to_us(datetime(2026, 1, 1, 12, tzinfo=timezone.utc))
    with kms.store.snapshot() as snap:
        at = {t: {a["principal"] for a in forensics.who_can(snap, key, "kms:Decrypt", account=kms.account,
                                                            region=kms.region, until_time=t)["allowed"]}
              for t in (before, between)}
        now = {a["principal"] for a in forensics.who_can(snap, key, "kms:Decrypt", account=kms.account,
                                                          region=kms.region)["allowed"]}
    assert APP not in at[before]
    assert APP in at[between]
    assert APP not in now


def test_who_can_reports_a_key_policy_open_to_anyone(world) -> None:
    kms, key, _ = world
    kms.put_key_policy(key, doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}))
    with kms.store.snapshot() as snap:
        out = forensics.who_can(snap, key, "kms:Decrypt", account=kms.account, region=kms.region)
    assert out["anyone"] is True
    assert EVE in {a["principal"] for a in out["allowed"]}
