"""IAM tags on users and roles (TagUser, UntagUser, ListUserTags and the
role forms, or tags at creation): they are `aws:PrincipalTag/<key>` in
policy conditions, for a user, or for a role and every session of it, so
access can follow attributes (ABAC) as in AWS. A tag change takes effect on
the next request, and replay folds the same tags."""

from __future__ import annotations

import json
from typing import Any

import pytest

import keyledger
from keyledger import events as ev
from keyledger.errors import (
    AccessDeniedException,
    LimitExceededException,
    NotFoundException,
    ValidationException,
)
from keyledger.projections import replay
from keyledger.service import KeyLedger

ACCOUNT = keyledger.DEFAULT_ACCOUNT
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
APP = f"arn:aws:iam::{ACCOUNT}:role/app"


def abac_key(kms: KeyLedger) -> str:
    """A key whose policy lets anyone of the account tagged team=payments use it."""
    return kms.create_key(policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": "payments",
                                        "aws:PrincipalAccount": ACCOUNT}}}]})).key_metadata.key_id


def tags_of(kms: KeyLedger, arn: str) -> dict[str, str]:
    return {t.key: t.value for t in kms.list_principal_tags(arn).tags}


def test_tags_decide_access_for_users(kms: KeyLedger) -> None:
    kms.create_user("alice")
    key = abac_key(kms)
    alice = kms.as_caller(ALICE)
    with pytest.raises(AccessDeniedException):
        alice.encrypt(key, b"x")
    kms.tag_principal(ALICE, {"team": "payments", "Env": "prod"})
    assert tags_of(kms, ALICE) == {"team": "payments", "Env": "prod"}
    blob = alice.encrypt(key, b"x").ciphertext_blob
    kms.tag_principal(ALICE, [{"Key": "TEAM", "Value": "marketing"}])  # the same tag, whatever the case
    assert tags_of(kms, ALICE) == {"TEAM": "marketing", "Env": "prod"}
    with pytest.raises(AccessDeniedException):  # takes effect on the next request
        alice.decrypt(blob)
    kms.untag_principal(ALICE, ["team", "nothing-by-that-name"])
    assert tags_of(kms, ALICE) == {"Env": "prod"}
    made = kms.create_user("bob", tags={"team": "payments"})  # tags at creation
    assert [(t.key, t.value) for t in made.tags or []] == [("team", "payments")]
    assert [(t.key, t.value) for t in kms.get_user(ALICE).tags or []] == [("Env", "prod")]
    assert all(u.tags is None for u in kms.list_users().users)  # lists leave tags out, as IAM's do
    assert kms.as_caller(f"arn:aws:iam::{ACCOUNT}:user/bob").decrypt(blob).plaintext == b"x"
    with kms.store.snapshot() as snap:
        assert replay.check(snap).ok


def test_a_role_s_tags_are_its_sessions(kms: KeyLedger) -> None:
    kms.create_user("alice")
    kms.create_role("app", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:AssumeRole"}]}), tags={"team": "payments"})
    key = abac_key(kms)
    session = kms.as_caller(ALICE).assume_role(APP, "job").assumed_role_user.arn
    kms.as_caller(session).encrypt(key, b"x")
    kms.untag_principal(APP, ["team"])
    with pytest.raises(AccessDeniedException):
        kms.as_caller(session).encrypt(key, b"x")
    assert kms.simulate_policy(session, "kms:Encrypt", key_id=key)["Decision"] == "denied"
    kms.tag_principal(APP, {"team": "payments"})
    assert kms.simulate_policy(session, "kms:Encrypt", key_id=key)["Decision"] == "allowed"


def test_iam_s_limits_and_refusals(kms: KeyLedger) -> None:
    kms.create_user("alice")
    for bad, wording in (({"aws:team": "x"}, "reserved"), ({"a": "x", "A": "y"}, "case insensitive"),
                         ({"": "x"}, "tags.1.member.key"), ({"k": "v" * 257}, "tags.1.member.value"),
                         ({"k!": "v"}, "regular expression")):
        with pytest.raises(ValidationException, match=wording):
            kms.tag_principal(ALICE, bad)
    kms.tag_principal(ALICE, {f"k{i}": "v" for i in range(50)})
    with pytest.raises(LimitExceededException, match="TagsPerUser: 50"):
        kms.tag_principal(ALICE, {"one-more": "v"})
    kms.tag_principal(ALICE, {"K0": "replaced"})  # replacing one is not one more
    with pytest.raises(LimitExceededException):
        kms.create_user("carol", tags={f"k{i}": "v" for i in range(51)})
    for call in (lambda: kms.tag_principal(APP, {"a": "b"}), lambda: kms.list_principal_tags(APP),
                 lambda: kms.untag_principal(APP, ["a"])):
        with pytest.raises(NotFoundException):
            call()


def test_tagging_is_authorized_and_on_record(kms: KeyLedger) -> None:
    kms.create_user("alice")
    kms.create_user("bob")
    bob = f"arn:aws:iam::{ACCOUNT}:user/bob"
    kms.put_principal_policy(ALICE, "create-only", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:CreateUser", "iam:ListUserTags"], "Resource": "*"}]}))
    alice = kms.as_caller(ALICE)
    with pytest.raises(AccessDeniedException, match="iam:TagUser"):  # tags at creation need iam:TagUser too
        alice.create_user("carol", tags={"team": "x"})
    alice.create_user("carol")
    with pytest.raises(AccessDeniedException, match="iam:TagUser"):
        alice.tag_principal(bob, {"team": "payments"})  # nobody tags themselves into a team
    assert alice.list_principal_tags(bob).tags == []
    kms.tag_principal(bob, {"team": "payments"})
    record = list(kms.store.records())[-1]
    assert (record.operation, record.event) == ("TagUser", ev.PrincipalTagged(bob, {"team": "payments"}))
    kms.untag_principal(APP.replace(":role/app", ":user/bob"), ["team"])
    assert list(kms.store.records())[-1].operation == "UntagUser"


def test_who_can_sees_tags(kms: KeyLedger) -> None:
    from keyledger import forensics
    kms.create_user("alice", tags={"team": "payments"})
    kms.create_user("bob")
    key = abac_key(kms)
    with kms.store.snapshot() as snap:
        who: Any = forensics.who_can(snap, key, "kms:Encrypt", account=ACCOUNT, region="us-east-1")
    allowed = {a["principal"] for a in who["allowed"]}
    assert ALICE in allowed and f"arn:aws:iam::{ACCOUNT}:user/bob" not in allowed
