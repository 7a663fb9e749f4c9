"""ReEncrypt from and to RSA keys through boto3 against a real `keyledger
serve`: symmetric -> RSA (opened by Decrypt), a ciphertext made offline with
the public key -> symmetric, RSA -> RSA, the errors AWS clients see, and the
ReEncrypted records behind the responses."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from keyledger import events as ev
from serverkit import ACCOUNT, REGION, Server

ARN_PREFIX = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"


def test_reencrypt_with_rsa_keys_through_boto3(server: Server, kms: Any) -> None:
    before = server.head()
    sym = kms.create_key()["KeyMetadata"]["KeyId"]
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    rsa3 = kms.create_key(KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]

    # symmetric -> RSA
    blob = kms.encrypt(KeyId=sym, Plaintext=b"payload", EncryptionContext={"app": "x"})["CiphertextBlob"]
    out = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"app": "x"}, DestinationKeyId=rsa,
                         DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert (out["SourceKeyId"], out["KeyId"]) == (ARN_PREFIX + sym, ARN_PREFIX + rsa)
    assert (out["SourceEncryptionAlgorithm"], out["DestinationEncryptionAlgorithm"]) == \
        ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_256")
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], KeyId=rsa,
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"payload"

    # made offline with the public key -> symmetric
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=rsa3)["PublicKey"])
    offline = public.encrypt(b"from outside", padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))
    back = kms.re_encrypt(CiphertextBlob=offline, SourceKeyId=rsa3, SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1",
                          DestinationKeyId=sym, DestinationEncryptionContext={"moved": "yes"})
    assert (back["SourceKeyId"], back["SourceEncryptionAlgorithm"]) == (ARN_PREFIX + rsa3, "RSAES_OAEP_SHA_1")
    assert kms.decrypt(CiphertextBlob=back["CiphertextBlob"],
                       EncryptionContext={"moved": "yes"})["Plaintext"] == b"from outside"

    # RSA -> RSA
    across = kms.re_encrypt(CiphertextBlob=out["CiphertextBlob"], SourceKeyId=rsa,
                            SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256", DestinationKeyId=rsa3,
                            DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert kms.decrypt(CiphertextBlob=across["CiphertextBlob"], KeyId=rsa3,
                       EncryptionAlgorithm="RSAES_OAEP_SHA_1")["Plaintext"] == b"payload"

    records = [r.event for r in server.records(before) if isinstance(r.event, ev.ReEncrypted)]
    assert [(e.source_encryption_algorithm, e.destination_encryption_algorithm) for e in records] == [
        ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_256"), ("RSAES_OAEP_SHA_1", "SYMMETRIC_DEFAULT"),
        ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1")]
    assert records[1].source_ciphertext_digest == hashlib.sha256(offline).digest()
    assert records[2].ciphertext_digest == hashlib.sha256(across["CiphertextBlob"]).digest()


def test_reencrypt_refusals_through_boto3(server: Server, kms: Any) -> None:
    sym = kms.create_key()["KeyMetadata"]["KeyId"]
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    rsa_blob = kms.encrypt(KeyId=rsa, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_1")["CiphertextBlob"]
    big = kms.encrypt(KeyId=sym, Plaintext=b"y" * 215)["CiphertextBlob"]
    cases = [
        ({"CiphertextBlob": rsa_blob, "DestinationKeyId": sym, "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_1"},
         "InvalidCiphertextException", None),
        ({"CiphertextBlob": rsa_blob, "DestinationKeyId": sym, "SourceKeyId": rsa,
              "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_1", "SourceEncryptionContext": {"a": "b"}},
         "ValidationException", "EncryptionContext is not supported with asymmetric KMS keys."),
        ({"CiphertextBlob": big, "DestinationKeyId": rsa, "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_1"},
         "ValidationException",
         "Algorithm RSAES_OAEP_SHA_1 and key spec RSA_2048 cannot encrypt data larger than 214 bytes."),
        ({"CiphertextBlob": big, "DestinationKeyId": rsa}, "InvalidKeyUsageException",
         "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048."),
    ]
    for params, code, message in cases:
        before = server.head()
        with pytest.raises(ClientError) as info:
            kms.re_encrypt(**params)
        error = info.value.response["Error"]
        assert error["Code"] == code and info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        if message is not None:
            assert error["Message"] == message
        denied = [r for r in server.records(before) if isinstance(r.event, ev.RequestDenied)]
        assert denied[-1].event.error_code == code
        assert denied[-1].request_id == info.value.response["ResponseMetadata"]["RequestId"]
