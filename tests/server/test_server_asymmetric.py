"""boto3 through a real `keyledger serve` for every asymmetric and HMAC
operation: CreateKey of each kind, Sign/Verify (checked offline with the
public key), GetPublicKey, RSA Encrypt/Decrypt (encrypted offline),
GenerateMac/VerifyMac, DeriveSharedSecret (matched by a local exchange),
GenerateDataKeyPair(WithoutPlaintext), the errors AWS clients see, and the
log records behind each response."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from keyledger import events as ev
from serverkit import ACCOUNT, REGION, Server

ARN_PREFIX = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"

#: the operations this file exercises (test_server_boto3 covers the others)
ASYMMETRIC_OPERATIONS = {"Sign", "Verify", "GetPublicKey", "GenerateMac", "VerifyMac", "DeriveSharedSecret",
                         "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext"}


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return info.value.response["Error"]["Code"]


def spki(private: Any) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def test_every_asymmetric_operation_through_boto3(server: Server) -> None:
    kms = server.client("alice")
    called: set[str] = set()
    kms.meta.events.register("after-call.kms", lambda model, **_: called.add(model.name))

    # signing: ECDSA and RSA-PSS, RAW and DIGEST
    meta = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert meta["SigningAlgorithms"] == ["ECDSA_SHA_256"] and "EncryptionAlgorithms" not in meta
    signer = meta["KeyId"]
    public = kms.get_public_key(KeyId=signer)
    assert public["KeySpec"] == "ECC_NIST_P256" and public["KeyUsage"] == "SIGN_VERIFY"
    assert public["KeyId"] == ARN_PREFIX + signer and public["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    message = b"release 1.2.3"
    signed = kms.sign(KeyId=signer, Message=message, SigningAlgorithm="ECDSA_SHA_256")
    assert signed["KeyId"] == ARN_PREFIX + signer and signed["SigningAlgorithm"] == "ECDSA_SHA_256"
    serialization.load_der_public_key(public["PublicKey"]).verify(signed["Signature"], message,
                                                                 ec.ECDSA(hashes.SHA256()))
    assert kms.verify(KeyId=signer, Message=hashlib.sha256(message).digest(), MessageType="DIGEST",
                      Signature=signed["Signature"], SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    with pytest.raises(ClientError) as info:
        kms.verify(KeyId=signer, Message=b"other", Signature=signed["Signature"], SigningAlgorithm="ECDSA_SHA_256")
    assert code_of(info) == "KMSInvalidSignatureException"

    # RSA encryption: encrypted offline with the public key, decrypted by the server
    rsa_key = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    rsa_public = serialization.load_der_public_key(kms.get_public_key(KeyId=rsa_key)["PublicKey"])
    offline = rsa_public.encrypt(b"secret", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    back = kms.decrypt(CiphertextBlob=offline, KeyId=rsa_key, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert back["Plaintext"] == b"secret" and back["EncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    blob = kms.encrypt(KeyId=rsa_key, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_1")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, KeyId=rsa_key,
                       EncryptionAlgorithm="RSAES_OAEP_SHA_1")["Plaintext"] == b"x"

    # HMAC
    mac_key = kms.create_key(KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    assert mac_key["MacAlgorithms"] == ["HMAC_SHA_384"]
    mac = kms.generate_mac(KeyId=mac_key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_384")
    assert len(mac["Mac"]) == 48 and mac["KeyId"] == mac_key["Arn"]
    assert kms.verify_mac(KeyId=mac_key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_384",
                          Mac=mac["Mac"])["MacValid"]
    with pytest.raises(ClientError) as info:
        kms.verify_mac(KeyId=mac_key["KeyId"], Message=b"n", MacAlgorithm="HMAC_SHA_384", Mac=mac["Mac"])
    assert code_of(info) == "KMSInvalidMacException"

    # key agreement
    agree = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    assert agree["KeyAgreementAlgorithms"] == ["ECDH"]
    local = ec.generate_private_key(ec.SECP384R1())
    out = kms.derive_shared_secret(KeyId=agree["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=spki(local))
    theirs = serialization.load_der_public_key(kms.get_public_key(KeyId=agree["KeyId"])["PublicKey"])
    assert out["SharedSecret"] == local.exchange(ec.ECDH(), theirs)
    assert out["KeyAgreementAlgorithm"] == "ECDH" and out["KeyOrigin"] == "AWS_KMS"

    # data key pairs under a symmetric key
    sym = kms.create_key()["KeyMetadata"]["KeyId"]
    pair = kms.generate_data_key_pair(KeyId=sym, KeyPairSpec="ECC_NIST_P256", EncryptionContext={"app": "x"})
    assert pair["KeyPairSpec"] == "ECC_NIST_P256" and pair["KeyId"] == ARN_PREFIX + sym
    assert kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"],
                       EncryptionContext={"app": "x"})["Plaintext"] == pair["PrivateKeyPlaintext"]
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], None)
    assert spki(private) == pair["PublicKey"]
    bare = kms.generate_data_key_pair_without_plaintext(KeyId=sym, KeyPairSpec="RSA_2048")
    assert "PrivateKeyPlaintext" not in bare and bare["PublicKey"]

    assert called >= ASYMMETRIC_OPERATIONS

    # every response is a record under the caller's name, and none holds a secret
    alice = server.access["alice"].principal
    records = [r for r in server.records() if r.principal == alice]
    kinds = {type(r.event) for r in records}
    assert {ev.Signed, ev.SignatureVerified, ev.MacGenerated, ev.MacVerified, ev.SharedSecretDerived,
            ev.DataKeyPairGenerated} <= kinds
    log = b"".join(ev.canonical(r) for r in records)
    for secret in (message, out["SharedSecret"], pair["PrivateKeyPlaintext"], b"secret"):
        assert secret not in log


@pytest.mark.parametrize("call, code", [
    (lambda kms: kms.create_key(KeySpec="RSA_2048"), "ValidationException"),
    (lambda kms: kms.create_key(KeySpec="RSA_2048", KeyUsage="KEY_AGREEMENT"), "ValidationException"),
    (lambda kms: kms.create_key(KeySpec="SM2", KeyUsage="SIGN_VERIFY"), "UnsupportedOperationException"),
    (lambda kms: kms.sign(KeyId=kms.create_key()["KeyMetadata"]["KeyId"], Message=b"m",
                          SigningAlgorithm="ECDSA_SHA_256"), "InvalidKeyUsageException"),
    (lambda kms: kms.sign(KeyId=kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
                          ["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256", DryRun=True),
     "DryRunOperationException"),
    (lambda kms: kms.get_public_key(KeyId=kms.create_key()["KeyMetadata"]["KeyId"]),
     "UnsupportedOperationException"),
    (lambda kms: kms.enable_key_rotation(KeyId=kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
                                         ["KeyMetadata"]["KeyId"]), "UnsupportedOperationException"),
    (lambda kms: kms.derive_shared_secret(
        KeyId=kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"],
        KeyAgreementAlgorithm="ECDH", PublicKey=b"garbage"), "ValidationException"),
])
def test_errors_aws_clients_see(server: Server, kms: Any, call: Any, code: str) -> None:
    before = server.head()
    with pytest.raises(ClientError) as info:
        call(kms)
    assert code_of(info) == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    denied = [r for r in server.records(before) if isinstance(r.event, ev.RequestDenied)]
    assert denied[-1].event.error_code == code
    assert denied[-1].request_id == info.value.response["ResponseMetadata"]["RequestId"]
