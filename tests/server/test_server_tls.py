"""`keyledger serve --tls-cert --tls-key`: boto3 over HTTPS with a
self-signed certificate made here, verified against that certificate."""

from __future__ import annotations

import http.client
import json
import signal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import SSLError

from serverkit import REGION, Process
from test_server_limits import make_home


def test_boto3_over_tls_with_a_self_signed_certificate(tmp_path: Path, tls_files: Any) -> None:
    home = tmp_path / "ledger"
    entry = make_home(home)
    cert, key = tls_files(tmp_path / "tls")
    server = Process("--home", str(home), "--tls-cert", str(cert), "--tls-key", str(key),
                     "--access-log", "off", "--sweep-interval", "0")
    try:
        assert server.url.startswith("https://127.0.0.1:")
        options: dict[str, Any] = dict(
            endpoint_url=server.url, region_name=REGION, aws_access_key_id=entry.access_key_id,
            aws_secret_access_key=entry.secret_access_key, config=Config(retries={"total_max_attempts": 1}))
        kms = boto3.client("kms", verify=str(cert), **options)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"over tls")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"over tls"
        # aws:SecureTransport is true here: a key usable over TLS only is usable
        root = f"arn:aws:iam::{entry.principal.split(':')[4]}:root"
        tls_only = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))["KeyMetadata"]["KeyId"]
        assert kms.encrypt(KeyId=tls_only, Plaintext=b"tls")["KeyId"].endswith(tls_only)
        # (the client keeps its idle TLS connection: a graceful stop must not wait on it)
        # a client that does not trust the certificate refuses to talk
        with pytest.raises(SSLError):
            boto3.client("kms", **options).list_keys()
        # and plain HTTP on the TLS port gets no answer
        conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.request("GET", "/healthz")
            conn.getresponse()
        conn.close()
    finally:
        assert server.stop(signal.SIGTERM) == 0, "".join(server.lines)
