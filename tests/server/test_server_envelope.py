"""Envelope encryption interoperates with the AWS Encryption SDK's own KMS
provider: a message made by the embedded ledger (keyledger.envelope) opens
with the stock `StrictAwsKmsMasterKeyProvider` (and the discovery provider)
pointed at a real `keyledger serve` process for the same ledger, and a
message the stock provider made through the server opens embedded. The
records on both sides carry the same encryption context (with the suite's
aws-crypto-public-key), as AWS KMS would see it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy
from aws_encryption_sdk.key_providers.kms import DiscoveryFilter

import keyledger
from keyledger import events as ev
from keyledger.server import credentials as creds
from serverkit import ACCOUNT, ALL_KMS, REGION, Process

ESDK = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
SIGNING = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384


class Setup:
    def __init__(self, home: Path, server: Process, kms: keyledger.KeyLedger, alice: creds.AccessKeyLine) -> None:
        self.home, self.server, self.kms, self.alice = home, server, kms, alice
        self.alice_arn = f"arn:aws:iam::{ACCOUNT}:user/alice"

    def session(self) -> Any:
        """A botocore session with alice's keys: what the stock ESDK providers take."""
        session = botocore.session.Session()
        session.set_credentials(self.alice.access_key_id, self.alice.secret_access_key)
        session.set_config_variable("region", REGION)
        return session

    def strict(self, *arns: str) -> Any:
        return aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=list(arns), botocore_session=self.session())

    def records(self, start: int) -> list[ev.Record]:
        return list(self.kms.store.records(start))

    def head(self) -> int:
        return self.kms.store.head().seq


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    home = tmp_path_factory.mktemp("envelope") / "ledger"
    with keyledger.open(home, create=True) as kms:
        arn = kms.create_user("alice").arn
        kms.put_principal_policy(arn, "kms-all", ALL_KMS)
        alice = creds.new_access_key(arn, "alice")
        kms.record_access_key(arn, alice.access_key_id)
    creds.append(home / creds.DEFAULT_FILE, alice)
    server = Process("--home", str(home), "--access-log", "off", "--sweep-interval", "0")
    kms = keyledger.open(home)  # the embedded ledger, in this process, on the same LMDB file
    try:
        yield Setup(home, server, kms, alice)
    finally:
        kms.close()
        server.stop()


@pytest.fixture(autouse=True)
def _endpoint(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's service-specific endpoint setting: the stock ESDK makes
    its own clients, so this is how it reaches keyledger serve."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", setup.server.url)


def new_key(setup: Setup) -> str:
    return setup.kms.create_key(description="envelope").key_metadata.arn


def test_embedded_message_opens_with_the_stock_strict_provider_through_the_server(setup: Setup) -> None:
    arn = new_key(setup)
    plaintext = os.urandom(200_000)
    message = setup.kms.encrypt_bytes(arn, plaintext, encryption_context={"purpose": "interop"})
    start = setup.head()
    opened, header = ESDK.decrypt(source=message, key_provider=setup.strict(arn))
    assert opened == plaintext
    assert header.algorithm == SIGNING and header.encryption_context["purpose"] == "interop"
    (edk,) = header.encrypted_data_keys
    assert edk.key_provider.provider_id == "aws-kms" and edk.key_provider.key_info == arn.encode()
    [record] = [r for r in setup.records(start) if isinstance(r.event, ev.Decrypted)]
    assert record.principal == setup.alice_arn  # the server's caller, recorded by the same ledger
    assert record.event.ciphertext_digest == hashlib.sha256(edk.encrypted_data_key).digest()
    assert record.event.encryption_context == header.encryption_context  # with aws-crypto-public-key


def test_stock_provider_message_made_through_the_server_opens_embedded(setup: Setup) -> None:
    arn = new_key(setup)
    plaintext = os.urandom(150_000)
    start = setup.head()
    message, header = ESDK.encrypt(source=plaintext, key_provider=setup.strict(arn), algorithm=SIGNING,
                                   encryption_context={"tenant": "t1"}, frame_length=4096)
    [made] = [r for r in setup.records(start) if isinstance(r.event, ev.DataKeyGenerated)]
    assert made.principal == setup.alice_arn and made.event.encryption_context == header.encryption_context
    middle = setup.head()
    assert setup.kms.decrypt_bytes(message, encryption_context={"tenant": "t1"}) == plaintext
    [opened] = [r for r in setup.records(middle) if isinstance(r.event, ev.Decrypted)]
    assert opened.principal == f"arn:aws:iam::{ACCOUNT}:root"
    assert opened.event.ciphertext_digest == made.event.ciphertext_digest
    # the embedded side passes KMS exactly the context the stock provider did
    assert opened.event.encryption_context == made.event.encryption_context


def test_the_embedded_provider_sends_kms_what_the_stock_provider_sends(setup: Setup) -> None:
    """GenerateDataKey then Encrypt, the same context for both, for a
    two-key message from either side."""
    a, b = new_key(setup), new_key(setup)
    shapes = []
    for encrypt in (lambda: setup.kms.encrypt_bytes([a, b], b"x" * 10, encryption_context={"k": "v"}),
                    lambda: ESDK.encrypt(source=b"x" * 10, key_provider=setup.strict(a, b), algorithm=SIGNING,
                                         encryption_context={"k": "v"})[0]):
        start = setup.head()
        encrypt()
        records = [r for r in setup.records(start) if r.operation in ("GenerateDataKey", "Encrypt")]
        shapes.append([(r.operation, r.event.key_id, r.event.number_of_bytes if r.operation == "GenerateDataKey"
                        else None, sorted(r.event.encryption_context)) for r in records])
    assert shapes[0] == shapes[1]
    assert [op for op, *_ in shapes[0]] == ["GenerateDataKey", "Encrypt"]


def test_two_key_message_opens_through_either_key_with_the_stock_provider(setup: Setup) -> None:
    a, b = new_key(setup), new_key(setup)
    message = setup.kms.encrypt_bytes([a, b], b"shared secret")
    for arn in (a, b):
        assert ESDK.decrypt(source=message, key_provider=setup.strict(arn))[0] == b"shared secret"
    discovery = aws_encryption_sdk.DiscoveryAwsKmsMasterKeyProvider(
        botocore_session=setup.session(), discovery_filter=DiscoveryFilter(account_ids=[ACCOUNT], partition="aws"))
    assert ESDK.decrypt(source=message, key_provider=discovery)[0] == b"shared secret"
    # and the stock provider's two-key message opens embedded under either key
    stock, _ = ESDK.encrypt(source=b"other", key_provider=setup.strict(a, b), algorithm=SIGNING)
    setup.kms.disable_key(a)
    try:
        assert setup.kms.decrypt_bytes(stock) == b"other"
        assert setup.kms.decrypt_bytes(stock, key_ids=[b]) == b"other"
    finally:
        setup.kms.enable_key(a)


def test_a_file_streamed_embedded_opens_as_a_stream_with_the_stock_provider(setup: Setup, tmp_path: Path) -> None:
    arn = new_key(setup)
    src, enc = tmp_path / "data", tmp_path / "data.enc"
    src.write_bytes(os.urandom(3 << 20))
    setup.kms.encrypt_file(arn, src, enc, encryption_context={"file": "data"})
    digest = hashlib.sha256()
    with open(enc, "rb") as f, ESDK.stream(mode="d", source=f, key_provider=setup.strict(arn)) as decryptor:
        for chunk in iter(lambda: decryptor.read(1 << 16), b""):
            digest.update(chunk)
    assert digest.digest() == hashlib.sha256(src.read_bytes()).digest()


def test_the_stock_provider_is_refused_what_the_ledger_refuses(setup: Setup) -> None:
    arn = new_key(setup)
    message = setup.kms.encrypt_bytes(arn, b"secret")
    setup.kms.disable_key(arn)
    start = setup.head()
    with pytest.raises(aws_encryption_sdk.exceptions.DecryptKeyError):
        ESDK.decrypt(source=message, key_provider=setup.strict(arn))
    refused = [r for r in setup.records(start) if isinstance(r.event, ev.RequestDenied)]
    assert [(r.operation, r.event.error_code, r.principal) for r in refused] == \
        [("Decrypt", "DisabledException", setup.alice_arn)]
