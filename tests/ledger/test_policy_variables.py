"""IAM policy variables (`${aws:username}`, `${aws:PrincipalTag/team,
'none'}`, `${*}`): resolved per request in Resource, NotResource and the
values of String and Arn conditions of a "2012-10-17" document, plain text
in a "2008-10-17" one. A variable the request has no single value for, and
no default, matches nothing. A variable's value is inserted as text, never
as a wildcard: a caller who controls an encryption context cannot widen a
`StringLike` with a `*`. The ABAC pattern AWS documents for KMS
(`aws:ResourceTag/project` equals `${aws:PrincipalTag/project}`) runs
against a real ledger, and a tag change takes effect on the next call."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keyledger
from keyledger import policy as authz
from keyledger.errors import AccessDeniedException
from keyledger.projections import replay
from keyledger.service import KeyLedger

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
APP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
OTHER_USER = "arn:aws:iam::444455556666:user/carol"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
EC = "kms:EncryptionContext:dept"


def iam(*statements: dict[str, Any], version: str = "2012-10-17") -> authz.Policy:
    return authz.parse(json.dumps({"Version": version, "Statement": list(statements)}), key_policy=False)


def allow(condition: dict[str, Any] | None = None, *, resource: Any = "*", not_resource: Any = None,
          effect: str = "Allow") -> dict[str, Any]:
    out: dict[str, Any] = {"Effect": effect, "Action": "kms:*"}
    out["NotResource" if not_resource is not None else "Resource"] = not_resource or resource
    if condition is not None:
        out["Condition"] = condition
    return out


def allowed(policy: authz.Policy, principal: str = ALICE, *, ec: dict[str, str] | None = None,
            tags: dict[str, str] | None = None, resource: str = KEY) -> bool:
    ctx = authz.request_context(principal, NOW, encryption_context=ec, principal_tags=tags)
    req = authz.Request(principal, "kms:Encrypt", resource, ctx, ec)
    fresh = authz.evaluate(req, key_policy=None, iam_policies=[policy], memo=False).allowed
    assert authz.evaluate(req, key_policy=None, iam_policies=[policy]).allowed is fresh
    return fresh


# -- parsing ------------------------------------------------------------------------

@pytest.mark.parametrize("text, parts", [
    ("${aws:username}", (authz.Variable("aws:username", None),)),
    ("a/${AWS:PrincipalTag/Team}/b", ("a/", authz.Variable("aws:principaltag/team", None), "/b")),
    ("${ aws:username , 'it''s}' }", (authz.Variable("aws:username", "it's}"),)),
    ("${*}${?}${$}", (("*",), ("?",), ("$",))),
])
def test_variables_are_parsed(text: str, parts: tuple[Any, ...]) -> None:
    assert authz.template(text) == authz.Template(text, parts)


@pytest.mark.parametrize("text", ["plain", "$5", "${", "${}", "${ }", "${a b}", "${k, unquoted}", "${k, 'open}"])
def test_text_without_a_well_formed_variable_stays_text(text: str) -> None:
    assert authz.template(text) == text


def test_a_2008_document_reads_variables_as_text() -> None:
    """IAM: policy variables came with "2012-10-17"; before it `${...}` is literal."""
    cond = {"StringEquals": {EC: "${aws:username}"}}
    assert allowed(iam(allow(cond)), ec={"dept": "alice"})
    assert not allowed(iam(allow(cond), version="2008-10-17"), ec={"dept": "alice"})
    assert allowed(iam(allow(cond), version="2008-10-17"), ec={"dept": "${aws:username}"})


# -- conditions -----------------------------------------------------------------------

@pytest.mark.parametrize("operator, value, dept, expected", [
    ("StringEquals", "${aws:username}", "alice", True),
    ("StringEquals", "${aws:username}", "bob", False),
    ("StringEquals", "team-${aws:username}", "team-alice", True),
    ("StringNotEquals", "${aws:username}", "alice", False),
    ("StringNotEquals", "${aws:username}", "bob", True),
    ("StringEqualsIgnoreCase", "${aws:username}", "ALICE", True),
    ("StringLike", "${aws:username}-*", "alice-eu", True),
    ("StringLike", "${aws:username}-*", "bob-eu", False),
    ("StringNotLike", "${aws:username}-*", "alice-eu", False),
    ("StringLike", "a${*}", "a*", True),      # an escape is a literal character, not a wildcard
    ("StringLike", "a${*}", "ab", False),
    ("StringLike", "a${?}", "ab", False),
    ("StringEquals", "${$}{x}", "${x}", True),
    ("StringEquals", "${aws:PrincipalTag/missing, 'none'}", "none", True),
    ("StringEquals", "${aws:PrincipalTag/team, 'none'}", "none", False),  # the tag is there: red
    ("StringEquals", "${aws:PrincipalTag/TEAM}", "red", True),            # keys are case-insensitive
    ("StringEquals", "${aws:CurrentTime}", "2030-01-01T00:00:00Z", True),
    ("StringEquals", "${aws:ViaAWSService}", "false", True),
    ("StringEquals", "${aws:PrincipalAccount}:${aws:PrincipalType}", f"{ACCOUNT}:User", True),
])
def test_string_conditions_resolve_variables(operator: str, value: str, dept: str, expected: bool) -> None:
    policy = iam(allow({operator: {EC: value}}))
    assert allowed(policy, ec={"dept": dept}, tags={"team": "red"}) is expected


def test_arn_conditions_resolve_variables() -> None:
    policy = iam(allow({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:user/*"}}))
    assert allowed(policy, ALICE)
    policy = iam(allow({"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::444455556666:user/${aws:username}"}}))
    assert not allowed(policy, ALICE)
    assert allowed(policy, OTHER_USER)


def test_a_variable_without_a_value_matches_nothing() -> None:
    """No tag, no default: nothing equals it or is like it, so a negated
    operator holds; a multi-valued key (the context's keys) has no value."""
    for op, expected in (("StringEquals", False), ("StringLike", False), ("StringNotEquals", True),
                         ("StringNotLike", True), ("StringEqualsIgnoreCase", False)):
        policy = iam(allow({op: {EC: "${aws:PrincipalTag/team}"}}))
        assert allowed(policy, ec={"dept": ""}) is expected, op
        assert allowed(policy, ec={"dept": "${aws:PrincipalTag/team}"}) is expected, op
    keys = iam(allow({"StringEquals": {EC: "${kms:EncryptionContextKeys}"}}))
    assert not allowed(keys, ec={"dept": "dept"})
    assert not allowed(keys, ec={"dept": "['dept']"})


def test_variables_stay_literal_outside_string_comparisons() -> None:
    """Only String and Arn operators resolve variables (IAM); a Numeric
    condition's `${...}` value is no number, and matches nothing."""
    policy = iam(allow({"NumericEquals": {EC: "${aws:username}"}}))
    assert not allowed(policy, ec={"dept": "1"})
    assert policy.statements[0].conditions[0].values == ("${aws:username}",)


def test_a_value_is_text_not_a_wildcard() -> None:
    """A caller sets the encryption context: `*` in it must not turn
    `StringLike aws:ResourceTag/...: ${kms:EncryptionContext:project}` into
    a match-anything."""
    policy = iam(allow({"StringLike": {"aws:ResourceTag/project": "${kms:EncryptionContext:project}"}}))
    ctx = authz.request_context(ALICE, NOW, encryption_context={"project": "*"},
                                extra={"aws:resourcetag/project": "alpha"})
    req = authz.Request(ALICE, "kms:Encrypt", KEY, ctx, {"project": "*"})
    assert not authz.evaluate(req, key_policy=None, iam_policies=[policy]).allowed
    ctx = authz.request_context(ALICE, NOW, encryption_context={"project": "alpha"},
                                extra={"aws:resourcetag/project": "alpha"})
    req = authz.Request(ALICE, "kms:Encrypt", KEY, ctx, {"project": "alpha"})
    assert authz.evaluate(req, key_policy=None, iam_policies=[policy]).allowed


# -- resources --------------------------------------------------------------------------

def test_resources_resolve_variables_per_request() -> None:
    own_account = iam(allow(resource="arn:aws:kms:*:${aws:PrincipalAccount}:key/*"))
    assert allowed(own_account, ALICE)
    assert not allowed(own_account, OTHER_USER)
    assert allowed(own_account, OTHER_USER, resource=KEY.replace(ACCOUNT, "444455556666"))
    by_tag = iam(allow(resource="arn:aws:kms:us-east-1:111122223333:key/${aws:PrincipalTag/key}"))
    key_id = KEY.rsplit("/", 1)[1]
    assert allowed(by_tag, tags={"key": key_id})
    assert not allowed(by_tag, tags={"key": "other"})
    assert not allowed(by_tag)                                     # no value: the resource does not match
    wild = iam(allow(resource="arn:aws:kms:us-east-1:111122223333:key/${aws:PrincipalTag/key}"))
    assert not allowed(wild, tags={"key": "*"})                    # the tag's `*` is text
    except_own = iam(allow(not_resource="arn:aws:kms:*:${aws:PrincipalTag/account}:key/*"))
    assert not allowed(except_own, tags={"account": ACCOUNT})
    assert allowed(except_own)                                     # no value: NotResource excludes nothing


def test_a_deny_with_a_variable_applies() -> None:
    """The usual ABAC guard: deny any key whose project tag is not the caller's."""
    policy = iam(allow(), allow({"StringNotEquals": {"aws:ResourceTag/project": "${aws:PrincipalTag/project}"}},
                                effect="Deny"))
    def decide(tags: dict[str, str] | None, project: str) -> bool:
        ctx = authz.request_context(ALICE, NOW, principal_tags=tags, extra={"aws:resourcetag/project": project})
        return authz.evaluate(authz.Request(ALICE, "kms:Encrypt", KEY, ctx), key_policy=None,
                              iam_policies=[policy]).allowed
    assert decide({"project": "alpha"}, "alpha")
    assert not decide({"project": "beta"}, "alpha")
    assert not decide(None, "alpha")                               # untagged: no value, nothing equals it


# -- properties ---------------------------------------------------------------------------

SAFE = st.text(st.characters(blacklist_characters="*?${}'", blacklist_categories=("Cs",)), max_size=6)
STRING_OPERATORS = ["StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
                    "StringLike", "StringNotLike", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"]


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(STRING_OPERATORS), prefix=st.text(max_size=4), suffix=st.text(max_size=4),
       name=SAFE, actual=st.text(max_size=10))
def test_a_variable_decides_as_its_value_written_in(op: str, prefix: str, suffix: str, name: str,
                                                    actual: str) -> None:
    """For any operator, policy text and request value: the condition with
    `${aws:username}` decides as the same condition with the user's name
    written in its place (a name without wildcard or variable characters)."""
    if "${" in prefix + suffix or prefix.endswith("$"):
        return
    key = "kms:encryptioncontext:dept"
    ctx = {key: actual, "aws:username": name}
    variable = authz.Condition(op, None, False, key, (authz.template(prefix + "${aws:username}" + suffix),), True)
    written = authz.Condition(op, None, False, key, (prefix + name + suffix,))
    assert authz.condition_holds(variable, ctx) == authz.condition_holds(written, ctx)


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(["StringLike", "ArnLike", "StringEquals"]), value=st.text(max_size=8),
       actual=st.text(max_size=8))
def test_a_value_matches_only_itself(op: str, value: str, actual: str) -> None:
    """Whatever a variable's value holds (`*`, `?`, `${...}`), a lone
    variable matches exactly that text: values are never patterns."""
    key = "kms:encryptioncontext:dept"
    condition = authz.Condition(op, None, False, key, (authz.template("${aws:PrincipalTag/v}"),), True)
    assert authz.condition_holds(condition, {key: actual, "aws:principaltag/v": value}) == (actual == value)


# -- on a real ledger -----------------------------------------------------------------------

OWN_ROOT = f"arn:aws:iam::{keyledger.DEFAULT_ACCOUNT}:root"


def project_key(kms: KeyLedger, project: str) -> str:
    """A key tagged with its project whose policy lets any principal of the
    account whose own project tag matches use it: AWS's ABAC for KMS."""
    return kms.create_key(tags={"project": project}, policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": OWN_ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/project": "${aws:PrincipalTag/project}",
                                        "aws:PrincipalAccount": "${aws:PrincipalAccount, 'none'}"}}}]})
    ).key_metadata.key_id


def test_abac_by_matching_tags_on_a_ledger(kms: KeyLedger) -> None:
    alpha, beta = project_key(kms, "alpha"), project_key(kms, "beta")
    kms.create_user("alice", tags={"project": "alpha"})
    kms.create_user("bob")
    alice_arn = f"arn:aws:iam::{keyledger.DEFAULT_ACCOUNT}:user/alice"
    alice = kms.as_caller(alice_arn)
    blob = alice.encrypt(alpha, b"x").ciphertext_blob
    with pytest.raises(AccessDeniedException):
        alice.encrypt(beta, b"x")
    with pytest.raises(AccessDeniedException):   # no project tag: the variable has no value
        kms.as_caller(f"arn:aws:iam::{keyledger.DEFAULT_ACCOUNT}:user/bob").decrypt(blob)
    kms.tag_principal(alice_arn, {"project": "beta"})  # takes effect on the next call
    alice.encrypt(beta, b"x")
    with pytest.raises(AccessDeniedException):
        alice.decrypt(blob)
    assert kms.simulate_policy(alice_arn, "kms:Encrypt", key_id=beta)["Decision"] == "allowed"
    assert kms.simulate_policy(alice_arn, "kms:Encrypt", key_id=alpha)["Decision"] == "denied"
    kms.tag_resource(alpha, {"project": "beta"})       # so does a key's
    assert alice.decrypt(blob).plaintext == b"x"
    with kms.store.snapshot() as snap:
        assert replay.check(snap).ok
