"""IAM's unique ids (AIDA... for users, AROA... for roles) belong to one
incarnation of a user or role: drawn at random when it is made and kept in
its `PrincipalCreated` record. A user deleted and made again under the same
name is another principal to every place that names the id: `aws:userid`
in a policy, GetCallerIdentity, GetUser and GetRole, the CloudTrail
rendering. Users and roles made before ids were drawn keep the id derived
from their ARN, so a policy written against it keeps working."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from clockkit import Clock

import keyledger
from keyledger import events as ev
from keyledger import policy as authz
from keyledger import projections
from keyledger.errors import AccessDeniedException
from keyledger.projections import cloudtrail, principal_row, replay
from keyledger.service import KeyLedger

ACCOUNT = keyledger.DEFAULT_ACCOUNT
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
APP = f"arn:aws:iam::{ACCOUNT}:role/app"
IAM_ID = re.compile(r"(AIDA|AROA)[A-Z2-7]{17}")


def trust(principal: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}]})


def pinned_key(kms: KeyLedger, user_id: str) -> str:
    """A key that anyone of the account may use, but only as the caller whose aws:userid is `user_id`
    (AWS's way to name one incarnation of a user, or a role's sessions by `AROA...:*`)."""
    return kms.create_key(policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
         "Condition": {"StringLike": {"aws:userid": user_id}}}]})).key_metadata.key_id


def test_ids_look_like_iam_and_differ_between_principals(kms: KeyLedger) -> None:
    made = [kms.create_user(f"user{i}").user_id for i in range(20)] + \
        [kms.create_role(f"role{i}").user_id for i in range(20)]
    assert all(IAM_ID.fullmatch(i) for i in made)
    assert [i[:4] for i in made] == ["AIDA"] * 20 + ["AROA"] * 20
    assert len(set(made)) == 40
    # every answer that shows a principal shows the same id
    assert kms.get_user(f"arn:aws:iam::{ACCOUNT}:user/user3").user_id == made[3]
    assert kms.get_role("role3").user_id == made[23]
    assert {u.user_name: u.user_id for u in kms.list_users().users}["user3"] == made[3]
    assert {r.user_name: r.user_id for r in kms.list_roles().roles}["role3"] == made[23]
    assert kms.as_caller(f"arn:aws:iam::{ACCOUNT}:user/user3").get_caller_identity().user_id == made[3]


def test_a_user_made_again_is_another_principal_to_aws_userid(kms: KeyLedger) -> None:
    first = kms.create_user("alice").user_id
    key = pinned_key(kms, first)
    blob = kms.as_caller(ALICE).encrypt(key, b"x").ciphertext_blob
    kms.delete_user("alice")
    second = kms.create_user("alice").user_id
    assert second != first and IAM_ID.fullmatch(second)
    assert kms.as_caller(ALICE).get_caller_identity().user_id == second
    for call in (lambda c: c.encrypt(key, b"x"), lambda c: c.decrypt(blob)):
        with pytest.raises(AccessDeniedException):  # the id the policy names was the first alice's
            call(kms.as_caller(ALICE))
    # pinned to the new id, the new alice is let in: the condition reads the row, not the name
    kms.as_caller(ALICE).encrypt(pinned_key(kms, second), b"y")


def test_a_role_made_again_gives_its_sessions_another_id(kms: KeyLedger) -> None:
    kms.create_user("alice")
    first = kms.create_role("app", trust(ALICE)).user_id
    key = pinned_key(kms, f"{first}:*")  # every session of this role, and no other
    made = kms.as_caller(ALICE).assume_role(APP, "job")
    assert made.assumed_role_user.assumed_role_id == f"{first}:job"
    session = kms.as_session(made.credentials.access_key_id, made.credentials.session_token.reveal().decode())
    assert session.get_caller_identity().user_id == f"{first}:job"
    session.encrypt(key, b"x")
    kms.delete_role("app")
    second = kms.create_role("app", trust(ALICE)).user_id
    assert second != first
    again = kms.as_caller(ALICE).assume_role(APP, "job")
    assert again.assumed_role_user.assumed_role_id == f"{second}:job"
    later = kms.as_session(again.credentials.access_key_id, again.credentials.session_token.reveal().decode())
    with pytest.raises(AccessDeniedException):
        later.encrypt(key, b"x")


def legacy_user(kms: KeyLedger, clock: Clock, arn: str) -> None:
    """A CreateUser record as the ledger wrote it before ids were drawn: no unique_id."""
    def work(view: Any) -> None:
        view.append([ev.PrincipalCreated(arn, "user")], operation="CreateUser", principal=ROOT,
                    request_id=str(uuid.uuid4()), time=clock.us)
    kms.store.submit(work)


def test_a_user_made_before_ids_were_drawn_keeps_the_id_of_its_arn(kms: KeyLedger, clock: Clock) -> None:
    legacy_user(kms, clock, ALICE)
    assert list(kms.store.records())[-1].event.unique_id is None
    derived = authz.unique_id(ALICE)
    assert kms.get_user(ALICE).user_id == derived
    assert kms.as_caller(ALICE).get_caller_identity().user_id == derived
    key = pinned_key(kms, derived)  # a policy written against the old id keeps letting it in
    kms.as_caller(ALICE).encrypt(key, b"x")
    kms.delete_user("alice")
    again = kms.create_user("alice").user_id
    assert again != derived  # and its successor is not it
    with pytest.raises(AccessDeniedException):
        kms.as_caller(ALICE).encrypt(key, b"x")


def test_replay_folds_the_same_ids(kms: KeyLedger) -> None:
    kms.create_user("alice")
    kms.create_role("app")
    kms.delete_user("alice")
    kms.create_user("alice")
    with kms.store.snapshot() as snap:
        live = snap.get("principals", principal_row(ALICE))
        assert projections.fold(snap.records()).rows == snap.tables()
        assert replay.check(snap).ok
    assert live.unique_id == kms.get_user(ALICE).user_id


def test_cloudtrail_shows_each_request_under_the_id_of_its_time(kms: KeyLedger) -> None:
    kms.create_user("alice")
    first = kms.get_user(ALICE).user_id
    kms.create_role("app", trust(ALICE))
    role_first = kms.get_role("app").user_id
    key = kms.create_key().key_metadata.key_id
    kms.put_principal_policy(ALICE, "use", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kms:Encrypt", "sts:AssumeRole"], "Resource": "*"}]}))
    kms.as_caller(ALICE).encrypt(key, b"x")
    made = kms.as_caller(ALICE).assume_role(APP, "job")
    session = kms.as_session(made.credentials.access_key_id, made.credentials.session_token.reveal().decode())
    session.get_caller_identity()
    kms.delete_principal_policy(ALICE, "use")
    kms.delete_user("alice")
    kms.create_user("alice")
    second = kms.get_user(ALICE).user_id
    kms.as_caller(ALICE).get_caller_identity()
    records = list(kms.store.records())
    made_by_index = [r for r in records if r.operation in ("CreateUser", "CreateRole")]
    incarnations = cloudtrail.Incarnations(made_by_index)

    def shown(record: ev.Record) -> dict[str, Any]:
        return cloudtrail.render(record, region=kms.region, account=ACCOUNT,
                                 incarnations=incarnations)["userIdentity"]
    by_alice = [r for r in records if r.principal == ALICE]
    assert {shown(r)["principalId"] for r in by_alice if r.seq < made_by_index[-1].seq} == {first}
    assert shown(by_alice[-1])["principalId"] == second
    by_session = [shown(r) for r in records if r.principal.endswith(":assumed-role/app/job")]
    assert by_session and all(s["principalId"] == f"{role_first}:job" and
                              s["sessionContext"]["sessionIssuer"]["principalId"] == role_first
                              for s in by_session)
    # CreateUser's and CreateRole's records show the new principal's id where CloudTrail does
    created = [cloudtrail.render(r, region=kms.region, account=ACCOUNT) for r in made_by_index
               if isinstance(r.event, ev.PrincipalCreated)]
    assert [c["responseElements"].get("user", c["responseElements"].get("role"))["userId" if "user" in
            c["responseElements"] else "roleId"] for c in created] == [first, role_first, second]
    assert all("uniqueId" not in (c["requestParameters"] or {}) for c in created)
