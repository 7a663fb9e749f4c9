"""Regions and multi-Region keys through a real server on 127.0.0.1 with
boto3: the request's region is its SigV4 credential scope's (two clients
in two regions see two sets of keys and aliases), also in --auth none mode
(the unverified scope names it; no Authorization header: the ledger's
region); ReplicateKey, UpdatePrimaryRegion and MultiRegionConfiguration
on the wire, with AWS's error names. Responses are checked against the
model's shapes by serverkit's after-call hook."""

from __future__ import annotations

import json
import re

import pytest
from botocore.exceptions import ClientError
from keyledger import events as ev
from serverkit import ACCOUNT

EU = "eu-west-1"


def code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def test_two_regions_through_sigv4(server) -> None:
    us, eu = server.client("alice"), server.client("alice", region=EU)
    us_key = us.create_key(Description="us")["KeyMetadata"]
    eu_key = eu.create_key(Description="eu")["KeyMetadata"]
    assert us_key["Arn"].startswith("arn:aws:kms:us-east-1:") and eu_key["Arn"].startswith(f"arn:aws:kms:{EU}:")
    with pytest.raises(ClientError) as info:
        eu.describe_key(KeyId=us_key["KeyId"])
    assert code(info) == "NotFoundException"
    assert info.value.response["Error"]["Message"] == \
        f"Key 'arn:aws:kms:{EU}:{ACCOUNT}:key/{us_key['KeyId']}' does not exist"
    assert us_key["KeyId"] not in {k["KeyId"] for k in eu.list_keys()["Keys"]}
    assert eu_key["KeyId"] in {k["KeyId"] for k in eu.list_keys()["Keys"]}
    # one alias name, one key per region
    name = "alias/regional"
    us.create_alias(AliasName=name, TargetKeyId=us_key["KeyId"])
    eu.create_alias(AliasName=name, TargetKeyId=eu_key["KeyId"])
    assert us.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == us_key["KeyId"]
    assert eu.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == eu_key["KeyId"]
    blob = eu.encrypt(KeyId=name, Plaintext=b"eu data")["CiphertextBlob"]
    with pytest.raises(ClientError) as info:
        us.decrypt(CiphertextBlob=blob)
    assert code(info) == "InvalidCiphertextException"
    assert eu.decrypt(CiphertextBlob=blob)["Plaintext"] == b"eu data"
    # the records say where
    regions = {r.region for r in server.records() if getattr(r.event, "key_id", None) == eu_key["KeyId"]}
    assert regions == {EU}


def test_auth_none_takes_the_region_from_the_unverified_scope(start_server) -> None:
    srv = start_server(auth="none")
    status, _, body = srv.raw("TrentService.CreateKey", "{}", region=EU)
    assert status == 200 and body["KeyMetadata"]["Arn"].startswith(f"arn:aws:kms:{EU}:")
    status, _, listed = srv.raw("TrentService.ListKeys", "{}", who=None)  # no header: the ledger's region
    assert status == 200 and listed["Keys"] == []
    status, _, listed = srv.raw("TrentService.ListKeys", "{}", region=EU)
    assert [k["KeyId"] for k in listed["Keys"]] == [body["KeyMetadata"]["KeyId"]]


def test_multi_region_keys_on_the_wire(server) -> None:
    us, eu = server.client("alice"), server.client("alice", region=EU)
    meta = us.create_key(MultiRegion=True, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    key = meta["KeyId"]
    assert re.fullmatch(r"mrk-[0-9a-f]{32}", key) and meta["MultiRegion"] is True
    assert meta["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    out = us.replicate_key(KeyId=key, ReplicaRegion=EU, Description="replica",
                           Tags=[{"TagKey": "site", "TagValue": "dublin"}])
    assert out["ReplicaKeyMetadata"]["Arn"] == f"arn:aws:kms:{EU}:{ACCOUNT}:key/{key}"
    assert out["ReplicaTags"] == [{"TagKey": "site", "TagValue": "dublin"}]
    assert json.loads(out["ReplicaPolicy"])["Statement"]
    config = eu.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]
    assert config == {"MultiRegionKeyType": "REPLICA",
                      "PrimaryKey": {"Arn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key}", "Region": "us-east-1"},
                      "ReplicaKeys": [{"Arn": f"arn:aws:kms:{EU}:{ACCOUNT}:key/{key}", "Region": EU}]}
    signature = eu.sign(KeyId=key, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert us.verify(KeyId=key, Message=b"m", Signature=signature, SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    with pytest.raises(ClientError) as info:
        us.replicate_key(KeyId=key, ReplicaRegion=EU)
    assert code(info) == "AlreadyExistsException"
    with pytest.raises(ClientError) as info:
        eu.replicate_key(KeyId=key, ReplicaRegion="ap-south-1")
    assert code(info) == "UnsupportedOperationException"
    with pytest.raises(ClientError) as info:
        us.replicate_key(KeyId=key, ReplicaRegion="Europe")
    assert code(info) == "ValidationException"
    us.update_primary_region(KeyId=key, PrimaryRegion=EU)
    assert eu.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    assert us.describe_key(KeyId=key)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    # a primary with replicas waits for them
    out = eu.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingReplicaDeletion" and "DeletionDate" not in out
    described = eu.describe_key(KeyId=key)["KeyMetadata"]
    assert described["PendingDeletionWindowInDays"] == 7
    created = [r for r in server.records() if isinstance(r.event, ev.ReplicaKeyCreated)]
    assert [(r.region, r.operation) for r in created] == [(EU, "ReplicateKey")]
