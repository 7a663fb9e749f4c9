"""Roles on `keyledger serve`, as AWS workloads use them: IAM's CreateRole
(with a trust policy) and role policies, STS's AssumeRole, and KMS requests
signed with the temporary credentials it returns (`X-Amz-Security-Token`),
all from unmodified boto3 clients and the AWS CLI against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from keyledger import events as ev
from serverkit import ACCOUNT, REGION, Server

AWS = str(Path(sys.executable).parent / "aws")
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ONE_TRY = Config(retries={"total_max_attempts": 1})


def trust(*principals: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": "sts:AssumeRole"}]})


class Skew:
    """The ledger's clock, ahead of the wall clock by `ahead` (SigV4 keeps the wall clock)."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.ahead


@pytest.fixture(scope="module")
def skew() -> Skew:
    return Skew()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, skew: Skew) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("sts-ledger"), clock=skew)
    yield srv
    srv.stop()


def client(server: Server, service: str, who: str = "root", **credentials: str) -> Any:
    if not credentials:
        key = server.access[who]
        credentials = {"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key}
    return boto3.client(service, endpoint_url=server.url, region_name=REGION, config=ONE_TRY, **credentials)


def as_session(server: Server, service: str, made: dict[str, Any]) -> Any:
    c = made["Credentials"]
    return client(server, service, aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                  aws_session_token=c["SessionToken"])


def test_a_workload_assumes_a_role_and_uses_a_key_through_it(server: Server) -> None:
    iam = client(server, "iam")
    made = iam.create_role(RoleName="worker", AssumeRolePolicyDocument=trust(BOB),
                           Description="batch jobs", MaxSessionDuration=7200)["Role"]
    role = f"arn:aws:iam::{ACCOUNT}:role/worker"
    assert (made["Arn"], made["RoleName"], made["Path"], made["MaxSessionDuration"]) == (role, "worker", "/", 7200)
    assert made["RoleId"].startswith("AROA")
    # botocore hands the URL-encoded trust policy back as a dict
    assert iam.get_role(RoleName="worker")["Role"]["AssumeRolePolicyDocument"] == json.loads(trust(BOB))
    kms = client(server, "kms")
    key_id = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": role}, "Action": ["kms:Encrypt", "kms:Decrypt"],
         "Resource": "*"}]}))["KeyMetadata"]["KeyId"]

    sts = client(server, "sts", "bob")
    start = server.head()
    assumed = sts.assume_role(RoleArn=role, RoleSessionName="nightly", DurationSeconds=5400)
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/nightly"
    assert assumed["AssumedRoleUser"] == {"Arn": session_arn, "AssumedRoleId": f"{made['RoleId']}:nightly"}
    creds = assumed["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["SecretAccessKey"]) == 40
    left = creds["Expiration"] - datetime.now(timezone.utc)
    assert timedelta(minutes=85) < left <= timedelta(minutes=90)
    (record,) = [r for r in server.records(start) if r.operation == "AssumeRole"]
    assert record.principal == BOB and record.event == ev.RoleAssumed(role, "nightly", creds["AccessKeyId"],
                                                                      ev.to_us(creds["Expiration"]))

    who = as_session(server, "sts", assumed).get_caller_identity()
    assert (who["Arn"], who["UserId"], who["Account"]) == (session_arn, f"{made['RoleId']}:nightly", ACCOUNT)
    worker = as_session(server, "kms", assumed)
    blob = worker.encrypt(KeyId=key_id, Plaintext=b"payroll")["CiphertextBlob"]
    assert worker.decrypt(CiphertextBlob=blob)["Plaintext"] == b"payroll"
    assert server.records()[-1].principal == session_arn
    with pytest.raises(ClientError) as refused:  # the key policy names Encrypt and Decrypt only
        worker.disable_key(KeyId=key_id)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert refused.value.response["Error"]["Message"].startswith(f"User: {session_arn} is not authorized")
    # the role's own policies are the session's: through the default key policy, IAM decides
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError):
        worker.describe_key(KeyId=other)
    iam.put_role_policy(RoleName="worker", PolicyName="describe", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*"}]}))
    assert iam.list_role_policies(RoleName="worker")["PolicyNames"] == ["describe"]
    assert iam.get_role_policy(RoleName="worker", PolicyName="describe")["RoleName"] == "worker"
    assert worker.describe_key(KeyId=other)["KeyMetadata"]["KeyId"] == other
    iam.delete_role_policy(RoleName="worker", PolicyName="describe")
    with pytest.raises(ClientError) as gone:
        iam.get_role_policy(RoleName="worker", PolicyName="describe")
    assert gone.value.response["Error"]["Code"] == "NoSuchEntity"
    assert gone.value.response["Error"]["Message"] == "The role policy with name describe cannot be found."


def test_who_may_assume_and_what_sts_answers_otherwise(server: Server) -> None:
    iam = client(server, "iam")
    iam.create_role(RoleName="narrow", AssumeRolePolicyDocument=trust(ALICE))
    role = f"arn:aws:iam::{ACCOUNT}:role/narrow"
    for who, wanted in (("bob", f"User: {BOB} is not authorized to perform: sts:AssumeRole on resource: {role}"),
                        ("root", "Roles may not be assumed by root accounts.")):
        with pytest.raises(ClientError) as refused:
            client(server, "sts", who).assume_role(RoleArn=role, RoleSessionName="s1")
        error = refused.value.response["Error"]
        assert (refused.value.response["ResponseMetadata"]["HTTPStatusCode"], error["Code"]) == (403, "AccessDenied")
        assert error["Message"].startswith(wanted)
    with pytest.raises(ClientError) as refused:
        client(server, "sts", "alice").assume_role(RoleArn=role, RoleSessionName="s1", DurationSeconds=7200)
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert "exceeds the MaxSessionDuration" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as refused:  # a session policy would be ignored: refused in words instead
        client(server, "sts", "alice").assume_role(RoleArn=role, RoleSessionName="s1", Policy=trust(ALICE))
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert "not served" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as refused:  # a trust policy with Resource is no trust policy
        iam.create_role(RoleName="bad", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:AssumeRole", "Resource": "*"}]}))
    assert refused.value.response["Error"]["Code"] == "MalformedPolicyDocument"
    iam.update_assume_role_policy(RoleName="narrow", PolicyDocument=trust(BOB))
    client(server, "sts", "bob").assume_role(RoleArn=role, RoleSessionName="s1")


def test_a_token_that_is_not_ours_or_not_its_keys_is_refused(server: Server) -> None:
    client(server, "iam").create_role(RoleName="tokens", AssumeRolePolicyDocument=trust(ALICE))
    role = f"arn:aws:iam::{ACCOUNT}:role/tokens"
    first = client(server, "sts", "alice").assume_role(RoleArn=role, RoleSessionName="one")
    second = client(server, "sts", "alice").assume_role(RoleArn=role, RoleSessionName="two")
    swapped = {"Credentials": {**first["Credentials"], "SessionToken": second["Credentials"]["SessionToken"]}}
    forged = {"Credentials": {**first["Credentials"], "SessionToken": "FQoGZXIvYXdzEJr//////////forged"}}
    no_token = {"Credentials": {**first["Credentials"], "SessionToken": None}}
    for made in (swapped, forged):
        with pytest.raises(ClientError) as refused:
            as_session(server, "kms", made).list_keys()
        assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
    c = no_token["Credentials"]
    with pytest.raises(ClientError) as refused:
        client(server, "kms", aws_access_key_id=c["AccessKeyId"],
               aws_secret_access_key=c["SecretAccessKey"]).list_keys()
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
    # a session of a deleted role is nobody (within the server's one-second memory of a good session)
    worker = as_session(server, "kms", first)
    client(server, "iam").delete_role(RoleName="tokens")
    time.sleep(1.1)
    with pytest.raises(ClientError) as refused:
        worker.list_keys()
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_a_session_expires(server: Server, skew: Skew) -> None:
    client(server, "iam").create_role(RoleName="brief", AssumeRolePolicyDocument=trust(ALICE))
    made = client(server, "sts", "alice").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/brief",
                                                      RoleSessionName="brief", DurationSeconds=900)
    sts = as_session(server, "sts", made)
    assert sts.get_caller_identity()["Arn"].endswith(":assumed-role/brief/brief")
    kms = as_session(server, "kms", made)
    try:
        skew.ahead = timedelta(seconds=901)
        with pytest.raises(ClientError) as expired:
            kms.list_keys()
        assert expired.value.response["Error"] == {
            "Code": "ExpiredTokenException", "Message": "The security token included in the request is expired"}
        with pytest.raises(ClientError) as expired:
            sts.get_caller_identity()
        assert expired.value.response["Error"]["Code"] == "ExpiredToken"
    finally:
        skew.ahead = timedelta()


def test_the_aws_cli_assumes_a_role(server: Server, tmp_path: Path) -> None:
    client(server, "iam").create_role(RoleName="cli", AssumeRolePolicyDocument=trust(ALICE))
    key = server.access["alice"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key.access_key_id, "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
           "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    out = subprocess.run([AWS, "sts", "assume-role", "--endpoint-url", server.url, "--role-arn",
                          f"arn:aws:iam::{ACCOUNT}:role/cli", "--role-session-name", "from-cli"],
                         capture_output=True, text=True, env=env, timeout=60, check=True)
    made = json.loads(out.stdout)
    c = made["Credentials"]
    env.update(AWS_ACCESS_KEY_ID=c["AccessKeyId"], AWS_SECRET_ACCESS_KEY=c["SecretAccessKey"],
               AWS_SESSION_TOKEN=c["SessionToken"])
    out = subprocess.run([AWS, "sts", "get-caller-identity", "--endpoint-url", server.url],
                         capture_output=True, text=True, env=env, timeout=60, check=True)
    assert json.loads(out.stdout)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/cli/from-cli"


def test_a_caller_who_proves_no_identity_to_sts_is_on_record(server: Server) -> None:
    key = server.access["alice"]
    sts = client(server, "sts", aws_access_key_id=key.access_key_id, aws_secret_access_key="wrong" * 8)
    start = server.head()
    with pytest.raises(ClientError) as refused:
        sts.get_caller_identity()
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    request_id = refused.value.response["ResponseMetadata"]["RequestId"]
    summary = server.summary_of(request_id, start)
    assert (summary.event.error_code, summary.event.count) == ("InvalidSignatureException", 1)
    assert key.access_key_id in summary.event.access_key_ids


def test_every_sts_request_is_on_record(server: Server) -> None:
    sts = client(server, "sts", "bob")
    start = server.head()
    who = sts.get_caller_identity()
    assert (who["Arn"], who["Account"]) == (BOB, ACCOUNT)
    with pytest.raises(ClientError) as refused:
        sts.get_session_token()
    assert refused.value.response["Error"]["Code"] == "InvalidAction"
    records = server.records(start)
    assert [(r.principal, r.operation, type(r.event).__name__) for r in records] == [
        (BOB, "GetCallerIdentity", "MetadataRead"), (BOB, "GetSessionToken", "RequestDenied")]
    assert records[0].request_id == who["ResponseMetadata"]["RequestId"]
    assert records[1].event.error_code == "InvalidAction"


def test_an_unexpected_failure_is_on_record_and_answered_as_internal_failure(server: Server) -> None:
    real = server.app._plan_call

    def failing(principal: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "get_caller_identity":
            raise RuntimeError("a bug")
        return real(principal, method, *args, **kwargs)
    server.app._plan_call = failing  # type: ignore[method-assign]
    start = server.head()
    try:
        with pytest.raises(ClientError) as failed:
            client(server, "sts", "bob").get_caller_identity()
    finally:
        server.app._plan_call = real  # type: ignore[method-assign]
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert failed.value.response["Error"]["Code"] == "InternalFailure"
    assert "a bug" not in failed.value.response["Error"]["Message"]
    (record,) = server.records(start)
    assert (record.principal, record.event.error_code) == (BOB, "KMSInternalException")
    assert record.request_id == failed.value.response["ResponseMetadata"]["RequestId"]


def test_tags_on_users_and_roles_decide_through_the_endpoint(server: Server) -> None:
    """ABAC as AWS documents it for KMS: a key usable by whoever is tagged
    team=payments; the tags set with IAM's TagUser / TagRole through boto3."""
    iam = client(server, "iam")
    kms = client(server, "kms")
    key_id = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": "payments"}}}]}))["KeyMetadata"]["KeyId"]
    bob = client(server, "kms", "bob")
    with pytest.raises(ClientError):
        bob.encrypt(KeyId=key_id, Plaintext=b"x")
    iam.tag_user(UserName="bob", Tags=[{"Key": "team", "Value": "payments"}, {"Key": "env", "Value": "prod"}])
    assert iam.list_user_tags(UserName="bob")["Tags"] == [{"Key": "env", "Value": "prod"},
                                                          {"Key": "team", "Value": "payments"}]
    bob.encrypt(KeyId=key_id, Plaintext=b"x")
    iam.untag_user(UserName="bob", TagKeys=["team"])
    with pytest.raises(ClientError):
        bob.encrypt(KeyId=key_id, Plaintext=b"x")
    made_role = iam.create_role(RoleName="tagged", AssumeRolePolicyDocument=trust(BOB),
                                Tags=[{"Key": "team", "Value": "payments"}])["Role"]
    assert made_role["Tags"] == [{"Key": "team", "Value": "payments"}]  # as IAM answers CreateRole with tags
    assert iam.list_role_tags(RoleName="tagged")["Tags"] == [{"Key": "team", "Value": "payments"}]
    assert iam.get_role(RoleName="tagged")["Role"]["Tags"] == [{"Key": "team", "Value": "payments"}]
    assert all("Tags" not in role for role in iam.list_roles()["Roles"])  # IAM's lists leave tags out
    assert iam.get_user(UserName="bob")["User"]["Tags"] == [{"Key": "env", "Value": "prod"}]
    assert "Tags" not in iam.get_user(UserName="alice")["User"]  # none: no Tags member
    made = client(server, "sts", "bob").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/tagged",
                                                    RoleSessionName="abac")
    as_session(server, "kms", made).encrypt(KeyId=key_id, Plaintext=b"as the role")
    iam.untag_role(RoleName="tagged", TagKeys=["team"])
    iam.tag_role(RoleName="tagged", Tags=[{"Key": "team", "Value": "marketing"}])
    with pytest.raises(ClientError):
        as_session(server, "kms", made).encrypt(KeyId=key_id, Plaintext=b"x")
    with pytest.raises(ClientError) as refused:
        iam.tag_user(UserName="bob", Tags=[{"Key": "aws:team", "Value": "x"}])
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError) as refused:
        iam.list_user_tags(UserName="nobody")
    assert refused.value.response["Error"]["Message"] == "The user with name nobody cannot be found."


def test_one_key_policy_for_every_project_through_the_endpoint(server: Server) -> None:
    """Policy variables through boto3: a key tagged project=X is usable by
    whoever (a user, or a session of a role) carries the tag project=X; the
    tags and the policy are set with IAM's and KMS's own calls."""
    iam, kms = client(server, "iam"), client(server, "kms")
    abac = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/project": "${aws:PrincipalTag/project}"}}}]})
    keys = {project: kms.create_key(Policy=abac, Tags=[{"TagKey": "project", "TagValue": project}])
            ["KeyMetadata"]["KeyId"] for project in ("apollo", "gemini")}
    iam.create_role(RoleName="apollo-app", AssumeRolePolicyDocument=trust(BOB),
                    Tags=[{"Key": "project", "Value": "apollo"}])
    made = client(server, "sts", "bob").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/apollo-app",
                                                    RoleSessionName="batch")
    session = as_session(server, "kms", made)
    blob = session.encrypt(KeyId=keys["apollo"], Plaintext=b"x")["CiphertextBlob"]
    assert session.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    with pytest.raises(ClientError) as refused:
        session.encrypt(KeyId=keys["gemini"], Plaintext=b"x")
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    bob = client(server, "kms", "bob")
    with pytest.raises(ClientError):  # bob carries no project tag: the variable has no value
        bob.decrypt(CiphertextBlob=blob)
    iam.tag_user(UserName="bob", Tags=[{"Key": "project", "Value": "apollo"}])
    assert bob.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    iam.untag_user(UserName="bob", TagKeys=["project"])


def test_revoking_older_sessions_as_the_iam_console_does(server: Server, skew: Skew) -> None:
    """aws:TokenIssueTime comes from the session token the request was signed
    with: IAM's "revoke active sessions" policy ends the sessions issued
    before its moment, over the endpoint, and spares those issued after."""
    iam, kms = client(server, "iam"), client(server, "kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    iam.create_role(RoleName="revocable", AssumeRolePolicyDocument=trust(BOB))
    iam.put_role_policy(RoleName="revocable", PolicyName="use", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}))
    sts = client(server, "sts", "bob")
    role = f"arn:aws:iam::{ACCOUNT}:role/revocable"
    old = as_session(server, "kms", sts.assume_role(RoleArn=role, RoleSessionName="old"))
    old.encrypt(KeyId=key_id, Plaintext=b"x")
    time.sleep(1.1)  # the policy's moment is whole seconds after the old session's issue
    cutoff = skew().strftime("%Y-%m-%dT%H:%M:%SZ")  # the ledger's clock
    iam.put_role_policy(RoleName="revocable", PolicyName="AWSRevokeOlderSessions", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": ["*"], "Resource": ["*"],
                                                 "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff}}}]}))
    time.sleep(1.1)
    new = as_session(server, "kms", sts.assume_role(RoleArn=role, RoleSessionName="new"))
    with pytest.raises(ClientError) as refused:
        old.encrypt(KeyId=key_id, Plaintext=b"x")
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "explicit deny in an identity-based policy" in refused.value.response["Error"]["Message"]
    new.encrypt(KeyId=key_id, Plaintext=b"x")


def test_what_create_role_and_create_user_do_not_serve_is_refused_in_words(server: Server) -> None:
    iam = client(server, "iam")
    for call in (lambda: iam.create_role(RoleName="pathed", AssumeRolePolicyDocument=trust(BOB), Path="/team/"),
                 lambda: iam.create_user(UserName="bounded",
                                         PermissionsBoundary=f"arn:aws:iam::{ACCOUNT}:policy/boundary")):
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "ValidationError"
        assert "not served" in refused.value.response["Error"]["Message"] or \
            "no permissions boundary" in refused.value.response["Error"]["Message"]
    assert "pathed" not in [r["RoleName"] for r in iam.list_roles()["Roles"]]
