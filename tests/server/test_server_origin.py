"""Where a request came from, on `keyledger serve`: the TCP peer's address
is aws:SourceIp and whether it came over TLS is aws:SecureTransport, for key
policies and IAM policies to decide on, and the address is on the request's
records (CloudTrail's sourceIPAddress). A header a client writes
(X-Forwarded-For) is never taken for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from serverkit import ACCOUNT, Server

ROOT = f"arn:aws:iam::{ACCOUNT}:root"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("origin-ledger"))
    yield srv
    srv.stop()


def policy(*deny: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        *({"Effect": "Deny", "Principal": "*", "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
           "Condition": condition} for condition in deny)]})


def test_source_ip_and_secure_transport_decide(server: Server) -> None:
    kms = server.client("root")
    loopback = kms.create_key(Policy=policy({"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}))["KeyMetadata"]["KeyId"]
    office = kms.create_key(Policy=policy({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))["KeyMetadata"]["KeyId"]
    tls_only = kms.create_key(Policy=policy({"Bool": {"aws:SecureTransport": "false"}}))["KeyMetadata"]["KeyId"]
    start = server.head()
    blob = kms.encrypt(KeyId=loopback, Plaintext=b"from here")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"from here"
    for key_id in (office, tls_only):  # not from 10/8; not over TLS (this server speaks plain HTTP)
        with pytest.raises(ClientError) as refused:
            kms.encrypt(KeyId=key_id, Plaintext=b"x")
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        assert refused.value.response["Error"]["Message"].endswith("with an explicit deny in a resource-based policy")
    # a client cannot claim another address
    forged = server.client("root")
    forged.meta.events.register("before-sign.kms.Encrypt",
                                lambda request, **_: request.headers.__setitem__("X-Forwarded-For", "10.1.1.1"))
    with pytest.raises(ClientError):
        forged.encrypt(KeyId=office, Plaintext=b"x")
    records = server.records(start)
    assert records and {r.source for r in records} == {"127.0.0.1"}
