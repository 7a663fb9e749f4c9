"""Custom key stores: a ledger has none, and every operation answers so as
AWS answers an account without them. DescribeCustomKeyStores lists none;
the others name the store (or cluster, or proxy) that is not there; CreateKey
and GenerateRandom refuse a CustomKeyStoreId. Each call is authorized first
and is one record, and the secrets these requests carry reach no record,
message or file."""

from __future__ import annotations

import os

import keyledger
import pytest
from keyledger import events as ev
from keyledger.errors import (
    AccessDeniedException,
    CloudHsmClusterNotFoundException,
    CustomKeyStoreNotFoundException,
    InvalidMarkerException,
    ValidationException,
    XksProxyUriUnreachableException,
    XksProxyVpcEndpointServiceNotFoundException,
)

STORE = "cks-1234567890abcdef0"
PASSWORD = "kmsuser-password-7f3a"
SECRET = "XksSecretAccessKey0123456789abcdefghijklmnopqrstuv"  # 43+ chars of [a-zA-Z0-9/+=]
CREDENTIAL = {"AccessKeyId": "ABCDEFGHIJKLMNOPQRST", "RawSecretAccessKey": SECRET}


def denial(kms: keyledger.KeyLedger, before: int) -> ev.RequestDenied:
    (record,) = list(kms.store.records(before))
    assert isinstance(record.event, ev.RequestDenied)
    return record.event


def test_none_are_listed(kms) -> None:
    out = kms.describe_custom_key_stores()
    assert (out.custom_key_stores, out.truncated, out.next_marker) == ([], False, None)
    assert kms.describe_custom_key_stores(limit=1).custom_key_stores == []
    last = list(kms.store.records())[-1]
    assert last.event == ev.MetadataRead("DescribeCustomKeyStores")
    for kwargs, error, words in (
            ({"custom_key_store_id": STORE}, CustomKeyStoreNotFoundException, f"Custom key store {STORE} "),
            ({"custom_key_store_name": "hsm"}, CustomKeyStoreNotFoundException, "Custom key store named hsm "),
            ({"marker": "AAAA"}, InvalidMarkerException, "The marker is not valid.")):
        before = kms.store.head().seq
        with pytest.raises(error, match=words):
            kms.describe_custom_key_stores(**kwargs)
        assert denial(kms, before).error_code == error.__name__


@pytest.mark.parametrize("operation", ["connect_custom_key_store", "disconnect_custom_key_store",
                                       "delete_custom_key_store", "update_custom_key_store"])
def test_a_store_id_names_nothing(kms, operation: str) -> None:
    before = kms.store.head().seq
    with pytest.raises(CustomKeyStoreNotFoundException) as caught:
        getattr(kms, operation)(STORE)
    assert caught.value.message == f"Custom key store {STORE} does not exist in this account and Region."
    refused = denial(kms, before)
    assert (refused.operation, refused.error_code) == (
        "".join(p.capitalize() for p in operation.split("_")), "CustomKeyStoreNotFoundException")


def test_create_names_what_is_not_there_and_keeps_no_secret(kms) -> None:
    with pytest.raises(CloudHsmClusterNotFoundException, match="cluster-abcdefghijk was not found"):
        kms.create_custom_key_store("hsm", cloud_hsm_cluster_id="cluster-abcdefghijk", key_store_password=PASSWORD,
                                    trust_anchor_certificate="-----BEGIN CERTIFICATE-----")
    with pytest.raises(ValidationException, match="'cloudHsmClusterId' failed to satisfy constraint: Member must not"):
        kms.create_custom_key_store("hsm", key_store_password=PASSWORD)
    with pytest.raises(XksProxyUriUnreachableException, match="does not connect to external key store proxies"):
        kms.create_custom_key_store("xks", custom_key_store_type="EXTERNAL_KEY_STORE",
                                    xks_proxy_uri_endpoint="https://xks.example.com", xks_proxy_uri_path="/kms/xks/v1",
                                    xks_proxy_connectivity="PUBLIC_ENDPOINT",
                                    xks_proxy_authentication_credential=CREDENTIAL)
    with pytest.raises(XksProxyVpcEndpointServiceNotFoundException, match="com.amazonaws.vpce.us-east-1.vpce-svc-0abc was not found"):
        kms.create_custom_key_store("xks", custom_key_store_type="EXTERNAL_KEY_STORE",
                                    xks_proxy_uri_endpoint="https://xks.example.com", xks_proxy_uri_path="/kms/xks/v1",
                                    xks_proxy_connectivity="VPC_ENDPOINT_SERVICE",
                                    xks_proxy_vpc_endpoint_service_name="com.amazonaws.vpce.us-east-1.vpce-svc-0abc",
                                    xks_proxy_authentication_credential=CREDENTIAL)
    with pytest.raises(CustomKeyStoreNotFoundException):
        kms.update_custom_key_store(STORE, key_store_password=PASSWORD, xks_proxy_authentication_credential=CREDENTIAL)
    with pytest.raises(ValidationException) as short:  # the model's check never shows a password
        kms.update_custom_key_store(STORE, key_store_password="pw")
    assert "'keyStorePassword'" in short.value.message and "pw'" not in short.value.message
    log = repr(list(kms.store.records()))
    assert PASSWORD not in log and SECRET not in log and "'pw'" not in log
    directory = os.path.dirname(kms.store.file_path())
    for name in os.listdir(directory):  # data.mdb, lock.mdb, the key files
        with open(os.path.join(directory, name), "rb") as file:
            data = file.read()
        assert PASSWORD.encode() not in data and SECRET.encode() not in data


def test_create_key_and_generate_random_refuse_a_store(kms) -> None:
    for origin, extra in (("AWS_CLOUDHSM", {}), ("EXTERNAL_KEY_STORE", {"xks_key_id": "ext-key-1"}), ("AWS_KMS", {})):
        with pytest.raises(CustomKeyStoreNotFoundException, match=STORE):
            kms.create_key(custom_key_store_id=STORE, origin=origin, **extra)
    with pytest.raises(CustomKeyStoreNotFoundException, match=STORE):
        kms.generate_random(number_of_bytes=8, custom_key_store_id=STORE)
    assert kms.list_keys().keys == []


def test_xks_key_id_goes_with_the_external_key_store_origin_only(kms) -> None:
    with pytest.raises(ValidationException, match="XksKeyId is valid only for a KMS key with an Origin of "
                                                  "EXTERNAL_KEY_STORE, not AWS_KMS"):
        kms.create_key(xks_key_id="ext-key-1")
    with pytest.raises(ValidationException, match="needs an XksKeyId"):
        kms.create_key(custom_key_store_id=STORE, origin="EXTERNAL_KEY_STORE")
    assert kms.list_keys().keys == []


def test_authorized_first(kms) -> None:
    carol = kms.as_caller(kms.create_user("carol").arn)
    for call in (lambda: carol.describe_custom_key_stores(), lambda: carol.connect_custom_key_store(STORE),
                 lambda: carol.create_custom_key_store("hsm", cloud_hsm_cluster_id="cluster-abcdefghijk"),
                 lambda: carol.create_key(custom_key_store_id=STORE, origin="AWS_CLOUDHSM")):
        with pytest.raises(AccessDeniedException):
            call()
