"""A role's description (CreateRole's Description) and IAM's UpdateRole and
UpdateRoleDescription: kept in the log like every change to a role, shown
by GetRole, and folded the same on replay."""

from __future__ import annotations

import json

import pytest

import keyledger
from keyledger import events as ev
from keyledger.errors import NotFoundException, ValidationException
from keyledger.projections import replay
from keyledger.service import KeyLedger

ACCOUNT = keyledger.DEFAULT_ACCOUNT
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
APP = f"arn:aws:iam::{ACCOUNT}:role/app"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def kms(kms: KeyLedger) -> KeyLedger:
    kms.create_user("alice")  # whom the roles' trust policy names
    return kms


def test_a_role_keeps_its_description(kms: KeyLedger) -> None:
    made = kms.create_role("app", TRUST, description="Runs the nightly job.\tOwner: ops")
    assert made.description == "Runs the nightly job.\tOwner: ops"
    assert kms.get_role("app").description == made.description
    assert [r.description for r in kms.list_roles().roles] == [made.description]
    assert kms.create_role("plain").description is None
    assert list(kms.store.records())[-1].event == ev.PrincipalCreated(
        f"arn:aws:iam::{ACCOUNT}:role/plain", "role", unique_id=kms.get_role("plain").user_id)


@pytest.mark.parametrize("description, why", [
    ("x" * 1001, "Member must have length less than or equal to 1000"),
    ("caf\u00e9 \u2615", "Member must satisfy regular expression pattern"),  # U+2615 is outside IAM's set
    ("bell\x07", "Member must satisfy regular expression pattern"),
])
def test_descriptions_iam_refuses(kms: KeyLedger, description: str, why: str) -> None:
    with pytest.raises(ValidationException, match=why):
        kms.create_role("app", TRUST, description=description)
    kms.create_role("app", TRUST)
    for update in (lambda: kms.update_role_description("app", description),
                   lambda: kms.update_role("app", description=description)):
        with pytest.raises(ValidationException, match=why):
            update()
    assert kms.get_role("app").description is None
    assert kms.create_role("edge", description="x" * 1000 + "").description == "x" * 1000
    assert kms.create_role("latin", description="caf\u00e9").description == "caf\u00e9"  # Latin-1 is allowed


def test_update_role_description_answers_the_role_as_it_is_now(kms: KeyLedger) -> None:
    kms.create_role("app", TRUST, max_session_duration=7200, description="old")
    shown = kms.update_role_description("app", "new")
    assert (shown.description, shown.max_session_duration) == ("new", 7200)  # the duration is untouched
    assert kms.get_role("app").description == "new"
    assert kms.update_role_description("app", "").description is None  # "" clears it
    assert kms.get_role("app").description is None
    with pytest.raises(NotFoundException, match="The role with name nobody cannot be found."):
        kms.update_role_description("nobody", "x")


def test_update_role_sets_the_longest_session(kms: KeyLedger) -> None:
    kms.put_principal_policy(ALICE, "assume", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": APP}]}))
    kms.create_role("app", TRUST, description="kept")
    with pytest.raises(ValidationException, match="exceeds the MaxSessionDuration"):
        kms.as_caller(ALICE).assume_role(APP, "long", duration_seconds=7200)
    kms.update_role("app", max_session_duration=7200)
    role = kms.get_role("app")
    assert (role.max_session_duration, role.description) == (7200, "kept")  # no description given: kept
    kms.as_caller(ALICE).assume_role(APP, "long", duration_seconds=7200)
    # IAM documents that a MaxSessionDuration not given is its default of one hour
    kms.update_role("app", description="shorter")
    role = kms.get_role("app")
    assert (role.max_session_duration, role.description) == (3600, "shorter")
    with pytest.raises(ValidationException, match="exceeds the MaxSessionDuration"):
        kms.as_caller(ALICE).assume_role(APP, "long", duration_seconds=7200)
    for wrong in (3599, 43201):
        with pytest.raises(ValidationException, match="maxSessionDuration"):
            kms.update_role("app", max_session_duration=wrong)
    assert kms.get_role("app").max_session_duration == 3600  # refusals changed nothing
    with pytest.raises(NotFoundException):
        kms.update_role("alice", description="a user is no role")


def test_updates_are_records_and_replay_folds_them(kms: KeyLedger) -> None:
    kms.create_role("app", TRUST, description="one")
    kms.update_role("app", description="two", max_session_duration=10800)
    kms.update_role_description("app", "three")
    events = [r.event for r in kms.store.records() if isinstance(r.event, ev.RoleUpdated)]
    assert events == [ev.RoleUpdated(APP, "two", 10800), ev.RoleUpdated(APP, "three")]
    assert [r.operation for r in kms.store.records()][-2:] == ["UpdateRole", "UpdateRoleDescription"]
    with kms.store.snapshot() as snap:
        assert replay.check(snap).ok
    role = kms.get_role("app")
    assert (role.description, role.max_session_duration) == ("three", 10800)
