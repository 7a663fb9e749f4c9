"""Grants to AWS service principals and SourceArn grant constraints (AWS's
GranteeServicePrincipal, RetiringServicePrincipal and Constraints.SourceArn),
on a real LMDB ledger.

AWS's rules, as its API reference states them: a grant names a grantee
principal or a grantee service principal, not both; at most one retiring
party; a grant to a service principal needs a SourceArn constraint and a
retiring party. A SourceArn constraint is the aws:SourceArn condition in the
grant, for every operation but RetireGrant. No keyledger caller acts on
behalf of an AWS resource, so such grants are kept, listed, retired and
revoked, and allow nobody anything; tests below show both halves.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

import keyledger
from keyledger import events as ev
from keyledger.errors import AccessDeniedException, ValidationException
from keyledger.projections import digest, replay
from keyledger.projections.state import GrantState
from keyledger.responses import to_aws

ACCOUNT = keyledger.DEFAULT_ACCOUNT
SOURCE = f"arn:aws:rds:us-east-1:{ACCOUNT}:db:orders"
RDS = "rds.amazonaws.com"


@pytest.fixture
def kms(tmp_path):
    with keyledger.open(tmp_path / "ledger", create=True, durability="relaxed") as service:
        yield service


def _allow(*actions: str, condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": list(actions), "Resource": "*"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_a_service_principal_grant_is_kept_listed_retired_and_revoked(kms) -> None:
    key = kms.create_key().key_metadata.key_id
    alice = kms.create_user("alice").arn
    made = kms.create_grant(key, grantee_service_principal=RDS, operations=["Decrypt", "GenerateDataKey"],
                            constraints={"SourceArn": SOURCE}, retiring_principal=alice, name="orders-db")
    listed = to_aws(kms.list_grants(key))["Grants"]
    assert len(listed) == 1
    entry = listed[0]
    assert entry["GranteeServicePrincipal"] == RDS and "GranteePrincipal" not in entry
    assert entry["RetiringPrincipal"] == alice and "RetiringServicePrincipal" not in entry
    assert entry["Constraints"] == {"SourceArn": SOURCE}
    assert entry["GrantId"] == made.grant_id and entry["Name"] == "orders-db"
    # the same named grant again is the same grant (AWS's idempotent CreateGrant), another SourceArn is not
    again = kms.create_grant(key, grantee_service_principal=RDS, operations=["GenerateDataKey", "Decrypt"],
                             constraints={"SourceArn": SOURCE}, retiring_principal=alice, name="orders-db")
    assert again.grant_id == made.grant_id
    other = kms.create_grant(key, grantee_service_principal=RDS, operations=["Decrypt", "GenerateDataKey"],
                             constraints={"SourceArn": SOURCE + "-2"}, retiring_principal=alice, name="orders-db")
    assert other.grant_id != made.grant_id
    # the filters
    assert [g.grant_id for g in kms.list_grants(key, grantee_service_principal=RDS).grants] == \
        sorted([made.grant_id, other.grant_id])
    assert kms.list_grants(key, grantee_service_principal="s3.amazonaws.com").grants == []
    assert kms.list_grants(key, grantee_principal=alice).grants == []
    assert {g.grant_id for g in kms.list_retirable_grants(alice).grants} == {made.grant_id, other.grant_id}
    # its retiring principal retires it; the key's administrator revokes the other
    kms.as_caller(alice).retire_grant(key_id=key, grant_id=made.grant_id)
    kms.revoke_grant(key, other.grant_id)
    assert kms.list_grants(key).grants == []
    with kms.store.snapshot() as snap:
        assert replay.check(snap).ok
    created = [r.event for r in kms.store.records() if isinstance(r.event, ev.GrantCreated)]
    assert [(e.grantee_principal, e.grantee_service_principal, e.source_arn) for e in created] == [
        (None, RDS, SOURCE), (None, RDS, SOURCE + "-2")]


def test_a_retiring_service_principal_is_listed_by_it(kms) -> None:
    key = kms.create_key().key_metadata.key_id
    made = kms.create_grant(key, grantee_service_principal=RDS, operations=["Decrypt"],
                            constraints={"SourceArn": SOURCE}, retiring_service_principal=RDS)
    entry = to_aws(kms.list_grants(key))["Grants"][0]
    assert entry["RetiringServicePrincipal"] == RDS and "RetiringPrincipal" not in entry
    assert [g.grant_id for g in kms.list_retirable_grants(retiring_service_principal=RDS).grants] == \
        [made.grant_id]
    assert kms.list_retirable_grants(retiring_service_principal="s3.amazonaws.com").grants == []
    # nobody here is the service: only the account (root) retires it, or a revoke
    alice = kms.create_user("alice").arn
    kms.put_principal_policy(alice, "all", _allow("kms:*"))
    with pytest.raises(AccessDeniedException):
        kms.as_caller(alice).retire_grant(key_id=key, grant_id=made.grant_id)
    kms.retire_grant(key_id=key, grant_id=made.grant_id)
    assert kms.list_grants(key).grants == []


def test_a_source_arn_constraint_allows_nothing_but_retiring(kms) -> None:
    """A grant to a principal with a SourceArn constraint: the principal never
    calls on behalf of that resource here, so the grant does not let it
    decrypt; RetireGrant, which the constraint does not apply to, works."""
    key = kms.create_key().key_metadata.key_id
    bob = kms.create_user("bob").arn
    blob = kms.encrypt(key, b"secret").ciphertext_blob
    constrained = kms.create_grant(key, bob, ["Decrypt", "RetireGrant"], constraints={"SourceArn": SOURCE})
    with pytest.raises(AccessDeniedException):
        kms.as_caller(bob).decrypt(blob)
    kms.as_caller(bob).retire_grant(key_id=key, grant_id=constrained.grant_id)
    kms.create_grant(key, bob, ["Decrypt"])  # the same grant without the constraint allows it
    assert kms.as_caller(bob).decrypt(blob).plaintext == b"secret"
    # with an encryption-context constraint too: both kinds are kept
    both = kms.create_grant(key, bob, ["Encrypt"], constraints={"SourceArn": SOURCE,
                                                                "EncryptionContextSubset": {"app": "x"}})
    entry = [g for g in to_aws(kms.list_grants(key))["Grants"] if g["GrantId"] == both.grant_id][0]
    assert entry["Constraints"] == {"SourceArn": SOURCE, "EncryptionContextSubset": {"app": "x"}}
    with pytest.raises(AccessDeniedException):
        kms.as_caller(bob).encrypt(key, b"x", encryption_context={"app": "x"})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"grantee_principal": f"arn:aws:iam::{ACCOUNT}:user/a", "grantee_service_principal": RDS},
     "You must specify either GranteePrincipal or GranteeServicePrincipal, but not both."),
    ({}, "You must specify either GranteePrincipal or GranteeServicePrincipal, but not both."),
    ({"grantee_service_principal": RDS, "retiring_service_principal": RDS},
     "A grant for a GranteeServicePrincipal must have a SourceArn grant constraint."),
    ({"grantee_service_principal": RDS, "constraints": {"SourceArn": SOURCE}},
     "A grant for a GranteeServicePrincipal must name a RetiringPrincipal or a RetiringServicePrincipal."),
    ({"grantee_service_principal": RDS, "constraints": {"SourceArn": SOURCE},
      "retiring_principal": f"arn:aws:iam::{ACCOUNT}:user/a", "retiring_service_principal": RDS},
     "You can specify either RetiringPrincipal or RetiringServicePrincipal, but not both."),
    ({"grantee_service_principal": "rds", "constraints": {"SourceArn": SOURCE}, "retiring_service_principal": RDS},
     "1 validation error detected: Value 'rds' at 'granteeServicePrincipal' failed to satisfy constraint: "
     "Member must satisfy regular expression pattern: ^([A-Za-z0-9\\-]+)\\.([A-Za-z0-9\\-]+)(\\.[A-Za-z0-9\\-]+)+$"),
    ({"grantee_principal": f"arn:aws:iam::{ACCOUNT}:user/a", "constraints": {"SourceArn": "arn:aws:rds:x"}},
     "2 validation errors detected: Value 'arn:aws:rds:x' at 'constraints.sourceArn' failed to satisfy "
     "constraint: Member must have length greater than or equal to 20; Value 'arn:aws:rds:x' at "
     "'constraints.sourceArn' failed to satisfy constraint: Member must satisfy regular expression pattern: "
     "^arn:aws[a-z0-9-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{12}:.+$"),
    ({"grantee_principal": f"arn:aws:iam::{ACCOUNT}:user/a", "constraints": {}},
     "Specify at least one of EncryptionContextEquals, EncryptionContextSubset and SourceArn"),
])
def test_the_parties_rules_are_refused_on_record(kms, kwargs: dict[str, Any], message: str) -> None:
    key = kms.create_key().key_metadata.key_id
    with pytest.raises(ValidationException) as info:
        kms.create_grant(key, operations=["Decrypt"], **kwargs)
    assert info.value.message == message
    last = list(kms.store.records())[-1].event
    assert isinstance(last, ev.RequestDenied) and last.error_message == message
    assert kms.list_grants(key).grants == []


def test_list_retirable_grants_needs_one_retiring_party(kms) -> None:
    for kwargs in ({}, {"retiring_principal": f"arn:aws:iam::{ACCOUNT}:user/a", "retiring_service_principal": RDS}):
        with pytest.raises(ValidationException, match="either RetiringPrincipal or RetiringServicePrincipal"):
            kms.list_retirable_grants(**kwargs)


def test_create_grant_condition_keys_for_service_grants(kms) -> None:
    """kms:GranteeServicePrincipal, kms:GrantConstraintType and
    kms:GrantConstraintSourceArn decide who may make which grant;
    kms:GrantIsForAWSResource is false for every keyledger caller."""
    key = kms.create_key().key_metadata.key_id
    carol = kms.create_user("carol").arn
    kms.put_principal_policy(carol, "grants", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"StringEquals": {"kms:GranteeServicePrincipal": RDS,
                                        "kms:GrantConstraintSourceArn": SOURCE},
                       "ForAllValues:StringEquals": {"kms:GrantConstraintType": ["SourceArn"]}}},
        {"Effect": "Deny", "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}]}))
    as_carol = kms.as_caller(carol)
    ok = dict(operations=["Decrypt"], retiring_principal=carol)
    as_carol.create_grant(key, grantee_service_principal=RDS, constraints={"SourceArn": SOURCE}, **ok)
    for grantee, constraints in (("s3.amazonaws.com", {"SourceArn": SOURCE}),
                                 (RDS, {"SourceArn": SOURCE + "-other"}),
                                 (RDS, {"SourceArn": SOURCE, "EncryptionContextSubset": {"a": "b"}})):
        with pytest.raises(AccessDeniedException):
            as_carol.create_grant(key, grantee_service_principal=grantee, constraints=constraints, **ok)
    assert len(kms.list_grants(key).grants) == 1


def test_old_grant_rows_keep_their_digest() -> None:
    """The three fields came with a default, so a grant row written before them
    has the same projection-state digest leaf as it had: old signed
    checkpoints keep verifying."""
    class OldGrantState(msgspec.Struct, frozen=True):  # the row as it was before this change
        key_id: str
        grant_id: str
        grantee_principal: str
        operations: tuple[str, ...]
        created: int
        issuing_principal: str
        retiring_principal: str | None = None
        name: str | None = None
        context_equals: dict[str, str] | None = None
        context_subset: dict[str, str] | None = None

    fields = ("k", "g", f"arn:aws:iam::{ACCOUNT}:user/a", ("Decrypt",), 7, f"arn:aws:iam::{ACCOUNT}:root")
    old, new = OldGrantState(*fields, name="n"), GrantState(*fields, name="n")
    assert digest.leaf("grants", b"row", new) == digest.leaf("grants", b"row", old)
    # and an old row decodes, with the new fields at their defaults
    old_bytes = msgspec.msgpack.encode(old)
    assert msgspec.msgpack.decode(old_bytes, type=GrantState) == new
