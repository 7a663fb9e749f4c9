"""boto3 against a live server: every operation, the errors AWS clients see,
and the log that records all of it, refusals included."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError

from keyledger import checkpoint
from keyledger import events as ev
from keyledger.server import protocol
from keyledger.server.app import configure_logging
from serverkit import ACCOUNT, REGION, Server
from test_server_asymmetric import ASYMMETRIC_OPERATIONS  # exercised there
from test_server_import import IMPORT_OPERATIONS  # exercised there
from test_server_ml_kem import ML_KEM_OPERATIONS  # exercised there
from test_server_custom_key_stores import CUSTOM_KEY_STORE_OPERATIONS  # exercised there

ARN_PREFIX = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return info.value.response["Error"]["Code"]


def by_request(server: Server, request_id: str) -> list[ev.Record]:
    return [rec for rec in server.records() if rec.request_id == request_id]


def test_every_operation_through_boto3(server: Server) -> None:
    kms = server.client("alice")
    called: set[str] = set()
    kms.meta.events.register("after-call.kms", lambda model, **_: called.add(model.name))
    alice = server.access["alice"].principal

    meta = kms.create_key(Description="orders", Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]
    key = meta["KeyId"]
    assert meta["Arn"] == ARN_PREFIX + key and meta["KeyState"] == "Enabled"  # bare id, and the ARN
    assert isinstance(meta["CreationDate"], datetime)
    other = kms.create_key()["KeyMetadata"]["KeyId"]

    kms.update_key_description(KeyId=key, Description="orders v2")
    assert kms.describe_key(KeyId=ARN_PREFIX + key)["KeyMetadata"]["Description"] == "orders v2"
    assert key in {k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]}
    page = kms.list_keys(Limit=1)
    assert page["Truncated"] and kms.list_keys(Limit=1, Marker=page["NextMarker"])["Keys"]

    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "env", "TagValue": "test"}])
    kms.untag_resource(KeyId=key, TagKeys=["team"])
    assert kms.list_resource_tags(KeyId=key)["Tags"] == [{"TagKey": "env", "TagValue": "test"}]

    kms.create_alias(AliasName="alias/orders", TargetKeyId=key)
    kms.update_alias(AliasName="alias/orders", TargetKeyId=other)
    kms.update_alias(AliasName="alias/orders", TargetKeyId=key)
    aliases = kms.list_aliases(KeyId=key)["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/orders"]
    assert aliases[0]["TargetKeyId"] == key  # TargetKeyId is the bare id
    assert aliases[0]["AliasArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/orders"
    assert "alias/orders" in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}

    # data plane, by every KeyId form
    for form in (key, ARN_PREFIX + key, "alias/orders", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/orders"):
        out = kms.encrypt(KeyId=form, Plaintext=b"secret", EncryptionContext={"order": "42"})
        assert out["KeyId"] == ARN_PREFIX + key and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
        back = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"order": "42"})
        assert back["Plaintext"] == b"secret" and back["KeyId"] == ARN_PREFIX + key
    re = kms.re_encrypt(CiphertextBlob=out["CiphertextBlob"], SourceEncryptionContext={"order": "42"},
                        DestinationKeyId=other, DestinationEncryptionContext={"moved": "yes"})
    assert re["SourceKeyId"] == ARN_PREFIX + key and re["KeyId"] == ARN_PREFIX + other
    assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"], KeyId=other,
                       EncryptionContext={"moved": "yes"})["Plaintext"] == b"secret"
    dk = kms.generate_data_key(KeyId="alias/orders", KeySpec="AES_256", EncryptionContext={"f": "1"})
    assert len(dk["Plaintext"]) == 32 and dk["KeyId"] == ARN_PREFIX + key
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"],
                       EncryptionContext={"f": "1"})["Plaintext"] == dk["Plaintext"]
    nop = kms.generate_data_key_without_plaintext(KeyId=key, NumberOfBytes=16)
    assert "Plaintext" not in nop and len(kms.decrypt(CiphertextBlob=nop["CiphertextBlob"])["Plaintext"]) == 16
    assert len(kms.generate_random(NumberOfBytes=64)["Plaintext"]) == 64
    assert kms.get_key_last_usage(KeyId=key)["KeyLastUsage"]["Operation"] == "Decrypt"

    # rotation
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 90
    assert isinstance(status["NextRotationDate"], datetime)
    kms.disable_key_rotation(KeyId=key)
    assert not kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"]
    kms.rotate_key_on_demand(KeyId=key)
    rotations = kms.list_key_rotations(KeyId=key)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"],  # old versions still decrypt
                       EncryptionContext={"f": "1"})["Plaintext"] == dk["Plaintext"]

    # key policies and grants
    policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    assert policy["Statement"]
    assert kms.list_key_policies(KeyId=key)["PolicyNames"] == ["default"]
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(policy))
    bob = server.access["bob"].principal
    grant = kms.create_grant(KeyId=key, GranteePrincipal=bob, RetiringPrincipal=alice,
                             Operations=["Encrypt", "Decrypt"],
                             Constraints={"EncryptionContextSubset": {"order": "42"}})
    assert grant["GrantId"] in {g["GrantId"] for g in kms.list_grants(KeyId=key)["Grants"]}
    assert grant["GrantId"] in {g["GrantId"] for g in kms.list_retirable_grants(RetiringPrincipal=alice)["Grants"]}
    as_bob = server.client("bob")
    assert as_bob.encrypt(KeyId=ARN_PREFIX + key, Plaintext=b"x", EncryptionContext={"order": "42"},
                          GrantTokens=[grant["GrantToken"]])["KeyId"] == ARN_PREFIX + key
    kms.retire_grant(GrantToken=grant["GrantToken"])
    second = kms.create_grant(KeyId=key, GranteePrincipal=bob, Operations=["Decrypt"])
    kms.revoke_grant(KeyId=key, GrantId=second["GrantId"])
    assert kms.list_grants(KeyId=key)["Grants"] == []

    # lifecycle
    kms.disable_key(KeyId=key)
    kms.enable_key(KeyId=key)
    kms.delete_alias(AliasName="alias/orders")
    sched = kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert sched["KeyId"] == ARN_PREFIX + key and sched["KeyState"] == "PendingDeletion"
    assert sched["PendingWindowInDays"] == 7 and isinstance(sched["DeletionDate"], datetime)
    assert kms.cancel_key_deletion(KeyId=key)["KeyId"] == ARN_PREFIX + key

    mrk = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]  # (more in test_server_regions.py)
    kms.replicate_key(KeyId=mrk, ReplicaRegion="eu-west-1")
    kms.update_primary_region(KeyId=mrk, PrimaryRegion="eu-west-1")

    expected = set(protocol.OPERATIONS) - ASYMMETRIC_OPERATIONS - IMPORT_OPERATIONS - ML_KEM_OPERATIONS \
        - CUSTOM_KEY_STORE_OPERATIONS
    assert called >= expected, f"not exercised: {sorted(expected - called)}"

    # everything alice did is in the log under her name
    ops = {rec.operation for rec in server.records() if rec.principal == alice}
    assert ops >= set(protocol.OPERATIONS) - {"RotateKey"} - ASYMMETRIC_OPERATIONS - IMPORT_OPERATIONS \
        - ML_KEM_OPERATIONS - CUSTOM_KEY_STORE_OPERATIONS


def test_request_id_names_the_log_record(server: Server, kms: Any, key_id: str) -> None:
    out = kms.encrypt(KeyId=key_id, Plaintext=b"p")
    records = by_request(server, out["ResponseMetadata"]["RequestId"])
    assert [type(r.event) for r in records] == [ev.Encrypted]
    assert records[0].principal == server.access["alice"].principal


@pytest.mark.parametrize("call, code", [
    (lambda kms, key: kms.describe_key(KeyId=str(uuid.uuid4())), "NotFoundException"),
    (lambda kms, key: kms.describe_key(KeyId="alias/missing"), "NotFoundException"),
    (lambda kms, key: kms.generate_random(NumberOfBytes=2000), "ValidationException"),
    (lambda kms, key: kms.encrypt(KeyId=key, Plaintext=b"x" * 4097), "ValidationException"),
    (lambda kms, key: kms.decrypt(CiphertextBlob=b"garbage" * 10), "InvalidCiphertextException"),
    (lambda kms, key: kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key, Plaintext=b"x",
                                                             EncryptionContext={"a": "1"})["CiphertextBlob"],
                                  EncryptionContext={"a": "2"}), "InvalidCiphertextException"),
    (lambda kms, key: kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"],
                                  KeyId=kms.create_key()["KeyMetadata"]["KeyId"]), "IncorrectKeyException"),
    (lambda kms, key: kms.create_alias(AliasName="alias/aws/x", TargetKeyId=key), "NotAuthorizedException"),
    (lambda kms, key: kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="SM2"), "UnsupportedOperationException"),
    (lambda kms, key: kms.list_keys(Marker="!!!"), "InvalidMarkerException"),
    (lambda kms, key: kms.encrypt(KeyId=key, Plaintext=b"x", DryRun=True), "DryRunOperationException"),
    (lambda kms, key: kms.describe_key(KeyId="k" * 600), "NotFoundException"),  # too long to index
    (lambda kms, key: kms.encrypt(KeyId="k" * 5000, Plaintext=b"x"), "ValidationException"),
])
def test_client_errors(server: Server, kms: Any, key_id: str, call: Any, code: str) -> None:
    before = server.head()
    with pytest.raises(ClientError) as info:
        call(kms, key_id)
    assert code_of(info) == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    denied = [r for r in server.records(before) if isinstance(r.event, ev.RequestDenied)]
    assert denied and denied[-1].event.error_code == code
    assert denied[-1].request_id == info.value.response["ResponseMetadata"]["RequestId"]


def test_key_state_errors(server: Server, kms: Any, key_id: str) -> None:
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ClientError) as info:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code_of(info) == "DisabledException"
    kms.enable_key(KeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(ClientError) as info:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code_of(info) == "KMSInvalidStateException"
    kms.create_alias(AliasName="alias/twice", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    with pytest.raises(ClientError) as info:
        kms.create_alias(AliasName="alias/twice", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    assert code_of(info) == "AlreadyExistsException"


def test_access_denied_for_a_principal_without_permission(server: Server, key_id: str) -> None:
    bob = server.client("bob")
    with pytest.raises(ClientError) as info:
        bob.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code_of(info) == "AccessDeniedException"
    assert server.access["bob"].principal in info.value.response["Error"]["Message"]
    record = by_request(server, info.value.response["ResponseMetadata"]["RequestId"])[-1]
    assert record.principal == server.access["bob"].principal
    assert record.event.error_code == "AccessDeniedException" and record.event.key_id == key_id


def _denial(server: Server, before: int, request_id: str) -> ev.Record:
    records = [r for r in server.records(before) if r.request_id == request_id]
    assert len(records) == 1 and isinstance(records[0].event, ev.RequestDenied), records
    return records[0]


def _summarized(server: Server, before: int, request_id: str, code: str) -> ev.UnauthenticatedRequestsRefused:
    """An unauthenticated refusal: no record of its own (strangers may not
    write the log at line rate), but counted in the next summary record."""
    assert not [r for r in server.records(before) if r.request_id == request_id]
    record = server.summary_of(request_id, before)
    assert record.principal == "anonymous" and record.event.error_code == code
    assert record.event.source_address == "127.0.0.1" and record.event.count >= 1
    return record.event


def test_bad_signature_is_refused_and_recorded(server: Server, key_id: str) -> None:
    forged = server.client("alice", aws_secret_access_key="x" * 40)
    before = server.head()
    with pytest.raises(ClientError) as info:
        forged.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code_of(info) == "InvalidSignatureException"
    summary = _summarized(server, before, info.value.response["ResponseMetadata"]["RequestId"],
                          "InvalidSignatureException")
    assert summary.operations == ("Encrypt",)
    assert summary.access_key_ids == (server.access["alice"].access_key_id,)  # who claimed to ask
    assert server.access["alice"].secret_access_key not in repr(server.records(before))


def test_unknown_access_key(server: Server, key_id: str) -> None:
    stranger = server.client("alice", aws_access_key_id="AKIAXXXXXXXXXXXXXXXX")
    before = server.head()
    with pytest.raises(ClientError) as info:
        stranger.list_keys()
    assert code_of(info) == "UnrecognizedClientException"
    assert info.value.response["Error"]["Message"] == "The security token included in the request is invalid."
    summary = _summarized(server, before, info.value.response["ResponseMetadata"]["RequestId"],
                          "UnrecognizedClientException")
    assert summary.operations == ("ListKeys",) and summary.access_key_ids == ("AKIAXXXXXXXXXXXXXXXX",)


def test_clock_skew(server: Server) -> None:
    late = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=20)
    kms = server.client("alice")
    before = server.head()
    with mock.patch("botocore.auth.get_current_datetime", lambda: late):
        with pytest.raises(ClientError) as info:
            kms.list_keys()
    assert code_of(info) == "InvalidSignatureException"
    assert "Signature expired" in info.value.response["Error"]["Message"]
    _summarized(server, before, info.value.response["ResponseMetadata"]["RequestId"], "InvalidSignatureException")


def test_scope_naming_no_region(server: Server) -> None:
    """Any region of the account is the request's region (test_server_regions.py);
    a scope whose region is no region name is refused."""
    with pytest.raises(ClientError) as info:
        server.client("alice", region="moon").list_keys()
    assert code_of(info) == "InvalidSignatureException"


@pytest.mark.parametrize("target, body, who, code", [
    ("TrentService.Frobnicate", "{}", "alice", "UnknownOperationException"),
    (None, "{}", "alice", "UnknownOperationException"),
    ("TrentService.GenerateRandom", '{"NumberOfBytes": 8, "Recipient": '
     '{"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": "AAAA"}}',
     "alice", "UnsupportedOperationException"),
    ("TrentService.Encrypt", "{not json", "alice", "SerializationException"),
    ("TrentService.Encrypt", "[1, 2]", "alice", "SerializationException"),
    ("TrentService.Encrypt", '{"KeyId": 12, "Plaintext": "aGk="}', "alice", "SerializationException"),
    ("TrentService.Encrypt", '{"KeyId": "alias/x", "Plaintext": "%%%"}', "alice", "SerializationException"),
    ("TrentService.GenerateRandom", '{"NumberOfBytes": "sixteen"}', "alice", "SerializationException"),
    ("TrentService.Encrypt", '{"KeyId": "alias/x"}', "alice", "ValidationException"),
    ("TrentService.Decrypt", "{}", "alice", "ValidationException"),
    ("TrentService.Encrypt", "{" * 1200 + "}" * 1200, "alice", "SerializationException"),
    ("TrentService.Encrypt", "[" * 100_000 + "]" * 100_000, "alice", "SerializationException"),
    ("TrentService.Encrypt", '{"KeyId": "alias/x", "Plaintext": "aGk=", "EncryptionContext": '
                             + '{"a": ' * 1500 + '"b"' + "}" * 1500 + "}", "alice", "SerializationException"),
])
def test_malformed_requests(server: Server, target: str | None, body: str, who: str | None, code: str) -> None:
    before = server.head()
    status, headers, parsed = server.raw(target, body, who=who)
    assert (status, parsed["__type"]) == (400, code)
    record = _denial(server, before, headers["x-amzn-requestid"])
    assert record.event.error_code == code
    assert record.principal == server.access[who].principal


def test_missing_authentication_token(server: Server) -> None:
    before = server.head()
    status, headers, parsed = server.raw("TrentService.Encrypt", "{}", who=None)
    assert (status, parsed) == (403, {"__type": "MissingAuthenticationTokenException",
                                      "message": "Missing Authentication Token"})
    _summarized(server, before, headers["x-amzn-requestid"], "MissingAuthenticationTokenException")


def test_signed_but_tampered_operation(server: Server) -> None:
    def swap(headers: dict[str, str]) -> None:
        headers["X-Amz-Target"] = "TrentService.ScheduleKeyDeletion"
    status, _, parsed = server.raw("TrentService.DescribeKey", '{"KeyId": "alias/x"}', tamper=swap)
    assert (status, parsed["__type"]) == (400, "InvalidSignatureException")


def test_not_kms_requests(server: Server) -> None:
    before = server.head()
    status, _, parsed = server.raw(None, "", method="GET", who=None)
    assert status == 405 and parsed["__type"] == "UnknownOperationException"
    status, _, parsed = server.raw(None, "{}", path="/other", who=None)
    assert status == 404
    status, _, health = server.raw(None, "", path="/healthz", method="GET", who=None)
    assert status == 200 and health == {"status": "ok"}
    assert server.head() == before  # not KMS requests: nothing to record


def test_oversized_request(start_server: Any) -> None:
    server = start_server(max_body=1024)
    before = server.head()
    status, headers, parsed = server.raw("TrentService.Encrypt", "{" + " " * 2048 + "}")
    assert status == 413 and parsed["__type"] == "ValidationException"
    _summarized(server, before, headers["x-amzn-requestid"], "ValidationException")


def test_auth_none_is_the_account_root(start_server: Any) -> None:
    server = start_server(auth="none", users=())
    status, headers, parsed = server.raw("TrentService.CreateKey", "{}", who=None)
    assert status == 200 and parsed["KeyMetadata"]["KeyState"] == "Enabled"
    assert by_request(server, headers["x-amzn-requestid"])[0].principal == f"arn:aws:iam::{ACCOUNT}:root"


def test_access_log(server: Server, kms: Any, key_id: str, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    configure_logging(str(path))
    try:
        out = kms.encrypt(KeyId=key_id, Plaintext=b"top secret plaintext")
        with pytest.raises(ClientError):
            server.client("alice", aws_secret_access_key="y" * 40).decrypt(CiphertextBlob=out["CiphertextBlob"])
    finally:
        configure_logging(None)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(l["operation"], l["status"], l.get("error")) for l in lines] == [
        ("Encrypt", 200, None), ("Decrypt", 400, "InvalidSignatureException")]
    assert lines[0]["request_id"] == out["ResponseMetadata"]["RequestId"]
    assert lines[0]["principal"] == server.access["alice"].principal and lines[0]["key"] == key_id
    assert lines[1]["access_key"] == server.access["alice"].access_key_id
    text = path.read_text()
    for secret in (b"top secret plaintext", base64.b64encode(b"top secret plaintext"),
                   server.access["alice"].secret_access_key.encode(), b"Signature="):
        assert secret.decode() not in text


def test_concurrent_clients_share_group_commits(server: Server, key_id: str) -> None:
    committer = server.app.committer
    batches, requests = committer.batches, committer.requests
    results: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        client = server.client("alice")
        try:
            for i in range(10):
                out = client.encrypt(KeyId=key_id, Plaintext=b"%d" % i)
                results.append(out["ResponseMetadata"]["RequestId"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 160
    logged = {r.request_id for r in server.records() if isinstance(r.event, ev.Encrypted)}
    assert set(results) <= logged
    assert committer.requests - requests >= 160
    assert committer.batches - batches < committer.requests - requests  # some batches held many


def test_rotation_sweep_on_a_timer(start_server: Any) -> None:
    now = [datetime.now(timezone.utc)]
    server = start_server(clock=lambda: now[0], sweep_interval=0.05)
    kms = server.client("alice")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    mark = server.head()
    now[0] += timedelta(days=91)  # nobody touches the key: only the sweep can rotate it
    deadline = time.monotonic() + 10
    while not [r for r in server.records(mark) if isinstance(r.event, ev.KeyRotated)]:
        assert time.monotonic() < deadline, "the sweep never rotated the key"
        time.sleep(0.02)
    rotated = [r for r in server.records(mark) if isinstance(r.event, ev.KeyRotated)]
    assert rotated[0].event.rotation_type == "AUTOMATIC" and rotated[0].event.key_id == key
    assert rotated[0].principal == ev.SERVICE_PRINCIPAL
    assert [r["RotationType"] for r in kms.list_key_rotations(KeyId=key)["Rotations"]] == ["AUTOMATIC"]
    # each sweep also signs a checkpoint; one covers the rotation
    deadline = time.monotonic() + 10
    while True:
        with server.kms.store.snapshot() as snap:
            sizes = [checkpoint.parse(note)[0].size for note in snap.checkpoints()]
        if sizes and max(sizes) > rotated[0].seq:
            break
        assert time.monotonic() < deadline, "the sweep never signed a checkpoint"
        time.sleep(0.02)


def test_internal_error_is_a_500_without_details(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyledger.service import KeyLedger, Planned

    def broken(self: KeyLedger, **_: Any) -> Planned:
        def work(view: Any) -> Any:
            raise RuntimeError("boom: an internal detail")
        return Planned("GenerateRandom", "not-a-request", work)

    monkeypatch.setattr(KeyLedger, "generate_random", broken)
    before = server.head()
    status, headers, parsed = server.raw("TrentService.GenerateRandom", '{"NumberOfBytes": 8}')
    assert (status, parsed["__type"]) == (500, "KMSInternalException")
    assert "boom" not in parsed["message"]
    # still on record, under the answer's request id, with no detail either
    record = _denial(server, before, headers["x-amzn-requestid"])
    assert (record.operation, record.event.error_code) == ("GenerateRandom", "KMSInternalException")
    assert record.principal == server.access["alice"].principal and "boom" not in repr(record)
    monkeypatch.undo()
    assert len(server.client("alice").generate_random(NumberOfBytes=8)["Plaintext"]) == 8  # still serving


def test_unexpected_failure_before_the_library_is_recorded(server: Server,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug while the request is decoded (not in the library) is recorded too."""
    def broken(body: bytes) -> Any:
        raise KeyError("a detail from the body")

    monkeypatch.setattr(protocol, "decode_body", broken)
    before = server.head()
    status, headers, parsed = server.raw("TrentService.ListKeys", "{}")
    monkeypatch.undo()
    assert (status, parsed["__type"]) == (500, "KMSInternalException") and "detail" not in parsed["message"]
    record = _denial(server, before, headers["x-amzn-requestid"])
    assert (record.operation, record.event.error_code) == ("ListKeys", "KMSInternalException")
    assert record.principal == server.access["alice"].principal
