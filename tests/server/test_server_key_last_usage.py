"""GetKeyLastUsage through boto3 and a real server: the response's shape on
the wire (no KeyLastUsage member for an unused key; epoch-second dates), the
request id a client saw for its Encrypt comes back as KmsRequestId, and an
alias is refused as AWS refuses it."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from serverkit import Server


def test_last_usage_through_boto3(server: Server) -> None:
    kms = server.client("alice")
    meta = kms.create_key()["KeyMetadata"]
    key = meta["KeyId"]
    status, _, body = server.raw("TrentService.GetKeyLastUsage", json.dumps({"KeyId": key}))
    assert status == 200
    assert set(body) == {"KeyId", "TrackingStartDate", "KeyCreationDate"} and body["KeyId"] == key
    assert isinstance(body["KeyCreationDate"], (int, float))

    encrypted = kms.encrypt(KeyId=key, Plaintext=b"x")
    request_id = encrypted["ResponseMetadata"]["RequestId"]
    kms.describe_key(KeyId=key)
    out = kms.get_key_last_usage(KeyId=meta["Arn"])
    assert out["KeyId"] == key
    assert out["KeyCreationDate"] == out["TrackingStartDate"] == meta["CreationDate"]
    last = out["KeyLastUsage"]
    assert last["Operation"] == "Encrypt" and last["KmsRequestId"] == request_id
    assert set(last) == {"Operation", "Timestamp", "CloudTrailEventId", "KmsRequestId"}

    kms.create_alias(AliasName="alias/last-usage", TargetKeyId=key)
    with pytest.raises(ClientError) as info:
        kms.get_key_last_usage(KeyId="alias/last-usage")
    assert info.value.response["Error"]["Code"] == "NotFoundException"
