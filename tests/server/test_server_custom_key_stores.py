"""The custom key store operations through boto3 and a real server: an
empty DescribeCustomKeyStores in the model's shape, and the errors the other
operations, CreateKey and GenerateRandom answer for an account without
custom key stores, each on record."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from serverkit import Server

#: the operations this file exercises (test_server_boto3 covers the others)
CUSTOM_KEY_STORE_OPERATIONS = {"DescribeCustomKeyStores", "ConnectCustomKeyStore", "DisconnectCustomKeyStore",
                               "UpdateCustomKeyStore", "DeleteCustomKeyStore", "CreateCustomKeyStore"}
STORE = "cks-1234567890abcdef0"


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return info.value.response["Error"]["Code"]


def test_custom_key_stores_through_boto3(server: Server) -> None:
    kms = server.client("alice")
    called: set[str] = set()
    kms.meta.events.register("after-call.kms", lambda model, **_: called.add(model.name))
    out = kms.describe_custom_key_stores()
    assert (out["CustomKeyStores"], out["Truncated"]) == ([], False) and "NextMarker" not in out
    refusals = [
        (lambda: kms.describe_custom_key_stores(CustomKeyStoreId=STORE), "CustomKeyStoreNotFoundException"),
        (lambda: kms.connect_custom_key_store(CustomKeyStoreId=STORE), "CustomKeyStoreNotFoundException"),
        (lambda: kms.disconnect_custom_key_store(CustomKeyStoreId=STORE), "CustomKeyStoreNotFoundException"),
        (lambda: kms.update_custom_key_store(CustomKeyStoreId=STORE, NewCustomKeyStoreName="n"),
         "CustomKeyStoreNotFoundException"),
        (lambda: kms.delete_custom_key_store(CustomKeyStoreId=STORE), "CustomKeyStoreNotFoundException"),
        (lambda: kms.create_custom_key_store(CustomKeyStoreName="hsm", CloudHsmClusterId="cluster-abcdefghijk",
                                             TrustAnchorCertificate="cert", KeyStorePassword="kmsuser-pw"),
         "CloudHsmClusterNotFoundException"),
        (lambda: kms.create_key(CustomKeyStoreId=STORE, Origin="AWS_CLOUDHSM"), "CustomKeyStoreNotFoundException"),
        (lambda: kms.generate_random(NumberOfBytes=8, CustomKeyStoreId=STORE), "CustomKeyStoreNotFoundException"),
    ]
    for call, code in refusals:
        before = server.head()
        with pytest.raises(ClientError) as info:
            call()
        assert code_of(info) == code
        (record,) = server.records(before)
        assert record.event.error_code == code
    assert called >= CUSTOM_KEY_STORE_OPERATIONS
    assert "kmsuser-pw" not in repr(server.records())
