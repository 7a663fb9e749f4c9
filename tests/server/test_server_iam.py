"""IAM on `keyledger serve`: the query protocol (`Action=...&Version=2010-05-08`,
SigV4 scoped to `iam`) answered in IAM's XML, driven by an unmodified
`boto3.client("iam")` and the AWS CLI. Users, inline policies and access
keys made here count at once: a key issued through IAM signs KMS requests
on the same server with no restart and no credentials file change, and
stops when it is switched off."""

from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import boto3
import msgspec
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError
from keyledger import events as ev
from serverkit import ACCOUNT, ALL_KMS, REGION, Server

AWS = str(Path(sys.executable).parent / "aws")
NS = "https://iam.amazonaws.com/doc/2010-05-08/"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
POLICY = {"Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}]}


def _check_xml(http_response: Any, model: Any, **_: Any) -> None:
    """Every answer is IAM's XML: `<XResponse>` (with `<XResult>` when the
    action has output) and a request id, or an `ErrorResponse`."""
    assert http_response.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(http_response.content)
    request_id = http_response.headers["x-amzn-requestid"]
    if http_response.status_code >= 400:
        assert root.tag == f"{{{NS}}}ErrorResponse"
        assert [c.tag for c in root] == [f"{{{NS}}}Error", f"{{{NS}}}RequestId"]
        assert root.findtext(f"{{{NS}}}RequestId") == request_id
        assert "Traceback" not in http_response.content.decode()
        return
    assert root.tag == f"{{{NS}}}{model.name}Response"
    assert root.findtext(f"{{{NS}}}ResponseMetadata/{{{NS}}}RequestId") == request_id
    assert (root.find(f"{{{NS}}}{model.name}Result") is not None) == (model.output_shape is not None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("iam-ledger"))
    yield srv
    srv.stop()


def iam(server: Server, who: str = "root", *, key_id: str | None = None, secret: str | None = None,
        region: str = REGION) -> Any:
    key = server.access.get(who)
    client = boto3.client("iam", endpoint_url=server.url, region_name=region,
                          aws_access_key_id=key_id or key.access_key_id,  # type: ignore[union-attr]
                          aws_secret_access_key=secret or key.secret_access_key,  # type: ignore[union-attr]
                          config=Config(retries={"total_max_attempts": 1}))
    client.meta.events.register("after-call.iam", _check_xml)
    return client


def kms_with(server: Server, key: dict[str, str]) -> Any:
    return boto3.client("kms", endpoint_url=server.url, region_name=REGION,
                        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                        config=Config(retries={"total_max_attempts": 1}))


def post_form(server: Server, body: str, *, service: str = "iam") -> tuple[int, bytes]:
    """A form POST signed by the root for `service`: (status, body)."""
    key = server.access["root"]
    request = AWSRequest(method="POST", url=server.url + "/", data=body.encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(BotoCredentials(key.access_key_id, key.secret_access_key), service, REGION).add_auth(request)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", "/", body=body.encode(), headers=dict(request.headers.items()))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def error_of(info: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = info.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def test_users_and_their_policies(server: Server) -> None:
    client = iam(server)
    user = client.create_user(UserName="carol")["User"]
    assert (user["Path"], user["UserName"], user["Arn"]) == ("/", "carol", f"arn:aws:iam::{ACCOUNT}:user/carol")
    assert user["UserId"].startswith("AIDA") and user["CreateDate"].tzinfo is not None
    before = server.head()
    assert client.get_user(UserName="carol")["User"] == user
    assert [(r.operation, r.event) for r in server.records(before)] == [("GetUser", ev.MetadataRead("GetUser"))]
    assert {u["UserName"] for u in client.list_users()["Users"]} >= {"alice", "bob", "carol"}
    client.put_user_policy(UserName="carol", PolicyName="kms-use", PolicyDocument=json.dumps(POLICY))
    got = client.get_user_policy(UserName="carol", PolicyName="kms-use")
    assert (got["UserName"], got["PolicyName"], got["PolicyDocument"]) == ("carol", "kms-use", POLICY)
    assert client.list_user_policies(UserName="carol")["PolicyNames"] == ["kms-use"]
    client.delete_user_policy(UserName="carol", PolicyName="kms-use")
    assert client.list_user_policies(UserName="carol")["PolicyNames"] == []
    with pytest.raises(ClientError) as info:
        client.get_user_policy(UserName="carol", PolicyName="kms-use")
    assert error_of(info) == (404, "NoSuchEntity", "The user policy with name kms-use cannot be found.")
    with pytest.raises(ClientError) as info:
        client.create_user(UserName="carol")
    assert error_of(info) == (409, "EntityAlreadyExists", "User with name carol already exists.")


def test_lists_page(server: Server) -> None:
    client = iam(server)
    for name in ("page-1", "page-2", "page-3"):
        client.create_user(UserName=name)
    first = client.list_users(MaxItems=2)
    assert first["IsTruncated"] and len(first["Users"]) == 2
    every = [u["UserName"] for page in client.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 2})
             for u in page["Users"]]
    assert every == [u["UserName"] for u in client.list_users()["Users"]] and len(set(every)) == len(every)
    assert {"page-1", "page-2", "page-3"} <= set(every)


def test_roles_are_listed_described_and_deleted(server: Server) -> None:
    # roles are made by the CLI or the library (here the server's own), not through IAM
    made = [server.kms.create_role(name).arn for name in ("role-a", "role-b", "role-c")]
    client = iam(server)
    role = client.get_role(RoleName="role-b")["Role"]
    assert (role["RoleName"], role["Arn"], role["Path"]) == ("role-b", made[1], "/")
    assert role["RoleId"].startswith("AROA") and role["CreateDate"].tzinfo is not None
    listed = client.list_roles()["Roles"]
    assert [r["Arn"] for r in listed if r["RoleName"].startswith("role-")] == made and role in listed
    page = client.list_roles(MaxItems=1)
    assert page["IsTruncated"] and len(page["Roles"]) == 1
    every = [r["RoleName"] for p in client.get_paginator("list_roles").paginate(PaginationConfig={"PageSize": 1})
             for r in p["Roles"]]
    assert every == [r["RoleName"] for r in listed]
    client.delete_role(RoleName="role-b")
    assert "role-b" not in {r["RoleName"] for r in client.list_roles()["Roles"]}


def test_a_role_description_and_update_role(server: Server) -> None:
    client = iam(server)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})
    made = client.create_role(RoleName="described", AssumeRolePolicyDocument=trust,
                              Description="Runs the nightly job")["Role"]
    assert made["Description"] == "Runs the nightly job"
    assert client.get_role(RoleName="described")["Role"]["Description"] == "Runs the nightly job"
    before = server.head()
    shown = client.update_role_description(RoleName="described", Description="Runs the weekly job")["Role"]
    assert (shown["Description"], shown["RoleId"], shown["MaxSessionDuration"]) == (
        "Runs the weekly job", made["RoleId"], 3600)
    assert client.update_role(RoleName="described", MaxSessionDuration=7200)["ResponseMetadata"]
    role = client.get_role(RoleName="described")["Role"]
    assert (role["Description"], role["MaxSessionDuration"]) == ("Runs the weekly job", 7200)
    assert [(r.operation, r.event) for r in server.records(before) if r.operation.startswith("Update")] == [
        ("UpdateRoleDescription", ev.RoleUpdated(made["Arn"], "Runs the weekly job")),
        ("UpdateRole", ev.RoleUpdated(made["Arn"], None, 7200))]
    status, body = post_form(server, "Action=UpdateRole&Version=2010-05-08&RoleName=described"
                                     "&MaxSessionDuration=100")  # (botocore itself refuses to send it)
    assert status == 400 and b"<Code>ValidationError</Code>" in body
    assert b"Value '100' at 'maxSessionDuration' failed to satisfy constraint: Member must have value greater " \
           b"than or equal to 3600" in body
    with pytest.raises(ClientError) as info:
        client.update_role_description(RoleName="nobody", Description="x")
    assert error_of(info) == (404, "NoSuchEntity", "The role with name nobody cannot be found.")
    with pytest.raises(ClientError) as info:
        client.create_role(RoleName="bell", AssumeRolePolicyDocument=trust, Description="ring\x07")
    assert error_of(info)[:2] == (400, "ValidationError") and "regular expression pattern" in error_of(info)[2]
    assert error_of(info)[2].endswith(r"[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*")  # IAM model's text
    client.delete_role(RoleName="described")


def test_a_marker_names_where_the_page_ended_not_an_offset(server: Server) -> None:
    client = iam(server)
    for name in ("mark-1", "mark-2", "mark-3", "mark-4"):
        client.create_user(UserName=name)
    names = [u["UserName"] for u in client.list_users()["Users"]]
    at = names.index("mark-2")
    first = client.list_users(MaxItems=at + 1)  # ends with mark-2
    assert first["Users"][-1]["UserName"] == "mark-2" and first["IsTruncated"]
    client.delete_user(UserName="mark-1")  # a user before the marker goes between pages
    rest = client.list_users(Marker=first["Marker"])["Users"]
    assert [u["UserName"] for u in rest] == names[at + 1:]  # an offset would have skipped mark-3
    for marker in ("10", "not a marker", "W10="):  # an offset, garbage, an empty list
        with pytest.raises(ClientError) as info:
            client.list_users(Marker=marker)
        assert error_of(info)[:2] == (400, "ValidationError")
        assert "at 'marker' is not a marker this service issued" in error_of(info)[2]
    for policy in ("a", "b", "c"):
        client.put_user_policy(UserName="mark-3", PolicyName=policy, PolicyDocument=json.dumps(POLICY))
    page = client.list_user_policies(UserName="mark-3", MaxItems=2)
    assert page["PolicyNames"] == ["a", "b"] and page["IsTruncated"]
    client.delete_user_policy(UserName="mark-3", PolicyName="a")
    assert client.list_user_policies(UserName="mark-3", Marker=page["Marker"])["PolicyNames"] == ["c"]
    # access keys are listed in the order they were issued: the marker remembers the ones shown
    made = [client.create_access_key(UserName="mark-4")["AccessKey"]["AccessKeyId"] for _ in range(2)]
    page = client.list_access_keys(UserName="mark-4", MaxItems=1)
    assert [k["AccessKeyId"] for k in page["AccessKeyMetadata"]] == made[:1] and page["IsTruncated"]
    client.delete_access_key(UserName="mark-4", AccessKeyId=made[0])
    rest = client.list_access_keys(UserName="mark-4", Marker=page["Marker"])
    assert [k["AccessKeyId"] for k in rest["AccessKeyMetadata"]] == made[1:] and not rest["IsTruncated"]


def test_no_such_entity(server: Server) -> None:
    client = iam(server)
    for call, kwargs in ((client.get_user, {}), (client.list_user_policies, {}), (client.list_access_keys, {}),
                         (client.create_access_key, {}),
                         (client.put_user_policy, {"PolicyName": "p", "PolicyDocument": json.dumps(POLICY)})):
        with pytest.raises(ClientError) as info:
            call(UserName="nobody", **kwargs)
        assert error_of(info) == (404, "NoSuchEntity", "The user with name nobody cannot be found."), call
    with pytest.raises(ClientError) as info:
        client.delete_access_key(UserName="alice", AccessKeyId="AKIANOSUCHKEY0000000")
    assert error_of(info) == (404, "NoSuchEntity", "The Access Key with id AKIANOSUCHKEY0000000 cannot be found.")


def test_bad_input(server: Server) -> None:
    client = iam(server)
    with pytest.raises(ClientError) as info:
        client.put_user_policy(UserName="alice", PolicyName="bad", PolicyDocument="{not json")
    assert error_of(info)[:2] == (400, "MalformedPolicyDocument")
    with pytest.raises(ClientError) as info:
        client.create_user(UserName="bad name")
    assert error_of(info) == (400, "ValidationError", (
        "1 validation error detected: Value 'bad name' at 'userName' failed to satisfy constraint: "
        r"Member must satisfy regular expression pattern: [\w+=,.@-]+"))
    with pytest.raises(ClientError) as info:
        client.create_user(UserName="x" * 65)
    assert error_of(info)[:2] == (400, "ValidationError")
    with pytest.raises(ClientError) as info:
        client.list_users(MaxItems=1001)
    assert error_of(info)[:2] == (400, "ValidationError")


def test_an_access_key_made_through_iam(server: Server) -> None:
    client = iam(server)
    client.create_user(UserName="dave")
    client.put_user_policy(UserName="dave", PolicyName="kms-all", PolicyDocument=ALL_KMS)
    keys_file = server.keys_file.read_bytes()
    made = client.create_access_key(UserName="dave")["AccessKey"]
    assert (made["UserName"], made["Status"]) == ("dave", "Active")
    assert made["AccessKeyId"].startswith("AKIA") and len(made["SecretAccessKey"]) == 40
    kms = kms_with(server, made)  # no restart, no credentials file change
    key_id = kms.create_key(Description="dave's")["KeyMetadata"]["KeyId"]
    assert kms.encrypt(KeyId=key_id, Plaintext=b"hi")["CiphertextBlob"]
    assert server.keys_file.read_bytes() == keys_file
    listed = client.list_access_keys(UserName="dave")["AccessKeyMetadata"]
    assert [(k["UserName"], k["AccessKeyId"], k["Status"]) for k in listed] == \
        [("dave", made["AccessKeyId"], "Active")]
    assert listed[0]["CreateDate"] == made["CreateDate"]

    client.update_access_key(UserName="dave", AccessKeyId=made["AccessKeyId"], Status="Inactive")
    with pytest.raises(ClientError) as info:
        kms.list_keys()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert client.list_access_keys(UserName="dave")["AccessKeyMetadata"][0]["Status"] == "Inactive"
    client.update_access_key(UserName="dave", AccessKeyId=made["AccessKeyId"], Status="Active")
    kms.list_keys()
    with pytest.raises(ClientError) as info:
        client.update_access_key(UserName="dave", AccessKeyId=made["AccessKeyId"], Status="Expired")
    assert error_of(info)[:2] == (400, "ValidationError")

    client.delete_access_key(UserName="dave", AccessKeyId=made["AccessKeyId"])
    assert client.list_access_keys(UserName="dave")["AccessKeyMetadata"] == []
    with pytest.raises(ClientError) as info:
        kms.list_keys()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as info:
        client.delete_access_key(UserName="dave", AccessKeyId=made["AccessKeyId"])
    assert error_of(info)[:2] == (404, "NoSuchEntity")


def test_a_user_manages_its_own_keys_and_the_quota(server: Server) -> None:
    root = iam(server)
    root.create_user(UserName="erin")
    arn = f"arn:aws:iam::{ACCOUNT}:user/erin"
    root.put_user_policy(UserName="erin", PolicyName="own-keys", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": arn, "Action": [
            "iam:CreateAccessKey", "iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:DeleteAccessKey"]}]}))
    first = root.create_access_key(UserName="erin")["AccessKey"]
    erin = iam(server, key_id=first["AccessKeyId"], secret=first["SecretAccessKey"], region="eu-west-3")
    second = erin.create_access_key()["AccessKey"]  # no UserName: the caller's own
    assert second["UserName"] == "erin"
    assert [k["AccessKeyId"] for k in erin.list_access_keys()["AccessKeyMetadata"]] == \
        [first["AccessKeyId"], second["AccessKeyId"]]
    with pytest.raises(ClientError) as info:
        erin.create_access_key()
    assert error_of(info) == (409, "LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2")
    with pytest.raises(ClientError) as info:
        erin.list_access_keys(UserName="alice")
    assert error_of(info)[:2] == (403, "AccessDenied")
    erin.delete_access_key(AccessKeyId=second["AccessKeyId"])
    assert [k["AccessKeyId"] for k in erin.list_access_keys()["AccessKeyMetadata"]] == [first["AccessKeyId"]]


def test_delete_user_frees_the_name_without_passing_on_rights(server: Server) -> None:
    client = iam(server)
    gwen_id = client.create_user(UserName="gwen")["User"]["UserId"]
    gwen = f"arn:aws:iam::{ACCOUNT}:user/gwen"
    client.put_user_policy(UserName="gwen", PolicyName="kms-all", PolicyDocument=ALL_KMS)
    made = client.create_access_key(UserName="gwen")["AccessKey"]
    root_kms = kms_with(server, {"AccessKeyId": server.access["root"].access_key_id,
                                 "SecretAccessKey": server.access["root"].secret_access_key})
    key_id = root_kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": gwen}, "Action": "kms:Encrypt", "Resource": "*"}]}))[
        "KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as info:
        client.delete_user(UserName="gwen")
    assert error_of(info) == (409, "DeleteConflict", "Cannot delete entity, must delete access keys first.")
    client.delete_access_key(UserName="gwen", AccessKeyId=made["AccessKeyId"])
    with pytest.raises(ClientError) as info:
        client.delete_user(UserName="gwen")
    assert error_of(info) == (409, "DeleteConflict", "Cannot delete entity, must delete policies first.")
    client.delete_user_policy(UserName="gwen", PolicyName="kms-all")
    before = server.head()
    client.delete_user(UserName="gwen")
    assert [type(r.event) for r in server.records(before)] == [ev.PrincipalDeleted, ev.KeyPolicyPrincipalDeleted]
    assert "gwen" not in {u["UserName"] for u in client.list_users()["Users"]}
    principal = json.loads(root_kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])[
        "Statement"][1]["Principal"]["AWS"]
    assert principal == gwen_id and principal.startswith("AIDA") and len(principal) == 21
    with pytest.raises(ClientError) as info:
        client.delete_user(UserName="gwen")
    assert error_of(info) == (404, "NoSuchEntity", "The user with name gwen cannot be found.")
    with pytest.raises(ClientError) as info:
        client.delete_role(RoleName="nobody")
    assert error_of(info) == (404, "NoSuchEntity", "The role with name nobody cannot be found.")
    with pytest.raises(ClientError) as info:
        client.get_role(RoleName="nobody")
    assert error_of(info) == (404, "NoSuchEntity", "The role with name nobody cannot be found.")
    # a new gwen, with a new key and a new id, is not the old one
    assert client.create_user(UserName="gwen")["User"]["UserId"] != gwen_id
    again = client.create_access_key(UserName="gwen")["AccessKey"]
    with pytest.raises(ClientError) as info:
        kms_with(server, again).encrypt(KeyId=key_id, Plaintext=b"x")
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"


def test_access_denied_is_on_record(server: Server) -> None:
    before = server.head()
    with pytest.raises(ClientError) as info:
        iam(server, "bob").create_user(UserName="mallory")
    status, code, message = error_of(info)
    assert (status, code) == (403, "AccessDenied")
    assert message.startswith(f"User: {BOB} is not authorized to perform: iam:CreateUser on resource: "
                              f"arn:aws:iam::{ACCOUNT}:user/mallory")
    request_id = info.value.response["ResponseMetadata"]["RequestId"]
    [record] = [r for r in server.records(before) if r.request_id == request_id]
    assert record.principal == BOB and isinstance(record.event, ev.RequestDenied)
    assert (record.event.operation, record.event.error_code) == ("CreateUser", "AccessDeniedException")
    with pytest.raises(ClientError) as info:
        iam(server, "bob").get_user(UserName="mallory")
    assert error_of(info)[:2] == (403, "AccessDenied")


def test_other_actions_are_invalid_and_on_record(server: Server) -> None:
    before = server.head()
    with pytest.raises(ClientError) as info:
        iam(server).create_group(GroupName="ops")
    assert error_of(info) == (400, "InvalidAction", "Could not find operation CreateGroup for version 2010-05-08")
    request_id = info.value.response["ResponseMetadata"]["RequestId"]
    [record] = [r for r in server.records(before) if r.request_id == request_id]
    assert isinstance(record.event, ev.RequestDenied) and record.event.operation == "CreateGroup"
    assert record.principal == f"arn:aws:iam::{ACCOUNT}:root"
    status, body = post_form(server, "Action=ListUsers&Version=2099-01-01")
    assert status == 400 and b"<Code>InvalidAction</Code>" in body
    assert b"Could not find operation ListUsers for version 2099-01-01" in body


@pytest.mark.parametrize("service", ["iam", "sts"])
def test_a_control_character_echoed_in_an_error_keeps_the_xml_well_formed(server: Server, service: str) -> None:
    """XML 1.0 cannot carry U+0000-U+001F (but tab, CR, LF) even escaped: an
    answer that echoed one raw would not parse (found by test_iam_fuzz)."""
    version = "2010-05-08" if service == "iam" else "2011-06-15"
    status, body = post_form(server, f"Action=No%1FSuch&Version={version}", service=service)
    root = ElementTree.fromstring(body)  # parses
    assert status == 400 and b"\x1f" not in body
    message = root.find(".//{*}Message")
    assert message is not None and message.text == f"Could not find operation No\ufffdSuch for version {version}"
    if service == "iam":
        with pytest.raises(ClientError) as info:
            iam(server).get_user(UserName="a\x1fb")
        assert error_of(info)[:2] == (400, "ValidationError")
        assert "Value 'a\ufffdb' at 'userName'" in error_of(info)[2]


def test_signature_errors_are_iams(server: Server) -> None:
    with pytest.raises(ClientError) as info:
        iam(server, secret="x" * 40).list_users()
    assert error_of(info)[:2] == (403, "SignatureDoesNotMatch")
    request_id = info.value.response["ResponseMetadata"]["RequestId"]
    assert server.summary_of(request_id).event.error_code == "InvalidSignatureException"
    with pytest.raises(ClientError) as info:
        iam(server, key_id="AKIAUNKNOWNKEY000000", secret="x" * 40).list_users()
    assert error_of(info)[:2] == (403, "InvalidClientTokenId")
    status, body = post_form(server, "Action=ListUsers&Version=2010-05-08", service="sts")
    assert status == 400 and b"<Code>InvalidAction</Code>" in body and b"sts.amazonaws.com" in body  # STS's


def test_nothing_secret_in_the_logs_or_the_ledger(server: Server) -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())
    access = logging.getLogger("keyledger.access")
    keep, level = Keep(), access.level
    access.addHandler(keep)
    access.setLevel(logging.INFO)
    try:
        before = server.head()
        client = iam(server)
        client.create_user(UserName="frank")
        made = client.create_access_key(UserName="frank")["AccessKey"]
    finally:
        access.removeHandler(keep)
        access.setLevel(level)
    secret = made["SecretAccessKey"]
    entries = [json.loads(line) for line in lines]
    assert [(e["operation"], e["status"], e["principal"]) for e in entries] == \
        [("CreateUser", 200, f"arn:aws:iam::{ACCOUNT}:root"), ("CreateAccessKey", 200, f"arn:aws:iam::{ACCOUNT}:root")]
    assert all(e["service"] == "iam" and e["request_id"] for e in entries)
    assert not any(secret in line for line in lines)
    records = server.records(before)
    assert any(isinstance(r.event, ev.AccessKeyCreated) and r.event.access_key_id == made["AccessKeyId"]
               for r in records)
    assert not any(secret.encode() in msgspec.json.encode(r) for r in records)
    for path in server.home.rglob("*"):  # the ledger's files: the secret is wrapped, never in the clear
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_the_root_issues_its_own_key(server: Server) -> None:
    """CreateAccessKey with no UserName, signed by the root, makes a root key
    (as AWS does), which signs KMS requests as the root at once."""
    client = iam(server)
    made = client.create_access_key()["AccessKey"]
    assert "UserName" not in made and made["Status"] == "Active"
    listed = client.list_access_keys()["AccessKeyMetadata"]
    assert made["AccessKeyId"] in [k["AccessKeyId"] for k in listed]
    assert all("UserName" not in k for k in listed)
    key = kms_with(server, made).create_key()["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER"
    client.delete_access_key(AccessKeyId=made["AccessKeyId"])
    with pytest.raises(ClientError) as info:
        kms_with(server, made).list_keys()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_auth_none_acts_as_the_root(start_server: Any) -> None:
    srv = start_server(auth="none")
    client = boto3.client("iam", endpoint_url=srv.url, region_name=REGION, aws_access_key_id="AKIAANYTHING0000",
                          aws_secret_access_key="anything", config=Config(retries={"total_max_attempts": 1}))
    client.meta.events.register("after-call.iam", _check_xml)
    assert client.create_user(UserName="gina")["User"]["UserName"] == "gina"
    me = client.get_user()["User"]
    assert (me["Arn"], me["UserId"]) == (f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT) and "UserName" not in me


@pytest.mark.skipif(not os.path.exists(AWS), reason="the AWS CLI is not installed (test extras)")
def test_the_aws_cli(server: Server) -> None:
    root = server.access["root"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": root.access_key_id, "AWS_SECRET_ACCESS_KEY": root.secret_access_key,
           "AWS_DEFAULT_REGION": REGION, "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": ""}

    def aws(*args: str) -> Any:
        done = subprocess.run([AWS, "iam", *args, "--endpoint-url", server.url, "--output", "json"],
                              check=False, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    assert aws("create-user", "--user-name", "cli-user")["User"]["UserName"] == "cli-user"
    aws("put-user-policy", "--user-name", "cli-user", "--policy-name", "kms-all", "--policy-document", ALL_KMS)
    made = aws("create-access-key", "--user-name", "cli-user")["AccessKey"]
    assert [k["AccessKeyId"] for k in aws("list-access-keys", "--user-name", "cli-user")["AccessKeyMetadata"]] == \
        [made["AccessKeyId"]]
    assert kms_with(server, made).list_keys()["Keys"] is not None
