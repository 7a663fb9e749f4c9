"""STS AssumeRole: a role's trust policy decides who may assume it; the
session (`arn:aws:sts::A:assumed-role/ROLE/NAME`) acts with the role's
identity policies and is named by every key policy and grant that names
the role; its temporary credentials are a secret and a session token sealed
under the root key, which authenticate until the session expires, the role
is deleted (or made again), or the root key is rotated. Nothing secret
reaches the log."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from clockkit import Clock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keyledger
from keyledger import events as ev
from keyledger import forensics
from keyledger import policy as authz
from keyledger.projections import replay
from keyledger.errors import (
    AccessDeniedException,
    ExpiredTokenException,
    MalformedPolicyDocumentException,
    NotFoundException,
    UnrecognizedClientException,
    ValidationException,
)
from keyledger.service import KeyLedger

ACCOUNT = keyledger.DEFAULT_ACCOUNT
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
APP = f"arn:aws:iam::{ACCOUNT}:role/app"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/job-1"


def trust(*principals: str, condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": list(principals)},
                                 "Action": "sts:AssumeRole"}
    if condition is not None:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def allow(*actions: str, resource: str = "*") -> str:
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}]})


@pytest.fixture()
def world(kms: KeyLedger) -> KeyLedger:
    kms.create_user("alice")
    kms.create_user("bob")
    kms.create_role("app", trust(ALICE))
    return kms


def test_the_trust_policy_decides_and_the_session_is_who_sts_says(world: KeyLedger, clock: Clock) -> None:
    made = world.as_caller(ALICE).assume_role(APP, "job-1")
    creds = made.credentials
    assert made.assumed_role_user.arn == SESSION
    role_id = world.get_role("app").user_id
    assert role_id.startswith("AROA") and made.assumed_role_user.assumed_role_id == f"{role_id}:job-1"
    assert creds.access_key_id.startswith("ASIA") and len(creds.access_key_id) == 20
    assert len(creds.secret_access_key.reveal()) == 40
    assert creds.expiration == clock.now + timedelta(hours=1)  # IAM's default
    assert "redacted" in repr(made) and creds.secret_access_key.reveal().decode() not in repr(made)
    principal, secret, expires, issued = world.session_credentials(
        creds.access_key_id, creds.session_token.reveal().decode())  # type: ignore[misc]
    assert (principal, secret.reveal(), expires, issued) == (SESSION, creds.secret_access_key.reveal(),
                                                             clock.us + 3600 * 10**6, clock.us)
    # bob is not in the trust policy, and the trust policy does not delegate to IAM
    world.put_principal_policy(BOB, "assume", allow("sts:AssumeRole"))
    with pytest.raises(AccessDeniedException) as refused:
        world.as_caller(BOB).assume_role(APP, "job-2")
    assert refused.value.message.startswith(f"User: {BOB} is not authorized to perform: sts:AssumeRole on "
                                            f"resource: {APP} because")
    with pytest.raises(AccessDeniedException, match="Roles may not be assumed by root accounts."):
        world.assume_role(APP, "root-session")
    for missing in (f"arn:aws:iam::{ACCOUNT}:role/nope", f"arn:aws:iam::{ACCOUNT}:user/alice",
                    "arn:aws:iam::999999999999:role/app"):
        with pytest.raises(AccessDeniedException):
            world.as_caller(ALICE).assume_role(missing, "x1")
    world.create_role("untrusting")  # made without a trust policy: nobody assumes it
    with pytest.raises(AccessDeniedException):
        world.as_caller(ALICE).assume_role(f"arn:aws:iam::{ACCOUNT}:role/untrusting", "x1")


def test_a_trust_policy_naming_the_account_delegates_to_iam(world: KeyLedger) -> None:
    world.create_role("shared", trust(ROOT, condition={"StringEquals": {"sts:ExternalId": "ticket-42"}}))
    shared = f"arn:aws:iam::{ACCOUNT}:role/shared"
    bob = world.as_caller(BOB)
    with pytest.raises(AccessDeniedException, match="because no identity-based policy allows"):
        bob.assume_role(shared, "s1", external_id="ticket-42")
    world.put_principal_policy(BOB, "assume", allow("sts:AssumeRole", resource=shared))
    assert bob.assume_role(shared, "s1", external_id="ticket-42").assumed_role_user.arn.endswith("/shared/s1")
    for wrong in (None, "ticket-43"):
        with pytest.raises(AccessDeniedException):
            bob.assume_role(shared, "s1", external_id=wrong)
    world.put_principal_policy(BOB, "no", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    with pytest.raises(AccessDeniedException, match="explicit deny in an identity-based policy"):
        bob.assume_role(shared, "s1", external_id="ticket-42")


def test_the_session_acts_as_the_role(world: KeyLedger) -> None:
    key_policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": APP}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
         "Condition": {"ArnEquals": {"aws:PrincipalArn": APP}}}]})
    named = world.create_key(policy=key_policy).key_metadata.key_id
    delegated = world.create_key().key_metadata.key_id  # the default policy: IAM decides
    granted = world.create_key().key_metadata.key_id
    grant_id = world.create_grant(granted, APP, ["Encrypt", "RetireGrant"]).grant_id
    session = world.as_caller(SESSION)
    blob = session.encrypt(named, b"by name").ciphertext_blob  # the key policy names the role
    assert session.decrypt(blob).plaintext == b"by name"
    session.encrypt(granted, b"by grant")  # the grant's grantee is the role
    with pytest.raises(AccessDeniedException, match="because no identity-based policy allows"):
        session.encrypt(delegated, b"x")
    world.put_principal_policy(APP, "use", allow("kms:Encrypt"))  # the role's identity policy is the session's
    session.encrypt(delegated, b"by the role's policy")
    record = list(world.store.records())[-1]
    assert (record.principal, record.operation) == (SESSION, "Encrypt")
    simulated = world.simulate_policy(SESSION, "kms:Encrypt", key_id=delegated)  # the simulator agrees
    assert simulated["Decision"] == "allowed" and simulated["MatchedStatements"][-1]["Source"] != "grant"
    with world.store.snapshot() as snap:  # and so does forensics' who-can, for a session a policy names
        who = forensics.who_can(snap, named, "kms:Encrypt", region="us-east-1", account=ACCOUNT)
    assert {"principal": APP, "reason": "the key policy allows the principal"} in who["allowed"]
    # another role's session is none of these
    world.create_role("other", trust(ALICE))
    other = world.as_caller(f"arn:aws:sts::{ACCOUNT}:assumed-role/other/job-1")
    for key in (named, delegated, granted):
        with pytest.raises(AccessDeniedException):
            other.encrypt(key, b"x")
    world.delete_principal_policy(APP, "use")
    session.encrypt(granted, b"by grant, still")
    session.retire_grant(key_id=granted, grant_id=grant_id)  # the grantee's RetireGrant, through its role
    with pytest.raises(AccessDeniedException):
        session.encrypt(granted, b"x")


def test_a_session_ends_at_its_expiry_with_its_role_and_with_the_root_key(world: KeyLedger, clock: Clock) -> None:
    alice = world.as_caller(ALICE)
    creds = alice.assume_role(APP, "short", duration_seconds=900).credentials
    ident, token = creds.access_key_id, creds.session_token.reveal().decode()
    assert world.session_credentials(ident, token) is not None
    assert world.session_credentials("ASIA" + "A" * 16, token) is None  # the token names its own key id
    clock.advance(seconds=899)
    assert world.session_credentials(ident, token) is not None
    clock.advance(seconds=1)
    with pytest.raises(ExpiredTokenException, match="The security token included in the request is expired"):
        world.session_credentials(ident, token)
    # deleted, and made again with the same name: the old sessions are not the new role's
    creds = alice.assume_role(APP, "long").credentials
    ident, token = creds.access_key_id, creds.session_token.reveal().decode()
    world.delete_role("app")
    assert world.session_credentials(ident, token) is None
    world.create_role("app", trust(ALICE))
    assert world.session_credentials(ident, token) is None
    creds = alice.assume_role(APP, "fresh").credentials
    ident, token = creds.access_key_id, creds.session_token.reveal().decode()
    assert world.session_credentials(ident, token) is not None
    world.rotate_root_key()
    assert world.session_credentials(ident, token) is None


def test_older_sessions_are_revoked_as_aws_revokes_them(world: KeyLedger, clock: Clock) -> None:
    """IAM's "revoke active sessions": a role policy denying everything to
    credentials issued before a moment (aws:TokenIssueTime). A session
    known by its credentials (`as_session`, as the server knows one) carries
    the issue time; the policy ends the older sessions and spares the newer."""
    world.put_principal_policy(APP, "use", allow("kms:*"))
    key = world.create_key().key_metadata.key_id
    old = world.as_caller(ALICE).assume_role(APP, "job-1").credentials
    older = world.as_session(old.access_key_id, old.session_token.reveal().decode())
    assert older.caller == SESSION and older.token_issued == clock.us
    older.encrypt(key, b"x")
    clock.now += timedelta(minutes=5)
    cutoff = clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    world.put_principal_policy(APP, "AWSRevokeOlderSessions", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": ["*"], "Resource": ["*"],
         "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff}}}]}))
    clock.now += timedelta(seconds=1)
    new = world.as_caller(ALICE).assume_role(APP, "job-1").credentials
    newer = world.as_session(new.access_key_id, new.session_token.reveal().decode())
    with pytest.raises(AccessDeniedException, match="explicit deny in an identity-based policy"):
        older.encrypt(key, b"x")
    newer.encrypt(key, b"x")
    # known only from the credentials: the ARN alone carries no issue time, so the condition cannot hold
    world.as_caller(SESSION).encrypt(key, b"x")
    with pytest.raises(UnrecognizedClientException):
        world.as_session(new.access_key_id, "KLST1" + "A" * 40)
    clock.now += timedelta(hours=2)
    with pytest.raises(ExpiredTokenException):
        world.as_session(new.access_key_id, new.session_token.reveal().decode())


def test_a_token_made_before_tokens_held_their_issue_time_still_opens(world: KeyLedger, clock: Clock) -> None:
    """Tokens sealed before the issue time was added (six claims) keep
    working until they expire; they carry no aws:TokenIssueTime."""
    import msgspec
    from keyledger import crypto
    from keyledger.projections import principal_row
    with world.store.snapshot() as snap:
        created = snap.get("principals", principal_row(APP)).created
    claims = ["ASIA" + "B" * 16, "s" * 40, APP, created, "old", clock.us + 600 * 10**6]
    sealed = crypto.seal_session_token(world._root, msgspec.msgpack.encode(claims), nonce=b"\x01" * 12)
    token = "KLST1" + base64.b64encode(sealed).decode()
    principal, secret, expires, issued = world.session_credentials(claims[0], token)  # type: ignore[misc]
    assert (principal, secret.reveal(), issued) == (f"arn:aws:sts::{ACCOUNT}:assumed-role/app/old", b"s" * 40, None)
    assert world.as_session(claims[0], token).token_issued is None


def test_a_forged_or_altered_token_is_nobody(world: KeyLedger) -> None:
    creds = world.as_caller(ALICE).assume_role(APP, "s1").credentials
    ident, token = creds.access_key_id, creds.session_token.reveal().decode()
    sealed = bytearray(base64.b64decode(token[5:]))
    for i in (0, 5, 20, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[i] ^= 1
        assert world.session_credentials(ident, "KLST1" + base64.b64encode(bytes(altered)).decode()) is None
    for junk in ("", "KLST1", "KLST1!!!!", "AQoDYXdzEJr...", token[:-4], "KLST1" + "A" * 5000):
        assert world.session_credentials(ident, junk) is None


def test_limits_and_names_are_stss(world: KeyLedger) -> None:
    alice = world.as_caller(ALICE)
    for bad, member in (("x", "roleSessionName"), ("a" * 65, "roleSessionName"), ("has space", "roleSessionName")):
        with pytest.raises(ValidationException, match=f"at '{member}' failed to satisfy constraint"):
            alice.assume_role(APP, bad)
    for seconds, wording in ((899, "greater than or equal to 900"), (43201, "less than or equal to 43200")):
        with pytest.raises(ValidationException, match=wording):
            alice.assume_role(APP, "s1", duration_seconds=seconds)
    with pytest.raises(ValidationException, match="exceeds the MaxSessionDuration set for this role"):
        alice.assume_role(APP, "s1", duration_seconds=3601)
    world.create_role("long", trust(ALICE, SESSION), max_session_duration=43200)
    long_role = f"arn:aws:iam::{ACCOUNT}:role/long"
    assert alice.assume_role(long_role, "s1", duration_seconds=43200).credentials.expiration is not None
    # role chaining: a session may assume a role that trusts it, for an hour at most
    chained = world.as_caller(SESSION)
    with pytest.raises(ValidationException, match="1 hour session limit for roles assumed by role chaining"):
        chained.assume_role(long_role, "s2", duration_seconds=7200)
    assert chained.assume_role(long_role, "s2").assumed_role_user.arn.endswith(":assumed-role/long/s2")
    with pytest.raises(ValidationException, match="maxSessionDuration"):
        world.create_role("short", trust(ALICE), max_session_duration=3599)


def test_trust_policies_are_checked_and_updated(world: KeyLedger) -> None:
    with_resource = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:AssumeRole", "Resource": "*"}]})
    for bad in (with_resource, "{", allow("sts:AssumeRole"), trust(f"arn:aws:iam::{ACCOUNT}:user/ghost")):
        with pytest.raises(MalformedPolicyDocumentException):
            world.create_role("bad", bad)
    with pytest.raises(NotFoundException):
        world.get_role("bad")
    world.update_assume_role_policy("app", trust(BOB))
    assert json.loads(world.get_role("app").assume_role_policy_document or "")["Statement"][0]["Principal"] == \
        {"AWS": [BOB]}
    with pytest.raises(AccessDeniedException):
        world.as_caller(ALICE).assume_role(APP, "s1")
    world.as_caller(BOB).assume_role(APP, "s1")
    with pytest.raises(NotFoundException):
        world.update_assume_role_policy("ghost", trust(BOB))


def test_the_log_has_who_assumed_what_and_no_secret(world: KeyLedger, tmp_path: Any) -> None:
    made = world.as_caller(ALICE).assume_role(APP, "audited")
    record = list(world.store.records())[-1]
    assert (record.principal, record.operation) == (ALICE, "AssumeRole")
    assert record.event == ev.RoleAssumed(APP, "audited", made.credentials.access_key_id,
                                          ev.to_us(made.credentials.expiration))
    with pytest.raises(AccessDeniedException):
        world.as_caller(BOB).assume_role(APP, "refused")
    refused = list(world.store.records())[-1]
    assert (refused.principal, refused.operation, type(refused.event)) == (BOB, "AssumeRole", ev.RequestDenied)
    data = (Path(world.store.path) / "data.mdb").read_bytes()
    for secret in (made.credentials.secret_access_key.reveal(), made.credentials.session_token.reveal()):
        assert secret not in data
    # and replay rebuilds the same roles (trust policies, session limits) from the log
    world.update_assume_role_policy("app", trust(BOB))
    with world.store.snapshot() as snap:
        assert replay.check(snap).ok


# -- the evaluator: a session is its role wherever a principal is matched ---------------------------

NAMES = st.sampled_from([APP, SESSION, f"arn:aws:iam::{ACCOUNT}:role/other", ROOT, ALICE, "*",
                         f"arn:aws:sts::{ACCOUNT}:assumed-role/app/job-2"])


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAMES, min_size=1, max_size=3), effect=st.sampled_from(["Allow", "Deny"]),
       not_principal=st.booleans())
def test_a_session_matches_exactly_what_names_it_or_its_role(names: list[str], effect: str,
                                                              not_principal: bool) -> None:
    element = "NotPrincipal" if not_principal else "Principal"
    policy = authz.parse(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": effect, element: {"AWS": names}, "Action": "kms:Encrypt", "Resource": "*"}]}))
    request = authz.Request(SESSION, "kms:Encrypt", "arn:aws:kms:us-east-1:1:key/k",
                            authz.request_context(SESSION, clockless()))
    named = any(n in ("*", SESSION, APP) for n in names)
    decision = authz.evaluate(request, key_policy=policy, iam_policies=[])
    matched = named != not_principal
    assert decision.allowed == (matched and effect == "Allow")
    # and the role itself is decided the same way (a session never has more than its role)
    as_role = authz.evaluate(authz.Request(APP, "kms:Encrypt", request.resource,
                                           authz.request_context(APP, clockless())), key_policy=policy,
                             iam_policies=[])
    if SESSION not in names and "arn:aws:sts::" not in "".join(names):
        assert as_role.allowed == decision.allowed


def clockless() -> Any:
    from datetime import datetime, timezone
    return datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_who_am_i_needs_no_permission_and_is_recorded(world: KeyLedger) -> None:
    world.put_principal_policy(BOB, "nothing", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "*", "Resource": "*"}]}))
    bob_id, app_id = world.get_user(BOB).user_id, world.get_role("app").user_id
    assert bob_id.startswith("AIDA") and app_id.startswith("AROA") and len(bob_id) == len(app_id) == 21
    for caller, wanted in ((BOB, (bob_id, ACCOUNT, BOB)), (ROOT, (ACCOUNT, ACCOUNT, ROOT)),
                           (SESSION, (app_id + ":job-1", ACCOUNT, SESSION))):
        found = world.as_caller(caller).get_caller_identity()
        assert (found.user_id, found.account, found.arn) == wanted
        record = list(world.store.records())[-1]
        assert (record.principal, record.operation, record.event) == \
            (caller, "GetCallerIdentity", ev.MetadataRead("GetCallerIdentity"))
