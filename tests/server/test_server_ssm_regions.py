"""The parameter store is regional over HTTP too: an SSM request's region is
its SigV4 credential scope's, as a KMS request's is (in --auth none mode the
unverified scope names it). Two boto3 SSM clients in two regions against a
real server on 127.0.0.1: one name, two parameters; ARNs and SecureString
keys of the request region; listing per region; the records say where."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import msgspec
import pytest
from botocore.config import Config

from keyledger import events as ev
from serverkit import ACCOUNT, REGION, Server
from test_server_ssm import ALL_SSM, _check_ssm_shape

EU = "eu-west-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("ssm-regions"))
    srv.kms.put_principal_policy(srv.access["alice"].principal, "ssm-all", ALL_SSM)
    yield srv
    srv.stop()


def ssm_client(server: Server, region: str, who: str = "alice") -> Any:
    key = server.access[who]
    made = boto3.client("ssm", endpoint_url=server.url, region_name=region,
                        aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
                        config=Config(retries={"total_max_attempts": 1}))
    made.meta.events.register("after-call.ssm", _check_ssm_shape)
    return made


def test_two_regions_through_sigv4(server: Server) -> None:
    us, eu = ssm_client(server, REGION), ssm_client(server, EU)
    start = server.head()
    us.put_parameter(Name="/app/db", Value="us-value", Type="String")
    eu.put_parameter(Name="/app/db", Value="eu-secret", Type="SecureString")  # same name, another region
    got_us = us.get_parameter(Name="/app/db")["Parameter"]
    got_eu = eu.get_parameter(Name="/app/db", WithDecryption=True)["Parameter"]
    assert (got_us["Value"], got_us["ARN"]) == ("us-value", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/db")
    assert (got_eu["Value"], got_eu["ARN"], got_eu["Type"]) == (
        "eu-secret", f"arn:aws:ssm:{EU}:{ACCOUNT}:parameter/app/db", "SecureString")
    eu.put_parameter(Name="/eu/only", Value="x", Type="String")
    with pytest.raises(us.exceptions.ParameterNotFound):
        us.get_parameter(Name="/eu/only")
    assert [p["Name"] for p in eu.describe_parameters()["Parameters"]] == ["/app/db", "/eu/only"]
    assert [p["Name"] for p in us.describe_parameters()["Parameters"]] == ["/app/db"]
    assert [p["Name"] for p in eu.get_parameters_by_path(Path="/app")["Parameters"]] == ["/app/db"]
    # the EU SecureString is under the EU aws/ssm key, made there on SSM's first use
    kms_eu = server.client("alice", region=EU)
    eu_ssm_key = kms_eu.describe_key(KeyId="alias/aws/ssm")["KeyMetadata"]
    assert eu_ssm_key["Arn"].startswith(f"arn:aws:kms:{EU}:")
    assert eu.describe_parameters()["Parameters"][0]["KeyId"] in ("alias/aws/ssm", eu_ssm_key["KeyId"],
                                                                   eu_ssm_key["Arn"])
    us.delete_parameter(Name="/app/db")
    assert eu.get_parameter(Name="/app/db", WithDecryption=True)["Parameter"]["Value"] == "eu-secret"
    # the records say where: every EU parameter record and its KMS calls carry the region
    records = server.records(start)
    puts = [(r.region, r.event.name) for r in records if isinstance(r.event, ev.ParameterPut)]
    assert puts == [(msgspec.UNSET, "/app/db"), (EU, "/app/db"), (EU, "/eu/only")]
    encrypted = [r for r in records if isinstance(r.event, ev.Encrypted)]
    assert [(r.region, r.event.via_service) for r in encrypted] == [(EU, f"ssm.{EU}.amazonaws.com")]
    assert "eu-secret" not in repr(records)


def test_auth_none_takes_the_region_from_the_unverified_scope(start_server) -> None:
    srv = start_server(auth="none")
    status, _, _ = srv.raw("AmazonSSM.PutParameter", json.dumps({"Name": "/n", "Value": "eu", "Type": "String"}),
                           service="ssm", region=EU)
    assert status == 200
    status, _, _ = srv.raw("AmazonSSM.PutParameter", json.dumps({"Name": "/n", "Value": "us", "Type": "String"}),
                           service="ssm", who=None)  # no Authorization header: the ledger's region
    assert status == 200
    status, _, body = srv.raw("AmazonSSM.GetParameter", json.dumps({"Name": "/n"}), service="ssm", region=EU)
    assert status == 200 and body["Parameter"]["Value"] == "eu"
    assert body["Parameter"]["ARN"] == f"arn:aws:ssm:{EU}:{ACCOUNT}:parameter/n"
    status, _, body = srv.raw("AmazonSSM.GetParameter", json.dumps({"Name": "/n"}), service="ssm", who=None)
    assert status == 200 and body["Parameter"]["Value"] == "us"
