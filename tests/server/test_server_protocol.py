"""The wire protocol without a server: the vendored model, operation lookup,
request decoding and response encoding."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import botocore.session
import pytest

from keyledger import responses as r
from keyledger.errors import KMSInvalidSignatureException, UnsupportedOperationException, ValidationException
from keyledger.server import protocol
from keyledger.server.protocol import SerializationException, UnknownOperationException

BOTO = botocore.session.get_session().get_service_model("kms")


def _same_shape(ours: str, theirs, seen: set[str]) -> None:
    """Our vendored shape agrees with botocore's wherever the server reads it."""
    if ours in seen:
        return
    seen.add(ours)
    shape = protocol.SHAPES[ours]
    assert shape["type"] == theirs.type_name, ours
    if shape["type"] == "structure":
        assert set(shape.get("required", ())) == set(theirs.required_members), ours
        for name, member in shape["members"].items():
            assert name in theirs.members, f"{ours}.{name} is gone from botocore's model"
            _same_shape(member["shape"], theirs.members[name], seen)
    elif shape["type"] == "list":
        _same_shape(shape["member"]["shape"], theirs.member, seen)
    elif shape["type"] == "map":
        _same_shape(shape["value"]["shape"], theirs.value, seen)


def test_vendored_model_agrees_with_botocore() -> None:
    assert protocol.MODEL["metadata"]["targetPrefix"] + "." == protocol.TARGET_PREFIX
    seen: set[str] = set()
    for name in protocol.OPERATIONS:
        op = protocol.MODEL["operations"][name]
        theirs = BOTO.operation_model(name)
        _same_shape(op["input"]["shape"], theirs.input_shape, seen)
        if "output" in op:
            _same_shape(op["output"]["shape"], theirs.output_shape, seen)


def test_every_core_operation_is_served() -> None:
    core = {"CreateKey", "DescribeKey", "ListKeys", "UpdateKeyDescription", "EnableKey", "DisableKey",
            "ScheduleKeyDeletion", "CancelKeyDeletion", "TagResource", "UntagResource", "ListResourceTags",
            "CreateAlias", "UpdateAlias", "DeleteAlias", "ListAliases", "EnableKeyRotation",
            "DisableKeyRotation", "GetKeyRotationStatus", "RotateKeyOnDemand", "ListKeyRotations", "Encrypt",
            "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateRandom"}
    assert core <= set(protocol.OPERATIONS)
    assert "RotateDue" not in protocol.OPERATIONS and "RecordDenied" not in protocol.OPERATIONS


@pytest.mark.parametrize("name, expected", [
    ("GenerateDataKeyWithoutPlaintext", "generate_data_key_without_plaintext"),
    ("ReEncrypt", "re_encrypt"), ("KeyId", "key_id"), ("AWSAccountId", "aws_account_id"),
    ("BypassPolicyLockoutSafetyCheck", "bypass_policy_lockout_safety_check"),
])
def test_snake(name: str, expected: str) -> None:
    assert protocol.snake(name) == expected


def test_operation_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    assert protocol.operation_for("TrentService.Encrypt").method == "encrypt"
    for name in protocol.MODEL["operations"]:  # every operation of the vendored model is implemented
        assert protocol.operation_for("TrentService." + name).name == name
    with pytest.raises(UnknownOperationException):
        protocol.operation_for("TrentService.Frobnicate")
    with pytest.raises(UnknownOperationException):
        protocol.operation_for("DynamoDB_20120810.GetItem")
    with pytest.raises(UnknownOperationException):
        protocol.operation_for(None)
    # an operation a newer model adds is answered as unsupported until the library has its method
    monkeypatch.setitem(protocol.MODEL["operations"], "FutureOperation", {"name": "FutureOperation"})
    with pytest.raises(UnsupportedOperationException, match="FutureOperation is not supported by keyledger."):
        protocol.operation_for("TrentService.FutureOperation")
    assert protocol.operation_name("TrentService.Encrypt") == "Encrypt"
    assert protocol.operation_name("TrentService." + "x" * 500) == "Unknown"
    assert protocol.operation_name(None) == "Unknown"


def test_request_decoding() -> None:
    op = protocol.OPERATIONS["Encrypt"]
    doc = {"KeyId": "alias/a", "Plaintext": base64.b64encode(b"hi").decode(),
           "EncryptionContext": {"k": "v"}, "DryRun": False, "Unknown": 1, "GrantTokens": None}
    assert protocol.request_kwargs(op, doc) == {"key_id": "alias/a", "plaintext": b"hi",
                                                "encryption_context": {"k": "v"}, "dry_run": False}


@pytest.mark.parametrize("doc, error, text", [
    ({"Plaintext": "aGk="}, ValidationException, "Value null at 'keyId'"),
    ({}, ValidationException, "2 validation errors detected"),
    ({"KeyId": 5, "Plaintext": "aGk="}, SerializationException, "keyId"),
    ({"KeyId": "k", "Plaintext": "not base64!"}, SerializationException, "base64"),
    ({"KeyId": "k", "Plaintext": "aGk=", "EncryptionContext": {"a": 1}}, SerializationException, "string"),
    ({"KeyId": "k", "Plaintext": "aGk=", "EncryptionContext": ["a"]}, SerializationException, "map"),
    ({"KeyId": "k", "Plaintext": "aGk=", "GrantTokens": "t"}, SerializationException, "list"),
    ({"KeyId": "k", "Plaintext": "aGk=", "GrantTokens": ["t"], "Extra": {"x": 1}}, None, ""),  # unknown: ignored
])
def test_request_refusals(doc: dict, error: type | None, text: str) -> None:
    if error is None:
        protocol.request_kwargs(protocol.OPERATIONS["Encrypt"], doc)
        return
    with pytest.raises(error, match=text):
        protocol.request_kwargs(protocol.OPERATIONS["Encrypt"], doc)


def test_a_member_keyledger_lacks_is_refused_unless_absent() -> None:
    random = protocol.OPERATIONS["GenerateRandom"]
    recipient = {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": "AAAA"}
    with pytest.raises(UnsupportedOperationException, match="Recipient"):
        protocol.request_kwargs(random, {"NumberOfBytes": 8, "Recipient": recipient})
    assert protocol.request_kwargs(random, {"NumberOfBytes": 8, "Recipient": None}) == {"number_of_bytes": 8}


def test_integer_and_boolean_types() -> None:
    op = protocol.OPERATIONS["GenerateRandom"]
    assert protocol.request_kwargs(op, {"NumberOfBytes": 16.0}) == {"number_of_bytes": 16}
    for bad in (True, "16", 1.5):
        with pytest.raises(SerializationException):
            protocol.request_kwargs(op, {"NumberOfBytes": bad})
    with pytest.raises(SerializationException):
        protocol.request_kwargs(protocol.OPERATIONS["CreateKey"], {"MultiRegion": "false"})


@pytest.mark.parametrize("body", [b"{", b"[1]", b"\xff\xfe", b'"x"', b"null"])
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(SerializationException):
        protocol.decode_body(body)


def test_empty_body_is_an_empty_object() -> None:
    assert protocol.decode_body(b"") == {} and protocol.decode_body(b"  ") == {}


def test_response_encoding() -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    resp = r.ScheduleKeyDeletionResponse("arn:aws:kms:us-east-1:1:key/x", when, "PendingDeletion", 7)
    wire = json.loads(protocol.encode_response(resp))
    assert wire == {"KeyId": "arn:aws:kms:us-east-1:1:key/x", "DeletionDate": 1714979289.123,
                    "KeyState": "PendingDeletion", "PendingWindowInDays": 7}
    blob = json.loads(protocol.encode_response(r.EncryptResponse(b"\x00\x01", "arn")))
    assert base64.b64decode(blob["CiphertextBlob"]) == b"\x00\x01"
    assert protocol.encode_response(None) == b""
    assert json.loads(protocol.encode_error(ValidationException("bad"))) == {
        "__type": "ValidationException", "message": "bad"}
    # AWS leaves `message` out when there is none (its SDKs then read the message as "")
    assert json.loads(protocol.encode_error(KMSInvalidSignatureException(""))) == {
        "__type": "KMSInvalidSignatureException"}


def test_deep_json_is_refused_before_it_is_decoded() -> None:
    """A body nested deeper than MAX_NESTING (32) levels is refused as too
    deep before the JSON decoder builds anything, found by counting
    brackets outside strings, not by recursing: no deeply nested structure
    is ever built in the server thread. Brackets inside strings (a policy
    document, a tag value, escaped quotes) do not count, and a real request
    with fifty tags decodes as before."""
    for depth in (33, 200, 100_000):
        with pytest.raises(SerializationException, match="nested too deeply"):
            protocol.decode_body(b"[" * depth + b"]" * depth)
        with pytest.raises(SerializationException, match="nested too deeply"):
            protocol.decode_body(b'{"a": "\\\\", "b": ' + b"[" * depth)  # after a string ending in \\
    value, levels = protocol.decode_body(b'{"a": ' + b"[" * 31 + b"]" * 31 + b"}")["a"], 1  # 32 levels: decoded
    while value:
        value, levels = value[0], levels + 1
    assert levels == 31
    policy = json.dumps({"Statement": [{"Action": ["kms:*"], "Condition": {"A": {"b": ["[[[{{{"]}}}] * 40})
    tags = [{"TagKey": f"k{i}", "TagValue": '[{\\"}]'} for i in range(50)]
    body = json.dumps({"Policy": policy, "Tags": tags, "KeyUsage": "ENCRYPT_DECRYPT"}).encode()
    assert body.count(b"[") + body.count(b"{") > protocol.MAX_NESTING  # the walk runs, and finds 3 levels
    decoded = protocol.decode_body(body)
    assert decoded["Tags"][49] == {"TagKey": "k49", "TagValue": '[{\\"}]'} and decoded["Policy"] == policy
