"""ECC_NIST_EDWARDS25519 through boto3 and a real server: CreateKey, Sign and
Verify with ED25519_SHA_512 (checked offline with GetPublicKey's key) and
ED25519_PH_SHA_512, whose DIGEST must be one SHA-512 digest."""

from __future__ import annotations

import hashlib

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from serverkit import ACCOUNT, REGION, Server


def test_ed25519_through_boto3(server: Server) -> None:
    kms = server.client("alice")
    meta = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert meta["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
    key = meta["KeyId"]
    signed = kms.sign(KeyId=key, Message=b"release", MessageType="RAW", SigningAlgorithm="ED25519_SHA_512")
    assert signed["KeyId"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}" and len(signed["Signature"]) == 64
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])
    public.verify(signed["Signature"], b"release")  # raises if not
    assert kms.verify(KeyId=key, Message=b"release", Signature=signed["Signature"],
                      SigningAlgorithm="ED25519_SHA_512")["SignatureValid"]
    digest = hashlib.sha512(b"release").digest()
    prehashed = kms.sign(KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm="ED25519_PH_SHA_512")
    assert len(prehashed["Signature"]) == 64 and prehashed["Signature"] != signed["Signature"]
    assert prehashed["SigningAlgorithm"] == "ED25519_PH_SHA_512"
    assert kms.verify(KeyId=key, Message=digest, MessageType="DIGEST", Signature=prehashed["Signature"],
                      SigningAlgorithm="ED25519_PH_SHA_512")["SignatureValid"]
    for algorithm, message_type, message in (("ED25519_SHA_512", "DIGEST", digest),
                                             ("ED25519_PH_SHA_512", "RAW", b"release")):
        with pytest.raises(ClientError) as info:
            kms.sign(KeyId=key, Message=message, MessageType=message_type, SigningAlgorithm=algorithm)
        assert info.value.response["Error"] == {
            "Code": "ValidationException",
            "Message": f"Message type {message_type} is incompatible with signing algorithm {algorithm}."}
    for call, extra in ((kms.sign, {}), (kms.verify, {"Signature": prehashed["Signature"]})):
        with pytest.raises(ClientError) as info:
            call(KeyId=key, Message=b"not a sha-512 digest", MessageType="DIGEST",
                 SigningAlgorithm="ED25519_PH_SHA_512", **extra)
        assert info.value.response["Error"] == {
            "Code": "ValidationException", "Message": "Digest is invalid length for algorithm ED25519_PH_SHA_512."}
