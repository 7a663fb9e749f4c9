"""Imported key material and AWS managed keys through a real server with
boto3: GetParametersForImport, ImportKeyMaterial (material wrapped offline),
expiry by the server's clock, re-import, rotation to NEW_KEY_MATERIAL,
DeleteImportedKeyMaterial, AWS's errors on the wire, and the predefined
alias/aws/* aliases in ListAliases. Responses are checked against the
model's shapes by serverkit's after-call hook."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from keyledger import events as ev
from serverkit import ACCOUNT, REGION

IMPORT_OPERATIONS = frozenset({"GetParametersForImport", "ImportKeyMaterial", "DeleteImportedKeyMaterial"})
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def wrap(public_der: bytes, algorithm: str, material: bytes) -> bytes:
    h = hashes.SHA256 if algorithm.endswith("256") else hashes.SHA1
    oaep = padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)
    public = serialization.load_der_public_key(public_der)
    if algorithm.startswith("RSAES"):
        return public.encrypt(material, oaep)
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep) + aes_key_wrap_with_padding(aes_key, material)


def imported(kms: Any, key: str, material: bytes, algorithm: str = "RSAES_OAEP_SHA_256", **kwargs: Any) -> Any:
    params = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_3072")
    return kms.import_key_material(KeyId=key, ImportToken=params["ImportToken"],
                                   EncryptedKeyMaterial=wrap(params["PublicKey"], algorithm, material), **kwargs)


def code_of(info: pytest.ExceptionInfo[ClientError]) -> str:
    return info.value.response["Error"]["Code"]


def test_import_flow_through_boto3(start_server: Any) -> None:
    clock = Clock()
    server = start_server(clock=clock)
    kms = server.client("alice")
    meta = kms.create_key(Origin="EXTERNAL", Description="byok")["KeyMetadata"]
    key = meta["KeyId"]
    assert (meta["Origin"], meta["KeyState"], meta["Enabled"]) == ("EXTERNAL", "PendingImport", False)
    with pytest.raises(ClientError) as info:
        kms.encrypt(KeyId=key, Plaintext=b"x")
    assert code_of(info) == "KMSInvalidStateException"

    params = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                           WrappingKeySpec="RSA_4096")
    assert params["KeyId"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}"
    assert params["ParametersValidTo"] == T0 + timedelta(days=1)
    material = os.urandom(32)
    out = kms.import_key_material(
        KeyId=key, ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap(params["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256", material),
        ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=T0 + timedelta(days=30), KeyMaterialDescription="v1")
    assert out["KeyId"] == params["KeyId"] and len(out["KeyMaterialId"]) == 64
    meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert meta["ValidTo"] == T0 + timedelta(days=30) and meta["CurrentKeyMaterialId"] == out["KeyMaterialId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"hello")["CiphertextBlob"]

    # the wire's errors
    other = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as info:
        kms.import_key_material(KeyId=other, ImportToken=params["ImportToken"], EncryptedKeyMaterial=b"x" * 512,
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert code_of(info) == "InvalidImportTokenException"
    with pytest.raises(ClientError) as info:
        imported(kms, key, os.urandom(32), ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert code_of(info) == "IncorrectKeyMaterialException"
    stale = kms.get_parameters_for_import(KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048")
    clock.now += timedelta(days=1)
    with pytest.raises(ClientError) as info:
        kms.import_key_material(KeyId=key, ImportToken=stale["ImportToken"],
                                EncryptedKeyMaterial=wrap(stale["PublicKey"], "RSAES_OAEP_SHA_1", material),
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert code_of(info) == "ExpiredImportTokenException"

    # expiry by the clock, then re-import of the same material
    clock.now = T0 + timedelta(days=31)
    with pytest.raises(ClientError) as info:
        kms.decrypt(CiphertextBlob=blob)
    assert code_of(info) == "KMSInvalidStateException"
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    imported(kms, key, material, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hello"

    # rotation to new imported material
    new = imported(kms, key, os.urandom(32), ImportType="NEW_KEY_MATERIAL",
                   ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE", KeyMaterialDescription="v2")
    listed = kms.list_key_rotations(KeyId=key, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [(r["KeyMaterialState"], r["ImportState"], r.get("KeyMaterialDescription")) for r in listed] == [
        ("CURRENT", "IMPORTED", "v1"), ("PENDING_ROTATION", "IMPORTED", "v2")]
    kms.rotate_key_on_demand(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"] == new["KeyMaterialId"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hello"

    deleted = kms.delete_imported_key_material(KeyId=key)
    assert deleted["KeyMaterialId"] == new["KeyMaterialId"]
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(ClientError) as info:
        kms.get_parameters_for_import(KeyId=kms.create_key()["KeyMetadata"]["KeyId"],
                                      WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    assert code_of(info) == "UnsupportedOperationException"

    kinds = {type(r.event).__name__ for r in server.records()}
    assert {"ImportParametersIssued", "KeyMaterialImported", "ImportedKeyMaterialExpired",
            "ImportedKeyMaterialDeleted"} <= kinds
    expired = [r for r in server.records() if isinstance(r.event, ev.ImportedKeyMaterialExpired)]
    assert [r.principal for r in expired] == [ev.SERVICE_PRINCIPAL]


def test_aws_managed_keys_through_boto3(server: Any) -> None:
    kms = server.client("alice")
    aliases = {a["AliasName"]: a for a in kms.list_aliases(Limit=100)["Aliases"]}
    assert aliases["alias/aws/ssm"] == {"AliasName": "alias/aws/ssm",
                                        "AliasArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/ssm"}
    key = server.kms.managed_key("ssm")  # what an integration (the parameter store) does
    meta = kms.describe_key(KeyId="alias/aws/ssm")["KeyMetadata"]
    assert (meta["KeyId"], meta["KeyManager"]) == (key, "AWS")
    for call in (lambda: kms.disable_key(KeyId=key), lambda: kms.schedule_key_deletion(KeyId=key),
                 lambda: kms.encrypt(KeyId="alias/aws/ssm", Plaintext=b"direct")):
        with pytest.raises(ClientError) as info:
            call()
        assert code_of(info) == "AccessDeniedException"
    with pytest.raises(ClientError) as info:
        kms.create_alias(AliasName="alias/aws/ssm", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    assert code_of(info) == "NotAuthorizedException"
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is True
