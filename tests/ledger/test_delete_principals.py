"""DeleteUser and DeleteRole (IAM): a principal goes only once its access
keys and identity policies are gone, and the key policies and grants that
named it name its unique id afterwards, as AWS shows them. A principal made
later with the same name inherits none of the deleted one's rights, and a
policy that still names the unique id cannot be put again."""

from __future__ import annotations

import json
from typing import Any

import pytest

import keyledger
from keyledger import events as ev
from keyledger import policy as authz
from keyledger import projections
from keyledger.errors import (
    AccessDeniedException,
    AlreadyExistsException,
    DeleteConflictException,
    MalformedPolicyDocumentException,
    NotFoundException,
)
from keyledger.projections import principal_row
from keyledger.service import KeyLedger

ACCOUNT = keyledger.DEFAULT_ACCOUNT
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"


def key_policy(*users: Any, not_principal: str | None = None) -> str:
    statements: list[dict[str, Any]] = [
        {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "use", "Effect": "Allow", "Principal": {"AWS": users[0] if len(users) == 1 else list(users)},
         "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}]
    if not_principal is not None:
        statements.append({"Sid": "only", "Effect": "Deny", "NotPrincipal": {"AWS": [ROOT, not_principal]},
                           "Action": "kms:Decrypt", "Resource": "*"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def last_request(kms: KeyLedger) -> list[ev.Record]:
    records = list(kms.store.records())
    return [r for r in records if r.request_id == records[-1].request_id]


def test_a_user_goes_only_without_access_keys_and_policies(kms: KeyLedger) -> None:
    made = kms.create_user("alice")
    alice = made.arn
    key_id = kms.create_access_key(alice).access_key_id
    kms.put_principal_policy(alice, "p", json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}))
    with pytest.raises(DeleteConflictException) as refused:
        kms.delete_user("alice")
    assert refused.value.message == "Cannot delete entity, must delete access keys first."
    assert refused.value.http_status == 409
    assert last_request(kms)[0].event == ev.RequestDenied(  # the refusal is on record
        "DeleteUser", "DeleteConflictException", "Cannot delete entity, must delete access keys first.")
    kms.delete_access_key(alice, key_id)
    with pytest.raises(DeleteConflictException, match="must delete policies first"):
        kms.delete_user("alice")
    assert kms.get_user(alice).arn == alice  # refusals changed nothing
    kms.delete_principal_policy(alice, "p")
    kms.delete_user("alice")
    assert last_request(kms)[0].event == ev.PrincipalDeleted(alice, "user", made.user_id)
    assert kms.list_users().users == []
    with pytest.raises(NotFoundException, match="The user with name alice cannot be found."):
        kms.get_user(alice)
    with pytest.raises(NotFoundException, match="The user with name alice cannot be found."):
        kms.delete_user("alice")
    with pytest.raises(NotFoundException):  # nor can it be given anything
        kms.create_access_key(alice)
    # the name is free again: a new user, with nothing of the old one's, not even its id
    again = kms.create_user("alice")
    assert again.arn == alice and again.user_id != made.user_id and again.user_id.startswith("AIDA")
    assert kms.list_principal_policies(alice).policy_names == []
    assert kms.list_access_keys(alice).access_key_metadata == []


def test_roles_and_users_are_deleted_by_their_own_operation(kms: KeyLedger) -> None:
    made = kms.create_role("app")
    role = made.arn
    kms.put_principal_policy(role, "p", json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}))
    with pytest.raises(NotFoundException, match="The user with name app cannot be found."):
        kms.delete_user("app")
    with pytest.raises(DeleteConflictException, match="must delete policies first"):
        kms.delete_role("app")
    kms.delete_principal_policy(role, "p")
    kms.delete_role("app")
    assert last_request(kms)[0].event == ev.PrincipalDeleted(role, "role", made.user_id)
    with kms.store.snapshot() as snap:
        assert snap.get("principals", principal_row(role)) is None
    with pytest.raises(NotFoundException, match="The role with name app cannot be found."):
        kms.delete_role("app")


def test_a_recreated_user_inherits_nothing_from_key_policies(kms: KeyLedger) -> None:
    made = kms.create_user("alice")
    alice, alice_id = made.arn, made.user_id
    bob = kms.create_user("bob").arn
    key = kms.create_key(policy=key_policy(alice, bob, not_principal=alice)).key_metadata.key_id
    untouched = kms.create_key(policy=key_policy(bob)).key_metadata.key_id
    before = kms.get_key_policy(untouched).policy
    blob = kms.as_caller(alice).encrypt(key, b"x").ciphertext_blob
    assert kms.as_caller(alice).decrypt(blob).plaintext == b"x"

    kms.delete_user("alice")
    batch = last_request(kms)
    shown = json.loads(kms.get_key_policy(key).policy)
    gone = alice_id
    assert shown["Statement"][1]["Principal"]["AWS"] == [gone, bob]
    assert shown["Statement"][2]["NotPrincipal"]["AWS"] == [ROOT, gone]
    assert kms.get_key_policy(untouched).policy == before  # a policy that never named alice is as it was
    assert [type(r.event) for r in batch] == [ev.PrincipalDeleted, ev.KeyPolicyPrincipalDeleted]
    assert batch[1].event.key_id == key and batch[1].operation == "DeleteUser"

    kms.create_user("alice")
    with pytest.raises(AccessDeniedException):
        kms.as_caller(alice).encrypt(key, b"x")
    with pytest.raises(AccessDeniedException):  # the Deny's NotPrincipal no longer exempts anyone named alice
        kms.as_caller(alice).decrypt(blob)
    assert kms.as_caller(bob).encrypt(key, b"y").key_id.endswith(key)
    # AWS refuses a policy that still names a unique id (a round trip of GetKeyPolicy)
    with pytest.raises(MalformedPolicyDocumentException,
                       match="Policy contains a statement with one or more invalid principals."):
        kms.put_key_policy(key, kms.get_key_policy(key).policy)
    with pytest.raises(MalformedPolicyDocumentException, match="invalid principals"):
        kms.create_key(policy=key_policy(gone))
    # naming the new alice by her ARN, in a policy put after she exists, gives her access again
    kms.put_key_policy(key, key_policy(alice, bob))
    kms.as_caller(alice).encrypt(key, b"x")


def test_a_policy_spelling_the_arn_with_json_escapes_is_rewritten_too(kms: KeyLedger) -> None:
    made = kms.create_user("alice")
    alice, alice_id = made.arn, made.user_id
    escaped = key_policy(alice).replace('"arn:aws:iam::' + ACCOUNT + ":user/alice", '"\\u0061rn:aws:iam::'
                                        + ACCOUNT + ":user/\\u0061lice")
    assert alice not in escaped and authz.parse(escaped).statements[1].principals == (alice,)
    key = kms.create_key(policy=escaped).key_metadata.key_id
    kms.delete_user("alice")
    assert json.loads(kms.get_key_policy(key).policy)["Statement"][1]["Principal"]["AWS"] == alice_id
    kms.create_user("alice")
    with pytest.raises(AccessDeniedException):
        kms.as_caller(alice).encrypt(key, b"x")


def test_grants_to_a_deleted_user_apply_to_no_one(kms: KeyLedger) -> None:
    made = kms.create_user("alice")
    alice, alice_id = made.arn, made.user_id
    bob = kms.create_user("bob").arn
    key = kms.create_key().key_metadata.key_id
    to_alice = kms.create_grant(key, alice, ["Encrypt", "RetireGrant"]).grant_id
    retired_by_alice = kms.create_grant(key, bob, ["Encrypt"], retiring_principal=alice).grant_id
    kms.as_caller(alice).encrypt(key, b"x")
    kms.delete_user("alice")
    batch = last_request(kms)
    gone = alice_id
    grants = {g.grant_id: g for g in kms.list_grants(key).grants}
    assert grants[to_alice].grantee_principal == gone
    assert (grants[retired_by_alice].grantee_principal, grants[retired_by_alice].retiring_principal) == (bob, gone)
    assert [type(r.event) for r in batch] == [ev.PrincipalDeleted, ev.GrantPrincipalDeleted, ev.GrantPrincipalDeleted]
    kms.create_user("alice")
    with pytest.raises(AccessDeniedException):
        kms.as_caller(alice).encrypt(key, b"x")
    with pytest.raises(AccessDeniedException):
        kms.as_caller(alice).retire_grant(key_id=key, grant_id=retired_by_alice)
    kms.as_caller(bob).encrypt(key, b"y")  # bob's grant still works
    kms.revoke_grant(key, to_alice)  # and the key's administrators can still end the dead one


def test_policies_in_every_region_are_rewritten_in_their_region(kms: KeyLedger) -> None:
    made = kms.create_user("alice")
    alice, alice_id = made.arn, made.user_id
    here = kms.create_key(policy=key_policy(alice)).key_metadata.key_id
    europe = kms.in_region("eu-west-1")
    there = europe.create_key(policy=key_policy(alice)).key_metadata.key_id
    grant = europe.create_grant(there, alice, ["Encrypt"]).grant_id
    europe.delete_user("alice")  # IAM is global: asked in any region, it reaches keys in all of them
    batch = last_request(kms)
    gone = alice_id
    assert json.loads(kms.get_key_policy(here).policy)["Statement"][1]["Principal"]["AWS"] == gone
    assert json.loads(europe.get_key_policy(there).policy)["Statement"][1]["Principal"]["AWS"] == gone
    assert europe.list_grants(there).grants[0].grantee_principal == gone == \
        [g for g in europe.list_grants(there).grants if g.grant_id == grant][0].grantee_principal
    assert [(type(r.event).__name__, r.scope) for r in batch] == [
        ("PrincipalDeleted", "eu-west-1"), ("KeyPolicyPrincipalDeleted", ""),
        ("KeyPolicyPrincipalDeleted", "eu-west-1"), ("GrantPrincipalDeleted", "eu-west-1")]


def test_deleted_keys_are_left_alone_and_replay_equals_live(kms: KeyLedger, clock: Any) -> None:
    alice = kms.create_user("alice").arn
    doomed = kms.create_key(policy=key_policy(alice)).key_metadata.key_id
    kms.schedule_key_deletion(doomed, pending_window_in_days=7)
    clock.advance(days=8)
    kept = kms.create_key(policy=key_policy(alice)).key_metadata.key_id
    kms.create_grant(kept, alice, ["Decrypt"])
    kms.delete_user("alice")
    assert [r.event.key_id for r in last_request(kms) if isinstance(r.event, ev.KeyPolicyPrincipalDeleted)] == [kept]
    with kms.store.snapshot() as snap:
        live = snap.tables()
        assert projections.fold(snap.records()).rows == live
        report = projections.replay.check(snap)
        assert report.ok, report.differences


def test_without_principal_is_exact() -> None:
    alice, alicia = ALICE, f"arn:aws:iam::{ACCOUNT}:user/alicia"
    document = key_policy(alicia)
    assert authz.without_principal(document, alice, "AIDAXXXXXXXXXXXXXXXXX") is None  # a prefix is not a name
    assert authz.without_principal(key_policy(alice, alicia), alice, "AIDAXXXXXXXXXXXXXXXXX") is not None
    rewritten = json.loads(authz.without_principal(key_policy(alice, alicia), alice, "AIDAXXXXXXXXXXXXXXXXX") or "")
    assert rewritten["Statement"][1]["Principal"]["AWS"] == ["AIDAXXXXXXXXXXXXXXXXX", alicia]
    # a unique id parses (a stored policy keeps working) and matches no caller
    parsed = authz.parse(json.dumps(rewritten))
    assert parsed.statements[1].principals == ("AIDAXXXXXXXXXXXXXXXXX", alicia)
    with pytest.raises(MalformedPolicyDocumentException):
        authz.parse(key_policy("AIDA-not-an-id"))


def test_names_are_unique_whatever_their_case(kms: KeyLedger) -> None:
    """IAM tells user (and role) names apart case-insensitively: no "ALICE"
    beside "alice", until "alice" is deleted. A user and a role may share one."""
    kms.create_user("alice")
    kms.create_role("Alice")
    with pytest.raises(AlreadyExistsException, match="User with name ALICE already exists.$"):
        kms.create_user("ALICE")
    with pytest.raises(AlreadyExistsException, match="Role with name alice already exists.$"):
        kms.create_role("alice")
    kms.create_user("alicia")  # a longer name is another name
    kms.delete_user("alice")
    assert kms.create_user("ALICE").arn == f"arn:aws:iam::{ACCOUNT}:user/ALICE"
