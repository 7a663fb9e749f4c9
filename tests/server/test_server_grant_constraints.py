"""CreateGrant with encryption-context Constraints through boto3 against a
real `keyledger serve`: refused for an operation without an encryption
context and on an asymmetric key (ValidationException, on record); a Sign
grant without constraints works for its grantee."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from keyledger import events as ev
from serverkit import ACCOUNT, Server

CONSTRAINTS = {"EncryptionContextEquals": {"app": "x"}}


def test_constraints_need_an_encryption_context(server: Server, kms: Any) -> None:
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    bob = server.access["bob"].principal
    for key, ops, message in (
            (signer, ["Sign", "DescribeKey"], ("Encryption context grant constraints are not supported for Sign: "
                                               "these operations take no encryption context.")),
            (rsa, ["Decrypt"], "Encryption context grant constraints are not supported with asymmetric KMS keys.")):
        before = server.head()
        with pytest.raises(ClientError) as info:
            kms.create_grant(KeyId=key, GranteePrincipal=bob, Operations=ops, Constraints=CONSTRAINTS)
        assert info.value.response["Error"] == {"Code": "ValidationException", "Message": message}
        denied = [r for r in server.records(before) if isinstance(r.event, ev.RequestDenied)]
        assert denied[-1].event.error_code == "ValidationException"
        assert denied[-1].request_id == info.value.response["ResponseMetadata"]["RequestId"]
    kms.create_grant(KeyId=signer, GranteePrincipal=bob, Operations=["Sign"])
    signed = server.client("bob").sign(KeyId=signer, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert signed["SigningAlgorithm"] == "ECDSA_SHA_256"


def test_service_principal_grants_through_boto3(server: Server, kms: Any) -> None:
    """GranteeServicePrincipal, RetiringServicePrincipal and a SourceArn
    constraint as boto3 sends and reads them; the rules' refusals on record."""
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    source = f"arn:aws:rds:us-east-1:{ACCOUNT}:db:orders"
    made = kms.create_grant(KeyId=key, GranteeServicePrincipal="rds.amazonaws.com", Operations=["Decrypt"],
                            Constraints={"SourceArn": source}, RetiringServicePrincipal="rds.amazonaws.com")
    grants = kms.list_grants(KeyId=key, GranteeServicePrincipal="rds.amazonaws.com")["Grants"]
    assert [(g["GrantId"], g["GranteeServicePrincipal"], g["RetiringServicePrincipal"], g["Constraints"])
            for g in grants] == [(made["GrantId"], "rds.amazonaws.com", "rds.amazonaws.com", {"SourceArn": source})]
    assert "GranteePrincipal" not in grants[0] and "RetiringPrincipal" not in grants[0]
    retirable = kms.list_retirable_grants(RetiringServicePrincipal="rds.amazonaws.com")["Grants"]
    assert [g["GrantId"] for g in retirable] == [made["GrantId"]]
    before = server.head()
    with pytest.raises(ClientError) as info:
        kms.create_grant(KeyId=key, GranteeServicePrincipal="rds.amazonaws.com", Operations=["Decrypt"],
                         RetiringServicePrincipal="rds.amazonaws.com")
    assert info.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "A grant for a GranteeServicePrincipal must have a SourceArn grant constraint."}
    assert [r.event.error_code for r in server.records(before) if isinstance(r.event, ev.RequestDenied)] == [
        "ValidationException"]
    kms.revoke_grant(KeyId=key, GrantId=made["GrantId"])
    assert kms.list_grants(KeyId=key)["Grants"] == []
