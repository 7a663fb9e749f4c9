"""The pure evaluator (ledger.policy) against AWS's documented evaluation logic.

Table-driven: each case is a key policy, the caller's IAM policies, the
grants on the key and one request, with the decision AWS documents for it
(key policy alone, delegation to IAM, explicit deny in either, grants and
their encryption-context constraints, NotAction / NotResource /
NotPrincipal, action and resource wildcards). Every condition operator the
module supports is checked on its own against the condition keys the
service fills in, including the empty-set edge cases of ForAnyValue /
ForAllValues. Malformed documents must be refused with a message naming
the problem. Three hypothesis properties close it: a matching explicit
Deny always denies, no matching Allow always denies, and adding an Allow
statement never turns an allowed call into a denied one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyledger import policy as authz
from keyledger.errors import MalformedPolicyDocumentException

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
APP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
OTHER_ROOT = f"arn:aws:iam::{OTHER_ACCOUNT}:root"
OTHER_USER = f"arn:aws:iam::{OTHER_ACCOUNT}:user/carol"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY2 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0987dcba-09fe-87dc-65ba-ab0987654321"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


# -- building documents and requests ------------------------------------------------

def stmt(effect: str = "Allow", *, principal: Any = None, not_principal: Any = None,
         action: Any = "kms:*", not_action: Any = None, resource: Any = "*", not_resource: Any = None,
         condition: dict[str, Any] | None = None, sid: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"Effect": effect}
    if sid is not None:
        out["Sid"] = sid
    if principal is not None:
        out["Principal"] = principal if principal == "*" else {"AWS": principal}
    if not_principal is not None:
        out["NotPrincipal"] = {"AWS": not_principal}
    if not_action is not None:
        out["NotAction"] = not_action
    elif action is not None:
        out["Action"] = action
    if not_resource is not None:
        out["NotResource"] = not_resource
    elif resource is not None:
        out["Resource"] = resource
    if condition is not None:
        out["Condition"] = condition
    return out


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def key_policy(*statements: dict[str, Any]) -> authz.Policy:
    return authz.parse(doc(*statements))


def iam(*statements: dict[str, Any]) -> authz.Policy:
    return authz.parse(doc(*statements), key_policy=False)


DEFAULT = authz.parse(authz.default_key_policy(ACCOUNT))


def request(principal: str = ALICE, action: str = "kms:Encrypt", resource: str = KEY, *,
            ec: dict[str, str] | None = None, **extra: Any) -> authz.Request:
    """A request with the condition context the service builds for it, by
    the service's own builder (`request_context`), never a copy of it."""
    ctx = authz.request_context(principal, NOW, encryption_context=ec,
                                extra={k.lower(): v for k, v in extra.items()})
    return authz.Request(principal, action, resource, ctx, ec)


def grant(grantee: str = ALICE, *ops: str, equals: dict[str, str] | None = None,
          subset: dict[str, str] | None = None, gid: str = "g1") -> authz.Grant:
    return authz.Grant(gid, grantee, ops or ("Encrypt", "Decrypt"), equals, subset)


@dataclass
class Case:
    id: str
    req: authz.Request
    key: authz.Policy | None
    iam: list[authz.Policy] = field(default_factory=list)
    grants: list[authz.Grant] = field(default_factory=list)
    allowed: bool = True
    reason: str | None = None  # a piece of Decision.reason


def decide(case: Case) -> authz.Decision:
    return authz.evaluate(case.req, key_policy=case.key, iam_policies=case.iam, grants=case.grants)


ALLOW_ALICE = stmt(principal=ALICE, action=["kms:Encrypt", "kms:Decrypt"])
IAM_ENCRYPT_KEY = iam(stmt(action="kms:Encrypt", resource=KEY))
IAM_ALL_KMS = iam(stmt(action="kms:*", resource="*"))

EVALUATION = [
    # -- the key policy alone ------------------------------------------------------
    Case("key policy names the principal: no IAM policy needed",
         request(), key_policy(ALLOW_ALICE), reason="key policy allows the principal"),
    Case("key policy names the principal, but for other actions",
         request(action="kms:ScheduleKeyDeletion"), key_policy(ALLOW_ALICE), allowed=False,
         reason="because no resource-based policy allows the kms:ScheduleKeyDeletion action"),
    Case("key policy names another user", request(principal=BOB), key_policy(ALLOW_ALICE), allowed=False,
         reason="no resource-based policy"),
    Case("a role named directly", request(principal=APP_ROLE), key_policy(stmt(principal=APP_ROLE))),
    Case('Principal "*" allows anyone in the account', request(principal=BOB), key_policy(stmt(principal="*"))),
    Case('Principal {"AWS": "*"} allows anyone', request(principal=BOB), key_policy(stmt(principal=["*"]))),
    Case('Principal "*" allows another account too', request(principal=OTHER_USER),
         key_policy(stmt(principal="*"))),
    Case("the account root is not special when the key policy leaves it out",
         request(principal=ROOT), key_policy(ALLOW_ALICE), allowed=False),
    Case("the root needs no IAM policy when the key policy names it",
         request(principal=ROOT, action="kms:ScheduleKeyDeletion"), DEFAULT),
    Case("the bare account id names the root", request(principal=ROOT), key_policy(stmt(principal=ACCOUNT))),
    # -- delegation to IAM ---------------------------------------------------------
    Case("default key policy, no IAM policy: denied", request(), DEFAULT, allowed=False,
         reason="because no identity-based policy allows the kms:Encrypt action"),
    Case("default key policy + IAM allow on this key", request(), DEFAULT, [IAM_ENCRYPT_KEY],
         reason="delegates to IAM"),
    Case("default key policy + IAM allow on another key", request(resource=KEY2), DEFAULT, [IAM_ENCRYPT_KEY],
         allowed=False),
    Case("default key policy + IAM allow for another action", request(action="kms:Decrypt"), DEFAULT,
         [IAM_ENCRYPT_KEY], allowed=False),
    Case("bare account id delegates like the root ARN", request(), key_policy(stmt(principal=ACCOUNT)),
         [IAM_ENCRYPT_KEY]),
    Case("bare account id without IAM policy", request(), key_policy(stmt(principal=ACCOUNT)), allowed=False),
    Case("one of several IAM policies is enough", request(), DEFAULT,
         [iam(stmt(action="kms:Decrypt")), iam(stmt(action="kms:Encrypt"))]),
    Case("IAM allows, but the key policy does not delegate", request(principal=BOB), key_policy(ALLOW_ALICE),
         [IAM_ALL_KMS], allowed=False, reason="no resource-based policy"),
    Case("delegation covers only the statement's actions", request(action="kms:Decrypt"),
         key_policy(stmt(principal=ROOT, action="kms:Encrypt")), [IAM_ALL_KMS], allowed=False),
    Case("delegation statement's condition must hold", request(ec={"dept": "hr"}),
         key_policy(stmt(principal=ROOT, condition={"StringEquals": {"kms:EncryptionContext:dept": "sales"}})),
         [IAM_ALL_KMS], allowed=False),
    Case("delegation statement's condition holds", request(ec={"dept": "sales"}),
         key_policy(stmt(principal=ROOT, condition={"StringEquals": {"kms:EncryptionContext:dept": "sales"}})),
         [IAM_ALL_KMS]),
    Case("a context condition compares values case-sensitively (built by request_context)",
         request(ec={"Dept": "Sales"}),
         key_policy(stmt(principal=ROOT, condition={"StringEquals": {"kms:EncryptionContext:dept": "Sales"}})),
         [IAM_ALL_KMS]),
    Case("a context condition: another case of the value is another value", request(ec={"dept": "sales"}),
         key_policy(stmt(principal=ROOT, condition={"StringEquals": {"kms:EncryptionContext:dept": "Sales"}})),
         [IAM_ALL_KMS], allowed=False),
    Case("cross-account: key policy names the other account, its IAM allows", request(principal=OTHER_USER),
         key_policy(stmt(principal=ROOT), stmt(principal=OTHER_ROOT, action="kms:Encrypt")), [IAM_ALL_KMS]),
    Case("cross-account: key policy names the other account, no IAM", request(principal=OTHER_USER),
         key_policy(stmt(principal=ROOT), stmt(principal=OTHER_ROOT, action="kms:Encrypt")), allowed=False),
    Case("cross-account: the other account is not named", request(principal=OTHER_USER), DEFAULT,
         [IAM_ALL_KMS], allowed=False),
    # -- explicit deny wins --------------------------------------------------------
    Case("explicit deny in the key policy beats a direct allow", request(),
         key_policy(ALLOW_ALICE, stmt("Deny", principal=ALICE, action="kms:Encrypt")), allowed=False,
         reason="with an explicit deny in a resource-based policy"),
    Case("explicit deny in the key policy beats IAM", request(),
         key_policy(stmt(principal=ROOT), stmt("Deny", principal="*", action="kms:Encrypt")), [IAM_ALL_KMS],
         allowed=False, reason="explicit deny in a resource-based policy"),
    Case("explicit deny in an IAM policy beats the key policy", request(), key_policy(ALLOW_ALICE),
         [iam(stmt("Deny", action="kms:Encrypt"))], allowed=False,
         reason="with an explicit deny in an identity-based policy"),
    Case("explicit deny in one IAM policy beats an allow in another", request(), DEFAULT,
         [IAM_ALL_KMS, iam(stmt("Deny", action="kms:*", resource=KEY))], allowed=False,
         reason="identity-based"),
    Case("a deny naming the account applies to its users", request(),
         key_policy(ALLOW_ALICE, stmt("Deny", principal=ROOT, action="kms:Encrypt")), allowed=False),
    Case("a deny naming another user does not apply", request(),
         key_policy(ALLOW_ALICE, stmt("Deny", principal=BOB, action="kms:*"))),
    Case("a deny for another action does not apply", request(),
         key_policy(ALLOW_ALICE, stmt("Deny", principal="*", action="kms:Decrypt"))),
    Case("a deny whose condition fails does not apply", request(ec={"dept": "sales"}),
         key_policy(ALLOW_ALICE, stmt("Deny", principal="*", action="kms:*",
                                      condition={"StringNotEquals": {"kms:EncryptionContext:dept": "sales"}}))),
    Case("a deny whose condition holds applies", request(ec={"dept": "hr"}),
         key_policy(ALLOW_ALICE, stmt("Deny", principal="*", action="kms:*",
                                      condition={"StringNotEquals": {"kms:EncryptionContext:dept": "sales"}})),
         allowed=False),
    Case("explicit deny beats a grant", request(), key_policy(stmt(principal=ROOT),
                                                               stmt("Deny", principal=ALICE, action="kms:*")),
         grants=[grant()], allowed=False),
    Case("an IAM deny beats a grant", request(), DEFAULT, [iam(stmt("Deny", action="kms:Encrypt"))],
         grants=[grant()], allowed=False),
    Case("the root is denied by a deny for everyone", request(principal=ROOT),
         key_policy(stmt(principal=ROOT), stmt("Deny", principal="*", action="kms:Encrypt")), allowed=False),
    # -- grants --------------------------------------------------------------------
    Case("a grant allows its grantee", request(), DEFAULT, grants=[grant()], reason="grant g1"),
    Case("a grant for another operation", request(action="kms:GenerateDataKey"), DEFAULT, grants=[grant()],
         allowed=False),
    Case("a grant for another grantee", request(principal=BOB), DEFAULT, grants=[grant()], allowed=False),
    Case("a grant works under a key policy that does not delegate", request(),
         key_policy(stmt(principal=BOB)), grants=[grant()]),
    Case("one matching grant among others", request(action="kms:DescribeKey"), DEFAULT,
         grants=[grant(BOB, "DescribeKey", gid="a"), grant(ALICE, "Encrypt", gid="b"),
                 grant(ALICE, "DescribeKey", gid="c")], reason="grant c"),
    Case("EncryptionContextEquals: exact match", request(ec={"dept": "sales", "app": "x"}), DEFAULT,
         grants=[grant(equals={"app": "x", "dept": "sales"})]),
    Case("EncryptionContextEquals: an extra pair fails", request(ec={"dept": "sales", "app": "x"}), DEFAULT,
         grants=[grant(equals={"dept": "sales"})], allowed=False),
    Case("EncryptionContextEquals: a missing pair fails", request(ec={"dept": "sales"}), DEFAULT,
         grants=[grant(equals={"dept": "sales", "app": "x"})], allowed=False),
    Case("EncryptionContextEquals: no context fails", request(ec={}), DEFAULT,
         grants=[grant(equals={"dept": "sales"})], allowed=False),
    Case("EncryptionContextEquals: values are case sensitive", request(ec={"dept": "Sales"}), DEFAULT,
         grants=[grant(equals={"dept": "sales"})], allowed=False),
    Case("EncryptionContextEquals: keys are not case sensitive (AWS GrantConstraints)",
         request(ec={"Dept": "sales"}), DEFAULT, grants=[grant(equals={"dept": "sales"})]),
    Case("EncryptionContextSubset: a superset matches", request(ec={"dept": "sales", "app": "x"}), DEFAULT,
         grants=[grant(subset={"dept": "sales"})]),
    Case("EncryptionContextSubset: the same set matches", request(ec={"dept": "sales"}), DEFAULT,
         grants=[grant(subset={"dept": "sales"})]),
    Case("EncryptionContextSubset: a missing pair fails", request(ec={"app": "x"}), DEFAULT,
         grants=[grant(subset={"dept": "sales"})], allowed=False),
    Case("EncryptionContextSubset: a different value fails", request(ec={"dept": "hr"}), DEFAULT,
         grants=[grant(subset={"dept": "sales"})], allowed=False),
    Case("EncryptionContextSubset: values are case sensitive", request(ec={"dept": "SALES"}), DEFAULT,
         grants=[grant(subset={"dept": "sales"})], allowed=False),
    Case("EncryptionContextSubset: keys are not case sensitive", request(ec={"DEPT": "sales", "x": "y"}),
         DEFAULT, grants=[grant(subset={"Dept": "sales"})]),
    Case("constraints do not apply to DescribeKey (AWS GrantConstraints)", request(action="kms:DescribeKey"),
         DEFAULT, grants=[grant(ALICE, "DescribeKey", "Encrypt", equals={"dept": "sales"})]),
    Case("grants are not consulted for keyless calls", request(action="kms:CreateKey", resource="*"), None,
         grants=[grant(ALICE, "CreateGrant")], allowed=False),
    # -- calls without a key: IAM alone ------------------------------------------------
    Case("CreateKey allowed by IAM", request(action="kms:CreateKey", resource="*"), None,
         [iam(stmt(action="kms:CreateKey"))], reason="identity-based policy allows"),
    Case("CreateKey without IAM", request(action="kms:CreateKey", resource="*"), None, allowed=False,
         reason="because no identity-based policy allows the kms:CreateKey action"),
    Case("CreateKey needs Resource * (a key ARN pattern does not match)",
         request(action="kms:CreateKey", resource="*"), None,
         [iam(stmt(action="kms:CreateKey", resource=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*"))], allowed=False),
    Case("the root needs no IAM policy for keyless calls", request(principal=ROOT, action="kms:ListKeys",
                                                                    resource="*"), None),
    # -- NotAction / NotResource / NotPrincipal ---------------------------------------
    Case("Allow NotAction: other actions allowed", request(),
         key_policy(stmt(principal=ALICE, action=None, not_action="kms:Decrypt"))),
    Case("Allow NotAction: the listed action is not", request(action="kms:Decrypt"),
         key_policy(stmt(principal=ALICE, action=None, not_action="kms:Decrypt")), allowed=False),
    Case("Deny NotAction: the listed action stays allowed", request(), DEFAULT,
         [IAM_ALL_KMS, iam(stmt("Deny", action=None, not_action=["kms:Encrypt", "kms:Decrypt"]))]),
    Case("Deny NotAction: everything else is denied", request(action="kms:ScheduleKeyDeletion"), DEFAULT,
         [IAM_ALL_KMS, iam(stmt("Deny", action=None, not_action=["kms:Encrypt", "kms:Decrypt"]))],
         allowed=False),
    Case("Allow NotResource: another key is allowed", request(), DEFAULT,
         [iam(stmt(action="kms:*", resource=None, not_resource=KEY2))]),
    Case("Allow NotResource: the listed key is not", request(resource=KEY2), DEFAULT,
         [iam(stmt(action="kms:*", resource=None, not_resource=KEY2))], allowed=False),
    Case("Deny NotResource: only the listed key stays usable", request(resource=KEY2), DEFAULT,
         [IAM_ALL_KMS, iam(stmt("Deny", action="kms:*", resource=None, not_resource=KEY))], allowed=False),
    Case("Deny NotResource: the listed key", request(), DEFAULT,
         [IAM_ALL_KMS, iam(stmt("Deny", action="kms:*", resource=None, not_resource=KEY))]),
    Case("Deny NotPrincipal: denies everyone not listed", request(principal=BOB),
         key_policy(stmt(principal="*"), stmt("Deny", not_principal=[ALICE, ROOT], action="kms:Encrypt")),
         allowed=False),
    Case("Deny NotPrincipal: the listed principal is exempt", request(),
         key_policy(stmt(principal="*"), stmt("Deny", not_principal=[ALICE, ROOT], action="kms:Encrypt"))),
    Case("Allow NotPrincipal: allows everyone not listed", request(),
         key_policy(stmt(not_principal=BOB, action="kms:Encrypt"))),
    Case("Allow NotPrincipal: not the listed principal", request(principal=BOB),
         key_policy(stmt(not_principal=BOB, action="kms:Encrypt")), allowed=False),
]

ACTION_PATTERNS = [
    ("kms:*", "kms:Encrypt", True), ("*", "kms:Encrypt", True), ("kms:Encrypt", "kms:Encrypt", True),
    ("KMS:ENCRYPT", "kms:Encrypt", True), ("kms:encrypt", "kms:Encrypt", True),
    ("kms:En*", "kms:Encrypt", True), ("kms:*crypt", "kms:Decrypt", True),
    ("kms:?ncrypt", "kms:Encrypt", True), ("kms:Encr?pt", "kms:Encrypt", True),
    ("kms:Enc?pt", "kms:Encrypt", False), ("kms:?crypt", "kms:Encrypt", False),
    ("kms:Encrypt", "kms:Decrypt", False), ("kms:Encrypt", "kms:EncryptX", False),
    ("kms:ReEncrypt*", "kms:ReEncryptFrom", True), ("kms:ReEncrypt*", "kms:Encrypt", False),
    ("kms:GenerateDataKey*", "kms:GenerateDataKeyWithoutPlaintext", True),
    ("kms:GenerateDataKey*", "kms:GenerateDataKey", True), ("kms:Describe?ey", "kms:DescribeKey", True),
    ("kms:List*", "kms:ListGrants", True), ("kms:List*", "kms:CreateGrant", False),
    ("iam:*", "kms:Encrypt", False), ("kms:*", "iam:CreateUser", False),
    ("s3:*", "kms:Encrypt", False), ("kms*", "kms:Encrypt", True),
]

RESOURCE_PATTERNS = [
    ("*", KEY, True), (KEY, KEY, True), (KEY2, KEY, False),
    (f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*", KEY, True),
    (f"arn:aws:kms:*:{ACCOUNT}:key/*", KEY, True),
    ("arn:aws:kms:us-east-1:*:key/*", KEY, True),
    (f"arn:aws:kms:us-west-2:{ACCOUNT}:key/*", KEY, False),
    (f"arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:key/*", KEY, False),
    (f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-*", KEY, True),
    (f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890a?", KEY, True),
    (f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890?", KEY, False),
    (f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/*", KEY, False),
    (KEY.upper(), KEY, False),  # resource ARNs are case sensitive
]


@pytest.mark.parametrize("case", EVALUATION, ids=lambda c: c.id)
def test_evaluation(case: Case) -> None:
    decision = decide(case)
    assert decision.allowed is case.allowed, decision.reason
    if case.reason is not None:
        assert case.reason in decision.reason


@pytest.mark.parametrize(("pattern", "action", "matches"), ACTION_PATTERNS)
def test_action_wildcards(pattern: str, action: str, matches: bool) -> None:
    """Actions match case-insensitively with * and ? (in the key policy and in IAM)."""
    by_key_policy = authz.evaluate(request(action=action), key_policy=key_policy(stmt(principal=ALICE,
                                                                                        action=pattern)),
                                   iam_policies=[])
    by_iam = authz.evaluate(request(action=action), key_policy=DEFAULT, iam_policies=[iam(stmt(action=pattern))])
    assert by_key_policy.allowed is matches
    assert by_iam.allowed is matches


@pytest.mark.parametrize(("pattern", "resource", "matches"), RESOURCE_PATTERNS)
def test_resource_wildcards(pattern: str, resource: str, matches: bool) -> None:
    decision = authz.evaluate(request(resource=resource), key_policy=DEFAULT,
                              iam_policies=[iam(stmt(action="kms:Encrypt", resource=pattern))])
    assert decision.allowed is matches


def test_default_key_policy_is_awss() -> None:
    assert json.loads(authz.default_key_policy(ACCOUNT)) == {
        "Version": "2012-10-17", "Id": "key-default-1",
        "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                       "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}]}


def test_denial_message_shape() -> None:
    req = request(principal=BOB)
    decision = authz.evaluate(req, key_policy=DEFAULT, iam_policies=[])
    assert authz.denial_message(req, decision) == (
        f"User: {BOB} is not authorized to perform: kms:Encrypt on resource: {KEY} "
        "because no identity-based policy allows the kms:Encrypt action")
    req = request()
    decision = authz.evaluate(req, key_policy=key_policy(stmt("Deny", principal="*")), iam_policies=[])
    assert authz.denial_message(req, decision) == (
        f"User: {ALICE} is not authorized to perform: kms:Encrypt on resource: {KEY} "
        "with an explicit deny in a resource-based policy")


def test_grants_may_be_a_thunk_called_only_when_needed() -> None:
    calls = []

    def grants() -> list[authz.Grant]:
        calls.append(1)
        return [grant()]

    assert authz.evaluate(request(), key_policy=key_policy(ALLOW_ALICE), iam_policies=[], grants=grants).allowed
    assert calls == []  # the key policy decided: no grant look-up
    assert authz.evaluate(request(), key_policy=DEFAULT, iam_policies=[], grants=grants).allowed
    assert calls == [1]


# -- condition operators ------------------------------------------------------------

def holds(operator: str, key: str, values: Any, context: dict[str, Any]) -> bool:
    """Does a single-condition statement's condition hold for this context?
    (Checked twice: with condition_holds, and through a whole evaluation.)"""
    policy = iam(stmt(action="kms:Encrypt", condition={operator: {key: values}}))
    (cond,) = policy.statements[0].conditions
    direct = authz.condition_holds(cond, {k.lower(): v for k, v in context.items()})
    req = authz.Request(ALICE, "kms:Encrypt", KEY, {k.lower(): v for k, v in context.items()})
    whole = authz.evaluate(req, key_policy=DEFAULT, iam_policies=[policy]).allowed
    assert direct is whole
    return direct


EC = "kms:EncryptionContext:dept"
ECK = "kms:EncryptionContextKeys"
CONDITIONS: list[tuple[str, str, Any, dict[str, Any], bool]] = [
    # StringEquals: case-sensitive values, OR over the policy's values, missing key false
    ("StringEquals", EC, "sales", {EC: "sales"}, True),
    ("StringEquals", EC, "sales", {EC: "Sales"}, False),
    ("StringEquals", EC, ["hr", "sales"], {EC: "sales"}, True),
    ("StringEquals", EC, "sales", {}, False),
    ("StringEquals", "KMS:EncryptionContext:DEPT", "sales", {EC: "sales"}, True),  # key names: any case
    ("StringEquals", EC, "sa*", {EC: "sales"}, False),  # no wildcards in StringEquals
    # StringNotEquals: NOR over values, missing key true
    ("StringNotEquals", EC, "sales", {EC: "sales"}, False),
    ("StringNotEquals", EC, ["hr", "it"], {EC: "sales"}, True),
    ("StringNotEquals", EC, ["hr", "sales"], {EC: "sales"}, False),
    ("StringNotEquals", EC, "sales", {}, True),
    # StringLike / StringNotLike
    ("StringLike", EC, "sa*", {EC: "sales"}, True),
    ("StringLike", EC, "s?les", {EC: "sales"}, True),
    ("StringLike", EC, "s?les", {EC: "sles"}, False),
    ("StringLike", EC, "S*", {EC: "sales"}, False),
    ("StringLike", EC, ["hr", "*s"], {EC: "sales"}, True),
    ("StringLike", EC, "*", {}, False),
    ("StringNotLike", EC, "sa*", {EC: "sales"}, False),
    ("StringNotLike", EC, "x*", {EC: "sales"}, True),
    ("StringNotLike", EC, "x*", {}, True),
    # StringEqualsIgnoreCase / StringNotEqualsIgnoreCase
    ("StringEqualsIgnoreCase", EC, "SALES", {EC: "sales"}, True),
    ("StringEqualsIgnoreCase", EC, "hr", {EC: "sales"}, False),
    ("StringEqualsIgnoreCase", EC, "sales", {}, False),
    ("StringNotEqualsIgnoreCase", EC, "SALES", {EC: "sales"}, False),
    ("StringNotEqualsIgnoreCase", EC, "hr", {EC: "sales"}, True),
    # Bool
    ("Bool", "kms:BypassPolicyLockoutSafetyCheck", "true", {"kms:BypassPolicyLockoutSafetyCheck": True}, True),
    ("Bool", "kms:BypassPolicyLockoutSafetyCheck", "false", {"kms:BypassPolicyLockoutSafetyCheck": True}, False),
    ("Bool", "kms:BypassPolicyLockoutSafetyCheck", True, {"kms:BypassPolicyLockoutSafetyCheck": True}, True),
    ("Bool", "kms:BypassPolicyLockoutSafetyCheck", "false", {"kms:BypassPolicyLockoutSafetyCheck": False}, True),
    ("Bool", "kms:BypassPolicyLockoutSafetyCheck", "TRUE", {"kms:BypassPolicyLockoutSafetyCheck": "true"}, True),
    ("Bool", "kms:BypassPolicyLockoutSafetyCheck", "true", {}, False),
    ("BoolIfExists", "kms:BypassPolicyLockoutSafetyCheck", "false", {}, True),
    ("BoolIfExists", "kms:BypassPolicyLockoutSafetyCheck", "false",
     {"kms:BypassPolicyLockoutSafetyCheck": True}, False),
    # Null
    ("Null", EC, "true", {}, True),
    ("Null", EC, "true", {EC: "sales"}, False),
    ("Null", EC, "false", {EC: "sales"}, True),
    ("Null", EC, "false", {}, False),
    # Numeric*
    ("NumericEquals", "kms:ScheduleKeyDeletionPendingWindowInDays", "7",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, True),
    ("NumericEquals", "kms:ScheduleKeyDeletionPendingWindowInDays", 30,
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, False),
    ("NumericNotEquals", "kms:ScheduleKeyDeletionPendingWindowInDays", "7",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, False),
    ("NumericNotEquals", "kms:ScheduleKeyDeletionPendingWindowInDays", "30",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, True),
    ("NumericLessThan", "kms:ScheduleKeyDeletionPendingWindowInDays", "10",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, True),
    ("NumericLessThan", "kms:ScheduleKeyDeletionPendingWindowInDays", "7",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, False),
    ("NumericLessThanEquals", "kms:ScheduleKeyDeletionPendingWindowInDays", "7",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, True),
    ("NumericGreaterThan", "kms:ScheduleKeyDeletionPendingWindowInDays", "7",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, False),
    ("NumericGreaterThan", "kms:ScheduleKeyDeletionPendingWindowInDays", "6.5",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, True),
    ("NumericGreaterThanEquals", "kms:ScheduleKeyDeletionPendingWindowInDays", "7",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, True),
    ("NumericGreaterThanEquals", "kms:ScheduleKeyDeletionPendingWindowInDays", "8",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, False),
    ("NumericEquals", "kms:ScheduleKeyDeletionPendingWindowInDays", "seven",
     {"kms:ScheduleKeyDeletionPendingWindowInDays": 7}, False),
    ("NumericLessThan", "kms:ScheduleKeyDeletionPendingWindowInDays", "10", {}, False),
    ("NumericLessThanIfExists", "kms:ScheduleKeyDeletionPendingWindowInDays", "10", {}, True),
    # Date* against aws:CurrentTime (ISO 8601 or epoch seconds)
    ("DateLessThan", "aws:CurrentTime", "2031-01-01T00:00:00Z", {"aws:CurrentTime": NOW}, True),
    ("DateLessThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", {"aws:CurrentTime": NOW}, False),
    ("DateLessThanEquals", "aws:CurrentTime", "2030-01-01T00:00:00Z", {"aws:CurrentTime": NOW}, True),
    ("DateGreaterThan", "aws:CurrentTime", "2029-12-31T23:59:59Z", {"aws:CurrentTime": NOW}, True),
    ("DateGreaterThan", "aws:CurrentTime", "2030-06-01T00:00:00Z", {"aws:CurrentTime": NOW}, False),
    ("DateGreaterThanEquals", "aws:CurrentTime", "2030-01-01T00:00:00+00:00", {"aws:CurrentTime": NOW}, True),
    ("DateEquals", "aws:CurrentTime", "2030-01-01T00:00:00Z", {"aws:CurrentTime": NOW}, True),
    ("DateEquals", "aws:CurrentTime", int(NOW.timestamp()), {"aws:CurrentTime": NOW}, True),
    ("DateNotEquals", "aws:CurrentTime", "2030-01-01T00:00:00Z", {"aws:CurrentTime": NOW}, False),
    ("DateLessThan", "aws:CurrentTime", int(NOW.timestamp()) + 1, {"aws:CurrentTime": NOW}, True),
    ("DateLessThan", "aws:CurrentTime", "2031-01-01T00:00:00Z", {}, False),
    # Arn*
    ("ArnLike", "aws:PrincipalArn", f"arn:aws:iam::{ACCOUNT}:user/*", {"aws:PrincipalArn": ALICE}, True),
    ("ArnLike", "aws:PrincipalArn", f"arn:aws:iam::{ACCOUNT}:role/*", {"aws:PrincipalArn": ALICE}, False),
    ("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:user/ali?e", {"aws:PrincipalArn": ALICE}, True),
    ("ArnEquals", "aws:PrincipalArn", ALICE, {"aws:PrincipalArn": ALICE}, True),
    ("ArnEquals", "aws:PrincipalArn", BOB, {"aws:PrincipalArn": ALICE}, False),
    ("ArnNotLike", "aws:PrincipalArn", f"arn:aws:iam::{ACCOUNT}:role/*", {"aws:PrincipalArn": ALICE}, True),
    ("ArnNotEquals", "aws:PrincipalArn", ALICE, {"aws:PrincipalArn": ALICE}, False),
    ("ArnLike", "aws:PrincipalArn", f"arn:aws:iam::{ACCOUNT}:*", {}, False),
    # IfExists
    ("StringEqualsIfExists", EC, "sales", {}, True),
    ("StringEqualsIfExists", EC, "sales", {EC: "sales"}, True),
    ("StringEqualsIfExists", EC, "sales", {EC: "hr"}, False),
    ("StringLikeIfExists", EC, "s*", {EC: "hr"}, False),
    ("ArnLikeIfExists", "aws:PrincipalArn", "arn:aws:iam::*:role/*", {}, True),
    # ForAnyValue: some request value matches; missing key or empty set -> false
    ("ForAnyValue:StringEquals", ECK, ["dept", "x"], {ECK: ["dept", "team"]}, True),
    ("ForAnyValue:StringEquals", ECK, ["dept", "x"], {ECK: ["team"]}, False),
    ("ForAnyValue:StringEquals", ECK, "dept", {ECK: []}, False),
    ("ForAnyValue:StringEquals", ECK, "dept", {}, False),
    ("ForAnyValue:StringLike", "kms:ResourceAliases", "alias/prod-*",
     {"kms:ResourceAliases": ["alias/dev-a", "alias/prod-b"]}, True),
    ("ForAnyValue:StringLike", "kms:ResourceAliases", "alias/prod-*", {"kms:ResourceAliases": ["alias/dev"]}, False),
    ("ForAnyValue:StringLike", "kms:ResourceAliases", "alias/prod-*", {"kms:ResourceAliases": []}, False),
    ("ForAnyValue:StringNotEquals", ECK, "dept", {ECK: ["dept", "team"]}, True),
    ("ForAnyValue:StringNotEquals", ECK, "dept", {ECK: ["dept"]}, False),
    ("ForAnyValue:StringNotEquals", ECK, "dept", {ECK: []}, False),
    ("ForAnyValue:StringNotEquals", ECK, "dept", {}, False),  # no context key: false (IAM docs)
    ("ForAnyValue:StringEqualsIfExists", ECK, "dept", {}, True),
    # ForAllValues: every request value matches; missing key or empty set -> true
    ("ForAllValues:StringEquals", ECK, ["dept", "team"], {ECK: ["dept"]}, True),
    ("ForAllValues:StringEquals", ECK, ["dept", "team"], {ECK: ["dept", "team"]}, True),
    ("ForAllValues:StringEquals", ECK, ["dept", "team"], {ECK: ["dept", "other"]}, False),
    ("ForAllValues:StringEquals", ECK, ["dept"], {ECK: []}, True),
    ("ForAllValues:StringEquals", ECK, ["dept"], {}, True),
    ("ForAllValues:StringEquals", "kms:GrantOperations", ["Encrypt", "Decrypt"],
     {"kms:GrantOperations": ["Encrypt"]}, True),
    ("ForAllValues:StringEquals", "kms:GrantOperations", ["Encrypt", "Decrypt"],
     {"kms:GrantOperations": ["Encrypt", "CreateGrant"]}, False),
    ("ForAnyValue:StringEquals", "kms:GrantOperations", "CreateGrant",
     {"kms:GrantOperations": ["Encrypt", "CreateGrant"]}, True),
    # The IAM user guide's example table for ForAllValues:StringNotLike {"aws:TagKeys": "key1*"}
    ("ForAllValues:StringNotLike", "aws:TagKeys", "key1*", {"aws:TagKeys": ["key1:legal"]}, False),
    ("ForAllValues:StringNotLike", "aws:TagKeys", "key1*", {"aws:TagKeys": ["key1:hr", "key1:personnel"]}, False),
    ("ForAllValues:StringNotLike", "aws:TagKeys", "key1*", {"aws:TagKeys": ["key2:audit"]}, True),
    ("ForAllValues:StringNotLike", "aws:TagKeys", "key1*", {}, True),
    ("ForAllValues:StringLike", "kms:ResourceAliases", "alias/prod-*",
     {"kms:ResourceAliases": ["alias/prod-a", "alias/dev"]}, False),
    # a plain negated operator on a set: no member may match
    ("StringNotEquals", ECK, "secret", {ECK: ["dept", "team"]}, True),
    ("StringNotEquals", ECK, "secret", {ECK: ["dept", "secret"]}, False),
]

# Every documented condition key the service fills in, with a value it takes.
CONDITION_KEYS: list[tuple[str, str, Any, Any]] = [
    # (key as written in a policy, operator, policy value, request value)
    ("kms:EncryptionContext:Department", "StringEquals", "IT", "IT"),
    ("kms:EncryptionContextKeys", "ForAnyValue:StringEquals", "Department", ["Department", "Project"]),
    ("kms:CallerAccount", "StringEquals", ACCOUNT, ACCOUNT),
    ("kms:EncryptionAlgorithm", "StringEquals", "SYMMETRIC_DEFAULT", "SYMMETRIC_DEFAULT"),
    ("kms:RequestAlias", "StringLike", "alias/finance-*", "alias/finance-key"),
    ("kms:ResourceAliases", "ForAnyValue:StringEquals", "alias/finance-key", ["alias/finance-key", "alias/x"]),
    ("kms:KeySpec", "StringEquals", "SYMMETRIC_DEFAULT", "SYMMETRIC_DEFAULT"),
    ("kms:KeyUsage", "StringEquals", "ENCRYPT_DECRYPT", "ENCRYPT_DECRYPT"),
    ("kms:KeyOrigin", "StringEquals", "AWS_KMS", "AWS_KMS"),
    ("kms:GrantOperations", "ForAllValues:StringEquals", ["Encrypt", "Decrypt"], ["Decrypt"]),
    ("aws:PrincipalArn", "ArnLike", f"arn:aws:iam::{ACCOUNT}:user/*", ALICE),
    ("aws:CurrentTime", "DateLessThan", "2040-01-01T00:00:00Z", NOW),
    ("aws:ResourceTag/Project", "StringEquals", "alpha", "alpha"),
    ("aws:RequestTag/Project", "StringEquals", "alpha", "alpha"),
]


@pytest.mark.parametrize(("operator", "key", "values", "context", "expected"), CONDITIONS,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CONDITIONS)])
def test_condition_operators(operator: str, key: str, values: Any, context: dict[str, Any],
                             expected: bool) -> None:
    assert holds(operator, key, values, context) is expected


@pytest.mark.parametrize(("key", "operator", "value", "actual"), CONDITION_KEYS, ids=[c[0] for c in CONDITION_KEYS])
def test_condition_keys(key: str, operator: str, value: Any, actual: Any) -> None:
    """Each documented key matches its value, regardless of the case the
    policy writes the key in, and fails on another value or when absent."""
    context_key = key.lower()
    assert holds(operator, key, value, {context_key: actual})
    assert holds(operator, key.swapcase(), value, {context_key: actual})
    other: Any = ["nope"] if isinstance(actual, list) else (
        datetime(2050, 1, 1, tzinfo=timezone.utc) if isinstance(actual, datetime) else
        "arn:aws:iam::999999999999:role/x" if key == "aws:PrincipalArn" else "nope")
    assert not holds(operator, key, value, {context_key: other})
    if not operator.startswith("ForAllValues"):
        assert not holds(operator, key, value, {})


def test_conditions_are_anded_across_operators_and_keys() -> None:
    policy = iam(stmt(action="kms:Encrypt", condition={
        "StringEquals": {EC: "sales", "kms:CallerAccount": ACCOUNT},
        "ForAllValues:StringEquals": {ECK: ["dept", "app"]}}))

    def allowed(ec: dict[str, str], principal: str = ALICE) -> bool:
        return authz.evaluate(request(principal, ec=ec), key_policy=DEFAULT, iam_policies=[policy]).allowed

    assert allowed({"dept": "sales"})
    assert allowed({"dept": "sales", "app": "x"})
    assert not allowed({"dept": "sales", "other": "x"})  # ForAllValues fails
    assert not allowed({"dept": "hr"})  # StringEquals on the context fails
    assert not allowed({"dept": "sales"}, principal=f"arn:aws:iam::{OTHER_ACCOUNT}:user/x")  # caller account


# -- malformed documents ------------------------------------------------------------

def raw(**top: Any) -> str:
    return json.dumps(top)


GOOD = {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
MALFORMED: list[tuple[str, str, bool, str]] = [
    # (id, document, is a key policy, a piece of the message)
    ("bad JSON", '{"Version": "2012-10-17", "Statement": [', True, "not valid JSON"),
    ("empty", "   ", True, "empty"),
    ("not an object", json.dumps([GOOD]), True, "JSON object"),
    ("missing Version", raw(Statement=[GOOD]), True, "Version"),
    ("unknown Version", raw(Version="2020-01-01", Statement=[GOOD]), True, "Version"),
    ("missing Statement", raw(Version="2012-10-17"), True, "Statement"),
    ("empty Statement", raw(Version="2012-10-17", Statement=[]), True, "Statement"),
    ("unknown top-level element", raw(Version="2012-10-17", Statement=[GOOD], Extra=1), True, "Extra"),
    ("statement not an object", raw(Version="2012-10-17", Statement=["x"]), True, "Statement[0]"),
    ("bad Effect", raw(Version="2012-10-17", Statement=[{**GOOD, "Effect": "Permit"}]), True, "Effect"),
    ("lower-case Effect", raw(Version="2012-10-17", Statement=[{**GOOD, "Effect": "allow"}]), True, "Effect"),
    ("missing Effect", raw(Version="2012-10-17", Statement=[{k: v for k, v in GOOD.items() if k != "Effect"}]),
     True, "Effect"),
    ("both Action and NotAction", raw(Version="2012-10-17", Statement=[{**GOOD, "NotAction": "kms:Decrypt"}]),
     True, "Action and NotAction"),
    ("neither Action nor NotAction",
     raw(Version="2012-10-17", Statement=[{k: v for k, v in GOOD.items() if k != "Action"}]),
     True, "Action and NotAction"),
    ("both Resource and NotResource", raw(Version="2012-10-17", Statement=[{**GOOD, "NotResource": KEY}]),
     True, "Resource and NotResource"),
    ("missing Resource",
     raw(Version="2012-10-17", Statement=[{k: v for k, v in GOOD.items() if k != "Resource"}]),
     True, "Resource and NotResource"),
    ("key policy statement without Principal",
     raw(Version="2012-10-17", Statement=[{k: v for k, v in GOOD.items() if k != "Principal"}]),
     True, "Principal"),
    ("both Principal and NotPrincipal", raw(Version="2012-10-17", Statement=[{**GOOD, "NotPrincipal": {"AWS": BOB}}]),
     True, "Principal and NotPrincipal"),
    ("Principal in an IAM policy", raw(Version="2012-10-17", Statement=[GOOD]), False, "must not name a Principal"),
    ("NotPrincipal in an IAM policy",
     raw(Version="2012-10-17", Statement=[{k: v for k, v in {**GOOD, "NotPrincipal": {"AWS": BOB}}.items()
                                           if k != "Principal"}]), False, "must not name a Principal"),
    ("unknown statement element", raw(Version="2012-10-17", Statement=[{**GOOD, "Actions": "kms:*"}]),
     True, "Actions"),
    ("unknown principal type", raw(Version="2012-10-17", Statement=[{**GOOD, "Principal": {"Users": ROOT}}]),
     True, "principal type"),
    ("invalid AWS principal", raw(Version="2012-10-17", Statement=[{**GOOD, "Principal": {"AWS": "alice"}}]),
     True, "invalid AWS principal"),
    ("empty principal map", raw(Version="2012-10-17", Statement=[{**GOOD, "Principal": {}}]), True, "Principal"),
    ("Action not a string", raw(Version="2012-10-17", Statement=[{**GOOD, "Action": 7}]), True, "Action"),
    ("empty Action list", raw(Version="2012-10-17", Statement=[{**GOOD, "Action": []}]), True, "Action"),
    ("Sid not a string", raw(Version="2012-10-17", Statement=[{**GOOD, "Sid": 1}]), True, "Sid"),
    ("unknown operator",
     raw(Version="2012-10-17", Statement=[{**GOOD, "Condition": {"StringMatches": {EC: "x"}}}]),
     True, "unknown condition operator 'StringMatches'"),
    ("unknown qualifier",
     raw(Version="2012-10-17", Statement=[{**GOOD, "Condition": {"ForSomeValues:StringEquals": {EC: "x"}}}]),
     True, "qualifier"),
    ("Condition not a map", raw(Version="2012-10-17", Statement=[{**GOOD, "Condition": ["x"]}]), True,
     "Condition"),
    ("operator without keys",
     raw(Version="2012-10-17", Statement=[{**GOOD, "Condition": {"StringEquals": {}}}]), True, "StringEquals"),
    ("condition value an object",
     raw(Version="2012-10-17", Statement=[{**GOOD, "Condition": {"StringEquals": {EC: {"a": 1}}}}]),
     True, EC),
    ("too large", raw(Version="2012-10-17", Statement=[{**GOOD, "Sid": "x" * 40000}]), True, "exceeds"),
]


@pytest.mark.parametrize(("document", "is_key_policy", "problem"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_documents_are_refused_naming_the_problem(document: str, is_key_policy: bool,
                                                            problem: str) -> None:
    with pytest.raises(MalformedPolicyDocumentException) as info:
        authz.parse(document, key_policy=is_key_policy)
    assert info.value.code == "MalformedPolicyDocumentException"
    assert problem in info.value.message


def test_well_formed_documents_parse() -> None:
    authz.parse(authz.default_key_policy(ACCOUNT))
    authz.parse(raw(Version="2008-10-17", Statement=GOOD))  # a single statement object is allowed
    authz.parse(raw(Version="2012-10-17", Id="x", Statement=[{**GOOD, "Principal": "*", "Sid": "s"}]))
    authz.parse(raw(Version="2012-10-17", Statement=[{**GOOD, "Principal": {"AWS": [ROOT, ACCOUNT, "*"]}}]))
    authz.parse(raw(Version="2012-10-17", Statement=[{"Effect": "Deny", "NotAction": "kms:Decrypt",
                                                       "NotResource": KEY}]), key_policy=False)


# -- properties -----------------------------------------------------------------------

PRINCIPALS = (ALICE, BOB, ROOT, APP_ROLE, OTHER_USER)
ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:ScheduleKeyDeletion")
RESOURCES = (KEY, KEY2)
CONTEXTS = ({}, {"dept": "sales"}, {"dept": "hr"}, {"dept": "sales", "app": "x"})

action_patterns = st.sampled_from(["kms:*", "*", "kms:Encrypt", "kms:Decrypt", "kms:*crypt", "kms:De?ryp?",
                                   "KMS:describekey", "kms:Schedule*", "iam:*"])
principal_names = st.sampled_from(["*", ALICE, BOB, ROOT, ACCOUNT, APP_ROLE, OTHER_ROOT, OTHER_USER])
resource_patterns = st.sampled_from(["*", KEY, KEY2, f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*",
                                     f"arn:aws:kms:*:{OTHER_ACCOUNT}:key/*",
                                     "arn:aws:kms:*:${aws:PrincipalAccount}:key/*",  # policy variables
                                     "arn:aws:kms:us-east-1:${aws:PrincipalTag/account, '0'}:key/*"])
conditions = st.sampled_from([
    None,
    {"StringEquals": {EC: "sales"}},
    {"StringNotEquals": {EC: "sales"}},
    {"StringLike": {EC: "s*"}},
    {"Null": {EC: "true"}},
    {"ForAllValues:StringEquals": {ECK: ["dept"]}},
    {"ForAnyValue:StringEquals": {ECK: ["app"]}},
    {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/*"}},
    {"StringEquals": {"kms:CallerAccount": ACCOUNT}},
    {"DateGreaterThan": {"aws:CurrentTime": "2031-01-01T00:00:00Z"}},
    {"StringEquals": {EC: "${aws:username}"}},
    {"StringNotLike": {EC: "${aws:PrincipalTag/dept, 'sa'}*"}},
    {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:*"}},
])


@st.composite
def statements(draw: st.DrawFn, *, key: bool, effect: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"Effect": effect or draw(st.sampled_from(["Allow", "Deny"]))}
    if key:
        names = draw(st.lists(principal_names, min_size=1, max_size=2))
        if draw(st.integers(0, 5)) == 0:
            out["NotPrincipal"] = {"AWS": [n for n in names if n != "*"] or [BOB]}
        else:
            out["Principal"] = "*" if names == ["*"] else {"AWS": names}
    actions = draw(st.lists(action_patterns, min_size=1, max_size=2))
    out["NotAction" if draw(st.integers(0, 5)) == 0 else "Action"] = actions
    out["NotResource" if draw(st.integers(0, 7)) == 0 else "Resource"] = draw(resource_patterns)
    condition = draw(conditions)
    if condition is not None:
        out["Condition"] = condition
    return out


def policy_documents(*, key: bool, effect: str | None = None) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(statements(key=key, effect=effect), min_size=1, max_size=4)


grants_strategy = st.lists(st.builds(
    authz.Grant, st.sampled_from(["g1", "g2"]), st.sampled_from(PRINCIPALS),
    st.sampled_from([("Encrypt",), ("Decrypt", "DescribeKey"), ("Encrypt", "Decrypt")]),
    st.sampled_from([None, {"dept": "sales"}]), st.sampled_from([None, {"app": "x"}])), max_size=2)


@st.composite
def requests(draw: st.DrawFn) -> authz.Request:
    tags = draw(st.sampled_from([{}, {"aws:PrincipalTag/dept": "sales"}, {"aws:PrincipalTag/account": ACCOUNT}]))
    return request(draw(st.sampled_from(PRINCIPALS)), draw(st.sampled_from(ACTIONS)),
                   draw(st.sampled_from(RESOURCES)), ec=dict(draw(st.sampled_from(CONTEXTS))), **tags)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]], list[authz.Grant]]:
    """(key policy statements, IAM policies' statements, grants)."""
    return (draw(policy_documents(key=True)), draw(st.lists(policy_documents(key=False), max_size=2)),
            draw(grants_strategy))


def evaluate_world(req: authz.Request, kp: list[dict[str, Any]], iams: list[list[dict[str, Any]]],
                   grants: list[authz.Grant]) -> authz.Decision:
    return authz.evaluate(req, key_policy=authz.parse(doc(*kp)),
                          iam_policies=[authz.parse(doc(*s), key_policy=False) for s in iams], grants=grants)


@st.composite
def matching_denies(draw: st.DrawFn, req: authz.Request, *, key: bool) -> dict[str, Any]:
    """A Deny statement that applies to `req` by construction."""
    out: dict[str, Any] = {"Effect": "Deny"}
    if key:
        account_root = authz.root_of(authz.account_of(req.principal) or ACCOUNT)
        out["Principal"] = draw(st.sampled_from(["*", {"AWS": req.principal}, {"AWS": [BOB, req.principal]},
                                                 {"AWS": account_root}, {"AWS": "*"}]))
    op = req.action.split(":", 1)[1]
    out["Action"] = draw(st.sampled_from(["*", "kms:*", req.action, req.action.upper(), f"kms:{op[:2]}*",
                                          f"kms:?{op[1:]}", ["kms:Nothing", req.action]]))
    out["Resource"] = draw(st.sampled_from(["*", req.resource, f"arn:aws:kms:*:{ACCOUNT}:key/*"]))
    ec = req.encryption_context or {}
    candidates: list[dict[str, Any] | None] = [None, {"StringEquals": {"aws:PrincipalArn": req.principal}},
                                               {"ForAllValues:StringEquals": {ECK: list(ec) or ["z"]}}]
    if "dept" in ec:
        candidates.append({"StringEquals": {EC: ec["dept"]}})
    else:
        candidates.append({"Null": {EC: "true"}})
    condition = draw(st.sampled_from(candidates))
    if condition is not None:
        out["Condition"] = condition
    return out


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(world=worlds(), req=requests(), data=st.data())
def test_a_matching_explicit_deny_always_denies(world, req, data) -> None:
    kp, iams, grants = world
    in_key_policy = data.draw(st.booleans())
    deny = data.draw(matching_denies(req, key=in_key_policy))
    if in_key_policy:
        kp = [*kp]
        kp.insert(data.draw(st.integers(0, len(kp))), deny)
    else:
        iams = [*iams, []]
        i = data.draw(st.integers(0, len(iams) - 1))
        iams[i] = [*iams[i], deny]
        iams = [s for s in iams if s]
    decision = evaluate_world(req, kp, iams, grants)
    assert not decision.allowed
    assert "explicit deny" in decision.reason


@PROPERTY
@given(kp=policy_documents(key=True, effect="Deny"), iams=st.lists(policy_documents(key=False, effect="Deny"),
                                                                    max_size=2),
       req=requests())
def test_no_allow_at_all_always_denies(kp, iams, req) -> None:
    """Only Deny statements (and no grant): implicit or explicit deny, never allow."""
    assert not evaluate_world(req, kp, iams, []).allowed


@PROPERTY
@given(world=worlds(), req=requests())
def test_no_matching_allow_always_denies(world, req) -> None:
    """Whatever the documents, with every Allow statement and every grant
    that could apply to the request removed, the request is denied."""
    kp, iams, grants = world
    compiled_kp = authz.parse(doc(*kp))

    def could_allow_by_key_policy(i: int) -> bool:
        s = compiled_kp.statements[i]
        if s.effect != "Allow":
            return False
        alone = authz.evaluate(req, key_policy=authz.Policy((s,)), iam_policies=[authz.Policy((authz.parse(
            doc({"Effect": "Allow", "Action": "*", "Resource": "*"}), key_policy=False).statements[0],))])
        return alone.allowed

    def iam_allow_applies(statement: dict[str, Any]) -> bool:
        s = authz.parse(doc(statement), key_policy=False).statements[0]
        return s.effect == "Allow" and authz.evaluate(req, key_policy=None, iam_policies=[authz.Policy((s,))]).allowed

    kp_rest = [s for i, s in enumerate(kp) if not could_allow_by_key_policy(i)]
    iams_rest = [[s for s in p if not iam_allow_applies(s)] for p in iams]
    iams_rest = [p for p in iams_rest if p]
    grants_rest = [g for g in grants if not authz.grant_allows(g, req)]
    if not kp_rest:
        kp_rest = [{"Effect": "Deny", "Principal": {"AWS": BOB}, "Action": "kms:Nothing", "Resource": "*"}]
    assert not evaluate_world(req, kp_rest, iams_rest, grants_rest).allowed


@PROPERTY
@given(world=worlds(), req=requests(), data=st.data())
def test_adding_an_allow_never_turns_allowed_into_denied(world, req, data) -> None:
    kp, iams, grants = world
    before = evaluate_world(req, kp, iams, grants)
    if data.draw(st.booleans()):
        kp = [*kp]
        kp.insert(data.draw(st.integers(0, len(kp))), data.draw(statements(key=True, effect="Allow")))
    else:
        extra = data.draw(statements(key=False, effect="Allow"))
        if iams and data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(iams) - 1))
            iams = [*iams[:i], [*iams[i], extra], *iams[i + 1:]]
        else:
            iams = [*iams, [extra]]
    after = evaluate_world(req, kp, iams, grants)
    if before.allowed:
        assert after.allowed, after.reason
    if "explicit deny" in before.reason:  # and an Allow never lifts an explicit deny
        assert not after.allowed and "explicit deny" in after.reason


# -- a constrained grant can only pass on its constraints ------------------------

_PARENT_SUBSET = authz.Grant("g1", "arn:aws:iam::111122223333:user/bob", ("CreateGrant", "Decrypt"),
                              context_subset={"app": "orders"})
_PARENT_EQUALS = authz.Grant("g2", "arn:aws:iam::111122223333:user/bob", ("CreateGrant",),
                              context_equals={"app": "orders", "env": "prod"})


@pytest.mark.parametrize("parent, child, allowed", [
    (_PARENT_SUBSET, (None, None), False),                                  # unconstrained: looser
    (_PARENT_SUBSET, (None, {"app": "orders"}), True),                      # the same
    (_PARENT_SUBSET, (None, {"APP": "orders", "env": "prod"}), True),       # stricter (keys case-insensitive)
    (_PARENT_SUBSET, ({"app": "orders"}, None), True),                      # equals is stricter than subset
    (_PARENT_SUBSET, (None, {"app": "billing"}), False),                    # another value
    (_PARENT_SUBSET, (None, {"env": "prod"}), False),                       # drops the parent's pair
    (_PARENT_EQUALS, ({"app": "orders", "env": "prod"}, None), True),       # exactly the same
    (_PARENT_EQUALS, (None, {"app": "orders", "env": "prod"}), False),      # subset is looser than equals
    (_PARENT_EQUALS, ({"app": "orders"}, None), False),                     # a different context
])
def test_constrained_grant_creates_only_as_constrained_grants(parent, child, allowed) -> None:
    req = authz.Request(parent.grantee, "kms:CreateGrant", "arn:aws:kms:us-east-1:111122223333:key/k", {},
                         None, child, new_grant_operations=parent.operations)
    assert authz.grant_allows(parent, req) is allowed


# -- a grant begets only grants within its own operations (issue 8, item 1) --------

def create_grant_request(ops: tuple[str, ...] | None, *, principal: str = ALICE,
                         constraints: tuple[Any, Any] | None = None) -> authz.Request:
    """A CreateGrant request for a grant of `ops`, with the service's context."""
    ctx = authz.request_context(principal, NOW, extra={"kms:grantoperations": list(ops or ()),
                                                       "kms:granteeprincipal": principal})
    return authz.Request(principal, "kms:CreateGrant", KEY, ctx, None, constraints, new_grant_operations=ops)


_DECRYPT_AND_GRANT = grant(ALICE, "Decrypt", "CreateGrant")


@pytest.mark.parametrize("ops, allowed", [
    (("Decrypt",), True),                                       # fewer operations
    (("Decrypt", "CreateGrant"), True),                         # the same operations
    (("CreateGrant",), True),
    (("Encrypt",), False),                                      # the escalation of the probe
    (("Decrypt", "Encrypt"), False),                            # one operation too many
    (("GenerateDataKey",), False),
    (("DescribeKey",), False),                                  # DescribeKey ignores constraints, not this
    (("ReEncryptFrom",), False),
    (("RetireGrant",), False),
    (None, False),                                              # operations not given: no grant allows it
])
def test_a_grant_creates_grants_only_within_its_operations(ops, allowed) -> None:
    req = create_grant_request(ops)
    assert authz.grant_allows(_DECRYPT_AND_GRANT, req) is allowed
    decision = authz.evaluate(req, key_policy=DEFAULT, iam_policies=[], grants=[_DECRYPT_AND_GRANT])
    assert decision.allowed is allowed
    if not allowed:
        assert authz.denial_message(req, decision) == (
            f"User: {ALICE} is not authorized to perform: kms:CreateGrant on resource: {KEY} "
            "because no identity-based policy allows the kms:CreateGrant action")


def test_operations_and_constraints_are_both_checked_under_a_constrained_grant() -> None:
    parent = grant(ALICE, "Decrypt", "CreateGrant", subset={"app": "orders"})
    strict = (None, {"app": "orders"})
    assert authz.grant_allows(parent, create_grant_request(("Decrypt",), constraints=strict))
    assert not authz.grant_allows(parent, create_grant_request(("Encrypt",), constraints=strict))
    assert not authz.grant_allows(parent, create_grant_request(("Decrypt",), constraints=(None, None)))


def test_the_subset_rule_binds_grants_not_policies() -> None:
    """A principal allowed CreateGrant by the key policy or IAM may grant
    any operation (AWS); the rule applies only to a grant's grantee, and one
    grant cannot lend its operations to another's CreateGrant."""
    req = create_grant_request(("Encrypt", "GenerateDataKey"))
    assert authz.evaluate(req, key_policy=key_policy(stmt(principal=ALICE, action="kms:CreateGrant")),
                          iam_policies=[]).allowed
    assert authz.evaluate(req, key_policy=DEFAULT, iam_policies=[iam(stmt(action="kms:CreateGrant"))]).allowed
    # Encrypt from one grant, CreateGrant from another: still no Encrypt to give
    split = [grant(ALICE, "Encrypt", gid="a"), grant(ALICE, "CreateGrant", gid="b")]
    assert not authz.evaluate(create_grant_request(("Encrypt",)), key_policy=DEFAULT, iam_policies=[],
                              grants=split).allowed


# -- Action / NotAction fold case, Resource / NotResource do not (issue 8) --------

_OTHER_CASE_KEY = KEY.replace("1234abcd", "1234ABCD")

CASE_FOLDING = [
    # (effect, element, pattern, action, resource, allowed)
    ("Allow", "Action", "kms:decrypt", "kms:Decrypt", KEY, True),
    ("Allow", "Action", "KMS:DECRYPT", "kms:Decrypt", KEY, True),
    ("Allow", "Action", "kms:de*", "kms:Decrypt", KEY, True),
    ("Allow", "NotAction", "kms:decrypt", "kms:Decrypt", KEY, False),   # the surviving mutant's hole
    ("Allow", "NotAction", "KMS:DECRYPT", "kms:Decrypt", KEY, False),
    ("Allow", "NotAction", "kms:de*", "kms:Decrypt", KEY, False),
    ("Allow", "NotAction", "kms:decrypt", "kms:Encrypt", KEY, True),
    ("Deny", "NotAction", "kms:encrypt", "kms:Encrypt", KEY, True),     # exempt from the deny, any case
    ("Deny", "NotAction", "kms:encrypt", "kms:Decrypt", KEY, False),
    ("Allow", "Resource", KEY, "kms:Decrypt", KEY, True),
    ("Allow", "Resource", _OTHER_CASE_KEY, "kms:Decrypt", KEY, False),       # ARNs: case sensitive
    ("Allow", "Resource", KEY.upper(), "kms:Decrypt", KEY, False),
    ("Allow", "NotResource", KEY, "kms:Decrypt", KEY, False),
    ("Allow", "NotResource", _OTHER_CASE_KEY, "kms:Decrypt", KEY, True),     # another ARN: not excluded
    ("Allow", "NotResource", KEY.upper(), "kms:Decrypt", KEY, True),
    ("Deny", "NotResource", KEY, "kms:Decrypt", KEY, True),
    ("Deny", "NotResource", _OTHER_CASE_KEY, "kms:Decrypt", KEY, False),
]


@pytest.mark.parametrize(("effect", "element", "pattern", "action", "resource", "allowed"), CASE_FOLDING,
                         ids=[f"{c[0]}-{c[1]}-{c[2][-12:]}-{c[3]}" for c in CASE_FOLDING])
def test_case_folding_of_action_and_resource_elements(effect, element, pattern, action, resource,
                                                      allowed) -> None:
    """AWS action names are case-insensitive in Action and NotAction alike;
    resource ARNs are case sensitive in Resource and NotResource alike.
    Checked in an IAM policy and in the key policy (a Deny row sits beside
    an Allow of everything, so only the Deny can refuse)."""
    body: dict[str, Any] = {"action": None, "resource": None, {
        "Action": "action", "NotAction": "not_action", "Resource": "resource",
        "NotResource": "not_resource"}[element]: pattern}
    if element in ("Action", "NotAction"):
        body["resource"] = "*"
    else:
        body["action"] = "kms:*"
    under_test = stmt(effect, **body)
    req = request(action=action, resource=resource)
    iams = [iam(under_test)] + ([IAM_ALL_KMS] if effect == "Deny" else [])
    assert authz.evaluate(req, key_policy=DEFAULT, iam_policies=iams).allowed is allowed
    in_key_policy = key_policy(stmt(effect, principal=ALICE, **body),
                               *([stmt(principal=ALICE)] if effect == "Deny" else []))
    assert authz.evaluate(req, key_policy=in_key_policy, iam_policies=[]).allowed is allowed


# -- kms:ViaService (issue 8) ------------------------------------------------------

SSM = "ssm.us-east-1.amazonaws.com"


def test_via_service_is_in_the_context_only_for_a_call_through_a_service() -> None:
    direct = authz.request_context(ALICE, NOW)
    assert "kms:viaservice" not in direct
    assert direct["kms:calleraccount"] == ACCOUNT
    through = authz.request_context(ALICE, NOW, via_service=SSM)
    assert through["kms:viaservice"] == SSM
    assert through["kms:calleraccount"] == ACCOUNT


@pytest.mark.parametrize("condition, direct, via_ssm, via_other", [
    ({"StringEquals": {"kms:ViaService": SSM}}, False, True, False),
    ({"StringEqualsIfExists": {"kms:ViaService": SSM}}, True, True, False),
    ({"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}}, False, True, False),
    ({"StringNotEquals": {"kms:ViaService": SSM}}, True, False, True),
    ({"Null": {"kms:ViaService": "true"}}, True, False, False),     # direct calls only
    ({"Null": {"kms:ViaService": "false"}}, False, True, True),     # only through some service
    ({"StringEquals": {"kms:ViaService": SSM, "kms:CallerAccount": ACCOUNT}}, False, True, False),
    ({"StringEquals": {"kms:ViaService": SSM, "kms:CallerAccount": OTHER_ACCOUNT}}, False, False, False),
])
def test_via_service_conditions(condition, direct, via_ssm, via_other) -> None:
    policy = iam(stmt(action="kms:Decrypt", condition=condition))
    for via, expected in ((None, direct), (SSM, via_ssm), ("secretsmanager.us-east-1.amazonaws.com", via_other)):
        ctx = authz.request_context(ALICE, NOW, encryption_context={}, via_service=via)
        req = authz.Request(ALICE, "kms:Decrypt", KEY, ctx, {})
        assert authz.evaluate(req, key_policy=DEFAULT, iam_policies=[policy]).allowed is expected, via


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), reqs=st.lists(requests(), min_size=1, max_size=12), small=st.booleans())
def test_remembered_candidates_decide_as_a_fresh_evaluation(world, reqs, small) -> None:
    """Issue 13: a policy remembers which of its statements can apply to a
    (principal, action, resource); over any sequence of requests against the
    same parsed policies (the cache warm with earlier ones, and with a bound
    small enough to be cleared mid-sequence), every decision is the one an
    evaluation without that memory makes."""
    kp, iams, grants = world
    bound, authz.MEMO_ENTRIES = authz.MEMO_ENTRIES, (2 if small else authz.MEMO_ENTRIES)
    try:
        key_policy = authz.Policy(authz.parse(doc(*kp)).statements)  # fresh memos, not lru-shared ones
        iam_policies = [authz.Policy(authz.parse(doc(*s), key_policy=False).statements) for s in iams]
        for req in reqs:
            remembered = authz.evaluate(req, key_policy=key_policy, iam_policies=iam_policies, grants=grants)
            fresh = authz.evaluate(req, key_policy=key_policy, iam_policies=iam_policies, grants=grants,
                                   memo=False)
            assert remembered == fresh
            assert remembered == authz.explain(req, key_policy=key_policy, grants=grants,
                                               iam_policies={str(i): p for i, p in enumerate(iam_policies)})[0]
        assert len(key_policy._memo) <= authz.MEMO_ENTRIES
    finally:
        authz.MEMO_ENTRIES = bound
