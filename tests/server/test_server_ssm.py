"""The parameter store over HTTP: SSM's JSON 1.1 protocol (`AmazonSSM.*`,
SigV4 service `ssm`) on the KMS port, driven by unmodified clients:
`boto3.client("ssm", endpoint_url=...)` (every response checked against
botocore's SSM output shapes) and `aws ssm ... --with-decryption`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config

from keyledger import events as ev
from keyledger.server import ssm
from serverkit import ACCOUNT, REGION, Server, _assert_error_body, assert_conforms

AWS = str(Path(sys.executable).parent / "aws")
SSM_MODEL = botocore.session.get_session().get_service_model("ssm")
ALL_SSM = json.dumps({"Version": "2012-10-17",
                      "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}]})


def _check_ssm_shape(http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
    body = http_response.content
    if http_response.status_code >= 400:
        _assert_error_body(json.loads(body))
        return
    assert http_response.headers.get("x-amzn-requestid")
    assert_conforms(model.output_shape, json.loads(body))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("ssm-ledger"))
    srv.kms.put_principal_policy(srv.access["alice"].principal, "ssm-all", ALL_SSM)
    yield srv
    srv.stop()


def client(server: Server, who: str = "alice") -> Any:
    key = server.access[who]
    made = boto3.client("ssm", endpoint_url=server.url, region_name=REGION,
                        aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
                        config=Config(retries={"total_max_attempts": 1}))
    made.meta.events.register("after-call.ssm", _check_ssm_shape)
    return made


def test_the_vendored_model_is_botocores(server: Server) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import vendor_ssm_model
    assert ssm.MODEL == json.loads(json.dumps(vendor_ssm_model.trimmed()))
    assert set(ssm.OPERATIONS) == set(vendor_ssm_model.OPERATIONS)


def test_boto3(server: Server) -> None:
    c = client(server)
    assert c.put_parameter(Name="/app/prod/db-password", Value="boto3-secret-value", Type="SecureString",
                           Description="the db")["Version"] == 1
    c.put_parameter(Name="/app/prod/url", Value="https://db", Type="String")
    c.put_parameter(Name="/app/prod/hosts", Value="a,b", Type="StringList")
    got = c.get_parameter(Name="/app/prod/db-password", WithDecryption=True)["Parameter"]
    assert got["Value"] == "boto3-secret-value" and got["Type"] == "SecureString" and got["Version"] == 1
    assert got["ARN"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/prod/db-password"
    assert c.get_parameter(Name="/app/prod/db-password")["Parameter"]["Value"] != "boto3-secret-value"
    with pytest.raises(c.exceptions.ParameterAlreadyExists):
        c.put_parameter(Name="/app/prod/url", Value="x", Type="String")
    assert c.put_parameter(Name="/app/prod/url", Value="https://db2", Overwrite=True)["Version"] == 2
    many = c.get_parameters(Names=["/app/prod/url", "/app/prod/url:1", "/nope"], WithDecryption=True)
    assert sorted(p["Value"] for p in many["Parameters"]) == ["https://db", "https://db2"]
    assert many["InvalidParameters"] == ["/nope"]
    pages = c.get_paginator("get_parameters_by_path").paginate(
        Path="/app", Recursive=True, WithDecryption=True, PaginationConfig={"PageSize": 1})
    names = [p["Name"] for page in pages for p in page["Parameters"]]
    assert names == ["/app/prod/db-password", "/app/prod/hosts", "/app/prod/url"]
    assert c.label_parameter_version(Name="/app/prod/url", ParameterVersion=1, Labels=["old", "9x"]) \
        ["InvalidLabels"] == ["9x"]
    assert c.get_parameter(Name="/app/prod/url:old")["Parameter"]["Value"] == "https://db"
    history = c.get_parameter_history(Name="/app/prod/url")["Parameters"]
    assert [(h["Version"], h["Labels"]) for h in history] == [(1, ["old"]), (2, [])]
    described = [m for page in c.get_paginator("describe_parameters").paginate() for m in page["Parameters"]]
    assert {m["Name"]: m.get("KeyId") for m in described}["/app/prod/db-password"] == "alias/aws/ssm"
    with pytest.raises(c.exceptions.ParameterNotFound):
        c.get_parameter(Name="/app/prod/none")
    with pytest.raises(c.exceptions.ParameterVersionNotFound):
        c.get_parameter(Name="/app/prod/url:5")
    with pytest.raises(c.exceptions.HierarchyLevelLimitExceededException):
        c.put_parameter(Name="/" + "/".join("l" * 16), Value="v", Type="String")
    with pytest.raises(c.exceptions.InvalidKeyId):
        c.put_parameter(Name="/app/k", Value="v", Type="SecureString", KeyId="alias/missing")
    deleted = c.delete_parameters(Names=["/app/prod/hosts", "/x"])
    assert (deleted["DeletedParameters"], deleted["InvalidParameters"]) == (["/app/prod/hosts"], ["/x"])
    c.delete_parameter(Name="/app/prod/url")
    with pytest.raises(c.exceptions.ParameterNotFound):
        c.delete_parameter(Name="/app/prod/url")
    alice = server.access["alice"].principal
    log = server.records()
    decrypts = [r for r in log if isinstance(r.event, ev.Decrypted) and r.principal == alice]
    assert decrypts and decrypts[-1].event.via_service == f"ssm.{REGION}.amazonaws.com"
    assert decrypts[-1].event.encryption_context == \
        {"PARAMETER_ARN": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/prod/db-password"}
    assert {r.operation for r in log if r.principal == alice} >= {
        "PutParameter", "GetParameter", "GetParameters", "GetParametersByPath", "LabelParameterVersion",
        "GetParameterHistory", "DescribeParameters", "DeleteParameters", "DeleteParameter", "Encrypt", "Decrypt"}


def test_unlabel_and_tags_over_boto3(server: Server) -> None:
    c = client(server)
    name = "/tags/param"
    c.put_parameter(Name=name, Value="value", Type="String", Tags=[{"Key": "env", "Value": "dev"}])
    c.label_parameter_version(Name=name, Labels=["py-prod", "py-stable"], ParameterVersion=1)
    out = c.unlabel_parameter_version(Name=name, Labels=["py-prod", "py-missing"], ParameterVersion=1)
    assert (out["RemovedLabels"], out["InvalidLabels"]) == (["py-prod"], ["py-missing"])
    assert c.get_parameter_history(Name=name)["Parameters"][0]["Labels"] == ["py-stable"]
    with pytest.raises(c.exceptions.ParameterVersionNotFound):
        c.unlabel_parameter_version(Name=name, Labels=["py-stable"], ParameterVersion=2)
    c.add_tags_to_resource(ResourceType="Parameter", ResourceId=name,
                           Tags=[{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "backend"}])
    tags = c.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    assert tags == [{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "backend"}]
    c.remove_tags_from_resource(ResourceType="Parameter", ResourceId=name, TagKeys=["team"])
    assert c.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"] == \
        [{"Key": "env", "Value": "test"}]
    with pytest.raises(c.exceptions.InvalidResourceId):
        c.list_tags_for_resource(ResourceType="Parameter", ResourceId="/tags/none")
    with pytest.raises(c.exceptions.InvalidResourceType):
        c.add_tags_to_resource(ResourceType="Document", ResourceId="doc", Tags=[{"Key": "a", "Value": "b"}])
    with pytest.raises(c.exceptions.TooManyTagsError):
        c.add_tags_to_resource(ResourceType="Parameter", ResourceId=name,
                               Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    alice = server.access["alice"].principal
    assert {r.operation for r in server.records() if r.principal == alice} >= {
        "UnlabelParameterVersion", "AddTagsToResource", "ListTagsForResource", "RemoveTagsFromResource"}


def test_authorization_over_http(server: Server) -> None:
    client(server).put_parameter(Name="/authz/secret", Value="only-for-alice", Type="SecureString")
    bob = client(server, "bob")
    with pytest.raises(bob.exceptions.ClientError) as exc:
        bob.get_parameter(Name="/authz/secret", WithDecryption=True)
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "ssm:GetParameter" in exc.value.response["Error"]["Message"]
    denied = [r for r in server.records() if isinstance(r.event, ev.RequestDenied)
              and r.principal == server.access["bob"].principal]
    assert denied[-1].operation == "GetParameter"


def test_protocol_refusals_are_on_record(server: Server) -> None:
    status, _, body = server.raw("AmazonSSM.SendCommand", "{}", service="ssm")
    assert status == 400 and body["__type"] == "UnknownOperationException"
    status, _, body = server.raw("AmazonSSM.GetParameter", "{}", service="ssm")
    assert status == 400 and body["__type"] == "ValidationException" and "'name'" in body["message"]
    status, _, body = server.raw("AmazonSSM.GetParameter", '{"Name": 5}', service="ssm")
    assert status == 400 and body["__type"] == "SerializationException"
    status, _, body = server.raw("AmazonSSM.GetParameter", '{"Name": "/x"}', service="kms")  # scoped to kms
    assert status in (400, 403) and body["__type"] in ("InvalidSignatureException", "IncompleteSignatureException")
    refused = [r for r in server.records() if isinstance(r.event, ev.RequestDenied)]
    assert {"SendCommand", "GetParameter"} <= {r.operation for r in refused}


def aws_cli(server: Server, home: Path, *args: str, fails: bool = False) -> subprocess.CompletedProcess[str]:
    key = server.access["alice"]
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "AWS_ACCESS_KEY_ID": key.access_key_id,
           "AWS_SECRET_ACCESS_KEY": key.secret_access_key, "AWS_DEFAULT_REGION": REGION,
           "AWS_CONFIG_FILE": str(home / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
           "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": "", "AWS_ENDPOINT_URL_SSM": server.url}
    done = subprocess.run([AWS, "ssm", *args], env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode != 0) == fails, done.stderr
    return done


def test_aws_cli(server: Server, tmp_path: Path) -> None:
    aws_cli(server, tmp_path, "put-parameter", "--name", "/cli/db-password", "--value", "cli-secret-value",
            "--type", "SecureString")
    out = json.loads(aws_cli(server, tmp_path, "get-parameter", "--name", "/cli/db-password",
                             "--with-decryption").stdout)
    assert out["Parameter"]["Value"] == "cli-secret-value" and out["Parameter"]["Version"] == 1
    text = aws_cli(server, tmp_path, "get-parameters-by-path", "--path", "/cli", "--with-decryption",
                   "--query", "Parameters[0].Value", "--output", "text").stdout.strip()
    assert text == "cli-secret-value"
    err = aws_cli(server, tmp_path, "get-parameter", "--name", "/cli/none", fails=True)
    assert "An error occurred (ParameterNotFound) when calling the GetParameter operation" in err.stderr


def test_a_real_serve_process(tmp_path: Path) -> None:
    """`python -m keyledger.server serve` (a process of its own) answers SSM
    and KMS on one port, for a user whose access key the CLI issued."""
    import signal

    import keyledger
    from click.testing import CliRunner

    from keyledger.cli.main import main
    from serverkit import Process

    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        principal = kms.create_user("app").arn
        kms.put_principal_policy(principal, "ssm", ALL_SSM)
    made = CliRunner().invoke(main, ["--home", str(home), "iam", "create-access-key", "--user-name", "app"])
    assert made.exit_code == 0, made.output
    key = json.loads(made.stdout)["AccessKey"]
    server = Process("--home", str(home), "--durability", "relaxed", "--access-log", "off")
    try:
        c = boto3.client("ssm", endpoint_url=server.url, region_name=REGION, aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=key["SecretAccessKey"], config=Config(retries={"total_max_attempts": 1}))
        c.put_parameter(Name="/proc/secret", Value="process-secret-value", Type="SecureString")
        assert c.get_parameter(Name="/proc/secret", WithDecryption=True)["Parameter"]["Value"] == \
            "process-secret-value"
        kms_client = boto3.client("kms", endpoint_url=server.url, region_name=REGION,
                                  aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                                  config=Config(retries={"total_max_attempts": 1}))
        with pytest.raises(kms_client.exceptions.ClientError):  # the user has no kms:* of its own
            kms_client.list_keys()
    finally:
        assert server.stop(signal.SIGINT) == 0
    with keyledger.open(home) as kms:
        ops = [(r.operation, r.principal) for r in kms.store.records()]
    assert ("Decrypt", principal) in ops and ("GetParameter", principal) in ops
