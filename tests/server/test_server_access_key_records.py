"""Which credential made each request, on `keyledger serve`: the access key
id whose signature proved the caller is on every record of its request
(CloudTrail's userIdentity.accessKeyId), a user's AKIA... or a role
session's ASIA..., so what a leaked key did can be listed and the key
revoked knowing its reach. A request the server refused before anyone was
proved, and the library's and CLI's calls, name no key."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import msgspec
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from click.testing import CliRunner

from keyledger import events as ev
from keyledger.cli.main import main as KEYLEDGER
from serverkit import ACCOUNT, REGION, Server

ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
ONE_TRY = Config(retries={"total_max_attempts": 1})


def keyledger(home: Path, *args: str) -> str:
    result = CliRunner().invoke(KEYLEDGER, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def audit(home: Path, *args: str) -> str:
    return keyledger(home, "audit", "log", *args)


def test_every_record_names_the_key_that_signed_its_request(tmp_path: Path) -> None:
    server = Server(tmp_path / "ledger")
    try:
        alice_key = server.access["alice"].access_key_id
        bob_key = server.access["bob"].access_key_id
        alice = server.client("alice")
        start = server.head()
        key_id = alice.create_key()["KeyMetadata"]["KeyId"]
        blob = alice.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
        with pytest.raises(ClientError):
            server.client("bob").decrypt(CiphertextBlob=blob)  # refused: still bob's key on the record
        # a role session signs with its own ASIA... key
        server.kms.create_role("batch", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:AssumeRole"}]}))
        server.kms.put_principal_policy(f"arn:aws:iam::{ACCOUNT}:role/batch", "use", json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}))
        sts = boto3.client("sts", endpoint_url=server.url, region_name=REGION, config=ONE_TRY,
                           aws_access_key_id=alice_key,
                           aws_secret_access_key=server.access["alice"].secret_access_key)
        credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/batch",
                                      RoleSessionName="job")["Credentials"]
        session = boto3.client("kms", endpoint_url=server.url, region_name=REGION, config=ONE_TRY,
                               aws_access_key_id=credentials["AccessKeyId"],
                               aws_secret_access_key=credentials["SecretAccessKey"],
                               aws_session_token=credentials["SessionToken"])
        session.decrypt(CiphertextBlob=blob)
        server.kms.as_caller(ALICE).list_keys()  # the library: no key signed it
        forged = boto3.client("kms", endpoint_url=server.url, region_name=REGION, config=ONE_TRY,
                              aws_access_key_id=alice_key, aws_secret_access_key="not-alices-secret")
        with pytest.raises(ClientError):  # someone with the id and not the secret: refused, summarized
            forged.list_keys()
        server.flush()
        # IAM's GetAccessKeyLastUsed, from the records (through boto3's IAM client)
        iam = boto3.client("iam", endpoint_url=server.url, region_name=REGION, config=ONE_TRY,
                           aws_access_key_id=server.access["root"].access_key_id,
                           aws_secret_access_key=server.access["root"].secret_access_key)
        last = iam.get_access_key_last_used(AccessKeyId=alice_key)
        assert last["UserName"] == "alice"
        assert (last["AccessKeyLastUsed"]["ServiceName"], last["AccessKeyLastUsed"]["Region"]) == ("sts", REGION)
        assert last["AccessKeyLastUsed"]["LastUsedDate"].tzinfo is not None
        assert iam.get_access_key_last_used(AccessKeyId=bob_key)["AccessKeyLastUsed"]["ServiceName"] == "kms"
        with pytest.raises(ClientError) as unknown:
            iam.get_access_key_last_used(AccessKeyId="AKIAIOSFODNN7EXAMPLE")
        assert unknown.value.response["Error"]["Code"] == "AccessDenied"
        records = server.records(start)
        signed = [(r.operation, r.principal, r.access_key) for r in records
                  if r.operation in ("CreateKey", "Encrypt", "Decrypt", "AssumeRole", "ListKeys")]
        session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/batch/job"
        assert signed == [("CreateKey", ALICE, alice_key), ("Encrypt", ALICE, alice_key),
                          ("Decrypt", BOB, bob_key), ("AssumeRole", ALICE, alice_key),
                          ("Decrypt", session_arn, credentials["AccessKeyId"]),
                          ("ListKeys", ALICE, msgspec.UNSET)]
        assert credentials["AccessKeyId"].startswith("ASIA")
        # the service's own records made while serving a request name no key
        assert all(r.access_key is msgspec.UNSET for r in records if r.principal == ev.SERVICE_PRINCIPAL)
    finally:
        server.stop()
        server.kms.close()

    home = tmp_path / "ledger"
    # every request one key signed, and nothing else
    lines = [json.loads(line) for line in audit(home, "--access-key-id", alice_key, "--oldest-first").splitlines()]
    assert [line["operation"] for line in lines if line["operation"] != "DescribeKey"] == \
        ["CreateKey", "Encrypt", "AssumeRole"]
    assert {line["access_key"] for line in lines} == {alice_key}
    by_session = audit(home, "--access-key-id", credentials["AccessKeyId"], "--principal", session_arn)
    assert [json.loads(line)["operation"] for line in by_session.splitlines()] == ["Decrypt"]
    # CloudTrail: accessKeyId, and for the session when its credentials were issued
    trail = json.loads(audit(home, "--format", "cloudtrail", "--oldest-first"))["Records"]
    decrypts = [r["userIdentity"] for r in trail if r["eventName"] == "Decrypt"]
    assert [d.get("accessKeyId") for d in decrypts] == [bob_key, credentials["AccessKeyId"]]
    assumed = [r for r in trail if r["eventName"] == "AssumeRole"][0]
    attributes = decrypts[1]["sessionContext"]["attributes"]
    assert attributes == {"creationDate": assumed["eventTime"], "mfaAuthenticated": "false"}
    assert "accessKeyId" not in [r for r in trail if r["eventName"] == "ListKeys"][-1]["userIdentity"]

    # forensics: whose the key is, its lifecycle, and everything it signed, summed up
    found = json.loads(keyledger(home, "forensics", "access-key", alice_key))
    assert found["Owner"] == ALICE
    assert [e["Event"] for e in found["Lifecycle"]] == ["AccessKeyCreated"]
    assert found["Requests"] == len(lines) and found["LastUse"]["Operation"] == "AssumeRole"
    assert {o["Operation"]: o["Requests"] for o in found["ByOperation"]}["Encrypt"] == 1
    assert found["ByKey"][0]["KeyId"] == key_id
    assert found["BySourceAddress"] == [{"SourceAddress": "127.0.0.1", "Requests": len(lines)}]
    assert [(u["SourceAddress"], u["ErrorCode"]) for u in found["UnauthenticatedRefusals"]] == [
        ("127.0.0.1", "InvalidSignatureException")]
    by_bob = json.loads(keyledger(home, "forensics", "access-key", bob_key))
    assert [(r["Operation"], r["ErrorCode"]) for r in by_bob["Refused"]] == [("Decrypt", "AccessDeniedException")]
    by_session = json.loads(keyledger(home, "forensics", "access-key", credentials["AccessKeyId"]))
    assert by_session["Owner"] == session_arn and by_session["Requests"] == 1
    assert [(e["Event"], e["Role"], e["Principal"]) for e in by_session["Lifecycle"]] == [
        ("RoleAssumed", f"arn:aws:iam::{ACCOUNT}:role/batch", ALICE)]
    text = keyledger(home, "--output", "text", "forensics", "access-key", alice_key)
    assert f"owner:      {ALICE}" in text and "by operation:" in text
    unknown = json.loads(keyledger(home, "forensics", "access-key", "AKIAIOSFODNN7EXAMPLE"))
    assert (unknown["Owner"], unknown["Requests"], unknown["Lifecycle"]) == (None, 0, [])
