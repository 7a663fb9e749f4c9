"""boto3 through a real `keyledger serve` for ML-KEM keys: CreateKey and
DescribeKey (EncapsulationAlgorithms), GetPublicKey (DER SPKI that
`cryptography` encapsulates to offline), Encapsulate and Decapsulate (the
same secret both ways, by alias too), the errors AWS clients see, and the
records behind each response (never the shared secret)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from keyledger import events as ev
from serverkit import ACCOUNT, REGION, Server

ARN_PREFIX = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"

#: the operations this file exercises (test_server_boto3 covers the others)
ML_KEM_OPERATIONS = {"Encapsulate", "Decapsulate"}

CIPHERTEXT_BYTES = {"ML_KEM_768": 1088, "ML_KEM_1024": 1568}


def client(server: Server) -> Any:
    return server.client("alice")


@pytest.fixture
def kms(server: Server) -> Any:
    return client(server)


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


@pytest.mark.parametrize("spec", sorted(CIPHERTEXT_BYTES))
def test_ml_kem_through_boto3(server: Server, spec: str) -> None:
    kms = client(server)
    called: set[str] = set()
    kms.meta.events.register("after-call.kms", lambda model, **_: called.add(model.name))
    before = server.head()

    meta = kms.create_key(KeySpec=spec, KeyUsage="ENCAPSULATE_DECAPSULATE")["KeyMetadata"]
    assert meta["EncapsulationAlgorithms"] == ["ML_KEM"] and meta["KeySpec"] == spec
    assert not {"EncryptionAlgorithms", "SigningAlgorithms", "KeyAgreementAlgorithms", "MacAlgorithms"} & set(meta)
    key = meta["KeyId"]
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["EncapsulationAlgorithms"] == ["ML_KEM"]
    public = kms.get_public_key(KeyId=key)
    assert public["KeyId"] == ARN_PREFIX + key and public["KeyUsage"] == "ENCAPSULATE_DECAPSULATE"
    assert public["EncapsulationAlgorithms"] == ["ML_KEM"] and "SigningAlgorithms" not in public

    kms.create_alias(AliasName=f"alias/kem-{spec.lower().replace('_', '-')}", TargetKeyId=key)
    out = kms.encapsulate(KeyId=f"alias/kem-{spec.lower().replace('_', '-')}", EncapsulationAlgorithm="ML_KEM")
    assert out["KeyId"] == ARN_PREFIX + key and out["EncapsulationAlgorithm"] == "ML_KEM"
    assert len(out["SharedSecret"]) == 32 and len(out["SharedSecretCiphertextBlob"]) == CIPHERTEXT_BYTES[spec]
    back = kms.decapsulate(KeyId=key, SharedSecretCiphertextBlob=out["SharedSecretCiphertextBlob"],
                           EncapsulationAlgorithm="ML_KEM")
    assert back["SharedSecret"] == out["SharedSecret"] and back["KeyId"] == ARN_PREFIX + key
    assert back["EncapsulationAlgorithm"] == "ML_KEM"

    # a sender holding only the public key encapsulates offline; the key's owner decapsulates in keyledger
    offline_secret, offline_blob = serialization.load_der_public_key(public["PublicKey"]).encapsulate()
    assert kms.decapsulate(KeyId=key, SharedSecretCiphertextBlob=offline_blob,
                           EncapsulationAlgorithm="ML_KEM")["SharedSecret"] == offline_secret
    assert called >= ML_KEM_OPERATIONS | {"GetPublicKey"}

    alice = server.access["alice"].principal
    records = [r for r in server.records(before) if r.principal == alice]
    assert [type(r.event) for r in records if r.operation in ML_KEM_OPERATIONS] == \
        [ev.SharedSecretEncapsulated, ev.SharedSecretDecapsulated, ev.SharedSecretDecapsulated]
    log = b"".join(ev.canonical(r) for r in records)
    for secret in (out["SharedSecret"], offline_secret):
        assert secret not in log


def _kem_key(kms: Any) -> str:
    key: str = kms.create_key(KeySpec="ML_KEM_768", KeyUsage="ENCAPSULATE_DECAPSULATE")["KeyMetadata"]["KeyId"]
    return key


@pytest.mark.parametrize("call, code", [
    (lambda kms: kms.create_key(KeySpec="ML_KEM_768", KeyUsage="ENCRYPT_DECRYPT"), "ValidationException"),
    (lambda kms: kms.create_key(KeySpec="ML_KEM_512", KeyUsage="ENCAPSULATE_DECAPSULATE"),
     "UnsupportedOperationException"),
    (lambda kms: kms.decapsulate(KeyId=_kem_key(kms), SharedSecretCiphertextBlob=b"\0" * 1087,
                                 EncapsulationAlgorithm="ML_KEM"), "InvalidCiphertextException"),
    (lambda kms: kms.encapsulate(KeyId=_kem_key(kms), EncapsulationAlgorithm="ML_KEM", DryRun=True),
     "DryRunOperationException"),
    (lambda kms: kms.encapsulate(KeyId=kms.create_key()["KeyMetadata"]["KeyId"], EncapsulationAlgorithm="ML_KEM"),
     "InvalidKeyUsageException"),
    (lambda kms: kms.enable_key_rotation(KeyId=_kem_key(kms)), "UnsupportedOperationException"),
])
def test_errors_aws_clients_see(server: Server, kms: Any, call: Any, code: str) -> None:
    before = server.head()
    with pytest.raises(ClientError) as info:
        call(kms)
    assert code_of(info) == code
    denied = [r for r in server.records(before) if isinstance(r.event, ev.RequestDenied)]
    assert denied[-1].event.error_code == code
    assert denied[-1].request_id == info.value.response["ResponseMetadata"]["RequestId"]


def test_ml_kem_data_key_pair_through_boto3(kms: Any, key_id: str) -> None:
    pair = kms.generate_data_key_pair(KeyId=key_id, KeyPairSpec="ML_KEM_1024")
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], None)
    secret, blob = serialization.load_der_public_key(pair["PublicKey"]).encapsulate()
    assert private.decapsulate(blob) == secret  # type: ignore[union-attr]
    assert kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])["Plaintext"] == pair["PrivateKeyPlaintext"]
