"""A grant begets only what it holds (issue 8, item 1), through the real
service on a real LMDB ledger.

AWS lets a grantee whose grant includes CreateGrant create grants only with
a subset of that grant's operations and constraints at least as strict. The
probe found a [Decrypt, CreateGrant] grantee granting itself Encrypt,
GenerateDataKey, DescribeKey, ReEncryptFrom... and using them.

- the probe's escalation, step by step, refused with AWS's message and a
  RequestDenied record; what stays allowed (fewer operations, another
  grantee, the same operations again) works;
- a hypothesis property over random histories of grant-authorized
  CreateGrant calls (three users without any policy, the default key
  policy, the root issuing the first grants): every grant a user creates is
  covered by one grant that user held at that moment (operations and
  encryption contexts alike); the service refuses exactly the calls no held
  grant covers; and at the end every Encrypt / GenerateDataKey /
  DescribeKey a user can really make was given by a grant the root issued.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import keyledger
from keyledger import events as ev
from keyledger.errors import AccessDeniedException

ACCOUNT = keyledger.DEFAULT_ACCOUNT
REGION = keyledger.DEFAULT_REGION
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def arn(key_id: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"


def denied(call: Any) -> AccessDeniedException:
    with pytest.raises(AccessDeniedException) as info:
        call()
    return info.value


@pytest.fixture
def kms(tmp_path):
    with keyledger.open(tmp_path / "ledger", create=True, clock=lambda: T0, durability="relaxed") as service:
        yield service


def test_a_decrypt_grantee_cannot_grant_itself_more(kms) -> None:
    alice, bob = kms.create_user("alice").arn, kms.create_user("bob").arn
    key = kms.create_key().key_metadata.key_id
    blob = kms.encrypt(key, b"secret").ciphertext_blob
    kms.create_grant(key, alice, ["Decrypt", "CreateGrant"])
    as_alice, as_bob = kms.as_caller(alice), kms.as_caller(bob)
    for ops in (["Encrypt"], ["GenerateDataKey"], ["DescribeKey"], ["ReEncryptFrom"], ["Decrypt", "Encrypt"],
                ["RetireGrant"]):
        before = kms.store.head().seq
        error = denied(lambda: as_alice.create_grant(key, alice, ops))
        assert error.message == (f"User: {alice} is not authorized to perform: kms:CreateGrant on resource: "
                                 f"{arn(key)} because no identity-based policy allows the kms:CreateGrant action")
        (record,) = kms.store.records(before)
        assert record.principal == alice
        assert record.event == ev.RequestDenied("CreateGrant", "AccessDeniedException", error.message, key)
    denied(lambda: as_alice.encrypt(key, b"x"))
    denied(lambda: as_alice.describe_key(key))
    assert {tuple(g.operations) for g in kms.list_grants(key).grants} == {("Decrypt", "CreateGrant")}
    # within its operations it may grant, to itself or to another
    as_alice.create_grant(key, bob, ["Decrypt"])
    assert as_bob.decrypt(blob).plaintext == b"secret"
    as_alice.create_grant(key, bob, ["Decrypt", "CreateGrant"])
    denied(lambda: as_bob.create_grant(key, bob, ["Encrypt"]))  # and so on down the chain
    as_bob.create_grant(key, alice, ["Decrypt"])
    denied(lambda: as_bob.encrypt(key, b"x"))


def test_a_constrained_grant_checks_operations_too(kms) -> None:
    alice = kms.create_user("alice").arn
    key = kms.create_key().key_metadata.key_id
    kms.create_grant(key, alice, ["Decrypt", "CreateGrant"], constraints={"EncryptionContextSubset": {"app": "a"}})
    as_alice = kms.as_caller(alice)
    strict = {"EncryptionContextSubset": {"app": "a"}}
    denied(lambda: as_alice.create_grant(key, alice, ["Encrypt"], constraints=strict))
    denied(lambda: as_alice.create_grant(key, alice, ["Decrypt"]))  # looser constraints
    as_alice.create_grant(key, alice, ["Decrypt"], constraints={"EncryptionContextEquals": {"app": "a", "x": "1"}})


# -- the property -----------------------------------------------------------------------

OPS = ("Encrypt", "Decrypt", "GenerateDataKey", "DescribeKey", "ReEncryptFrom", "CreateGrant", "RetireGrant")
#: operations AWS does not apply a grant's encryption-context constraints to
UNCONSTRAINED = {"DescribeKey", "RetireGrant"}
CONSTRAINTS: list[dict[str, dict[str, str]] | None] = [
    None,
    {"EncryptionContextSubset": {"app": "a"}},
    {"EncryptionContextSubset": {"env": "p"}},
    {"EncryptionContextSubset": {"app": "b"}},
    {"EncryptionContextEquals": {"app": "a"}},
    {"EncryptionContextEquals": {"app": "a", "env": "p"}},
]
#: every context the constraints above can tell apart
CONTEXTS = [{}, {"app": "a"}, {"app": "b"}, {"env": "p"}, {"app": "a", "env": "p"}, {"app": "b", "env": "p"}]
USERS = ("alice", "bob", "carol")


def admits(constraint: dict[str, dict[str, str]] | None, context: dict[str, str]) -> bool:
    """Does a grant with this constraint admit a request with this context?
    (The semantics of AWS's GrantConstraints, written out independently.)"""
    if constraint is None:
        return True
    if "EncryptionContextEquals" in constraint:
        return context == constraint["EncryptionContextEquals"]
    return all(context.get(k) == v for k, v in constraint["EncryptionContextSubset"].items())


def contexts_of(constraint: dict[str, dict[str, str]] | None) -> set[int]:
    return {i for i, c in enumerate(CONTEXTS) if admits(constraint, c)}


@dataclass(frozen=True)
class ModelGrant:
    grantee: str
    ops: frozenset[str]
    constraint: int  # index into CONSTRAINTS
    by: str  # who created it

    def abilities(self) -> set[tuple[str, int]]:
        """What the grant lets its grantee do: (operation, context index)."""
        admitted = contexts_of(CONSTRAINTS[self.constraint])
        return {(op, c) for op in self.ops for c in range(len(CONTEXTS))
                if op in UNCONSTRAINED or c in admitted}

    def covers(self, ops: frozenset[str], constraint: int) -> bool:
        """May this grant's grantee create a grant of `ops` under `constraint`?"""
        return "CreateGrant" in self.ops and ops <= self.ops and \
            contexts_of(CONSTRAINTS[constraint]) <= contexts_of(CONSTRAINTS[self.constraint])


op_sets = st.frozensets(st.sampled_from(OPS), min_size=1, max_size=4)
constraint_indexes = st.integers(0, len(CONSTRAINTS) - 1)
root_grants = st.lists(st.tuples(st.sampled_from(USERS), op_sets, st.sampled_from([True, True, False]),
                                 constraint_indexes), min_size=1, max_size=3)


@st.composite
def attempt(draw: st.DrawFn, grants: list[ModelGrant]) -> tuple[str, str, frozenset[str], int]:
    """(creator, grantee, operations, constraint): half the time shaped on a
    grant the creator holds (a subset of its operations, perhaps one more),
    so creations that should succeed are tried as often as escalations."""
    creator, grantee = draw(st.sampled_from(USERS)), draw(st.sampled_from(USERS))
    held = [g for g in grants if g.grantee == creator]
    if held and draw(st.booleans()):
        parent = draw(st.sampled_from(held))
        ops = draw(st.frozensets(st.sampled_from(sorted(parent.ops)), min_size=1))
        if draw(st.booleans()):
            ops |= {draw(st.sampled_from(OPS))}
        constraint = draw(st.sampled_from([parent.constraint, draw(constraint_indexes)]))
        return creator, grantee, ops, constraint
    return creator, grantee, draw(op_sets), draw(constraint_indexes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(issued=root_grants, steps=st.integers(1, 10), data=st.data())
def test_no_sequence_of_grant_authorized_create_grants_escalates(issued, steps, data) -> None:
    with tempfile.TemporaryDirectory() as home, \
            keyledger.open(home, create=True, durability="relaxed", clock=lambda: T0) as root:
        users = {name: root.create_user(name).arn for name in USERS}
        key = root.create_key().key_metadata.key_id
        grants: list[ModelGrant] = []
        for user, ops, with_create, constraint in issued:
            ops = ops | {"CreateGrant"} if with_create else ops
            root.create_grant(key, users[user], sorted(ops), constraints=CONSTRAINTS[constraint])
            grants.append(ModelGrant(user, ops, constraint, "root"))
        given_by_root = set().union(*(g.abilities() for g in grants))

        for _ in range(steps):
            creator, grantee, ops, constraint = data.draw(attempt(grants))
            held = [g for g in grants if g.grantee == creator]
            try:
                root.as_caller(users[creator]).create_grant(key, users[grantee], sorted(ops),
                                                            constraints=CONSTRAINTS[constraint])
                created = True
            except AccessDeniedException:
                created = False
            made = ModelGrant(grantee, ops, constraint, creator)
            if created:  # the property: one grant the creator held covers the new one entirely
                assert any(made.abilities() <= g.abilities() for g in held), (creator, made, held)
                grants.append(made)
            # and the service refuses only what no held grant covers
            assert created is any(g.covers(ops, constraint) for g in held), (creator, ops, constraint, held)
            event("created" if created else "refused")

        listed = {(g.grantee_principal, frozenset(g.operations), json.dumps(
            {k: v for k, v in (("EncryptionContextEquals", g.constraints.encryption_context_equals),
                               ("EncryptionContextSubset", g.constraints.encryption_context_subset))
             if v is not None} if g.constraints else None, sort_keys=True))
            for g in root.list_grants(key).grants}
        assert listed == {(users[g.grantee], g.ops, json.dumps(CONSTRAINTS[g.constraint], sort_keys=True))
                          for g in grants}

        # end to end: what each user can really do was given by the root, and is exactly what it holds
        for name, (c, context) in itertools.product(USERS, enumerate(CONTEXTS)):
            service = root.as_caller(users[name])
            holds = set().union(*(g.abilities() for g in grants if g.grantee == name))
            for op, call in (("Encrypt", lambda: service.encrypt(key, b"x", encryption_context=context)),
                             ("GenerateDataKey", lambda: service.generate_data_key(
                                 key, key_spec="AES_256", encryption_context=context)),
                             ("DescribeKey", lambda: service.describe_key(key))):
                if op == "DescribeKey" and c:
                    continue
                try:
                    call()
                    live = True
                except AccessDeniedException:
                    live = False
                assert live is ((op, c) in holds), (name, op, context)
                if live:
                    assert (op, c) in given_by_root, (name, op, context)
