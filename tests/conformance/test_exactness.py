"""The known deviations of issue 10, each pinned through the library and
through `keyledger serve` (the `world` fixture runs every test both ways)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from keyledger.errors import InvalidCiphertextException

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def ok(world: Any, operation: str, **params: Any) -> dict[str, Any]:
    return world.ok(operation, params)


def refused(world: Any, operation: str, **params: Any) -> tuple[str | None, str | None]:
    outcome = world.face.call(operation, params)
    assert outcome.response is None, (operation, outcome)
    return outcome.code, outcome.message


# -- 1. identifier forms in responses --------------------------------------------------

def test_key_id_forms_in_responses(world: Any) -> None:
    key = world.new_key()
    arn = world.arn(key)
    meta = ok(world, "DescribeKey", KeyId=key)["KeyMetadata"]
    assert (meta["KeyId"], meta["Arn"]) == (key, arn)
    assert ok(world, "RotateKeyOnDemand", KeyId=key) == {"KeyId": arn}
    assert ok(world, "GetKeyRotationStatus", KeyId=key)["KeyId"] == arn
    assert [r["KeyId"] for r in ok(world, "ListKeyRotations", KeyId=key)["Rotations"]] == [key]  # bare, as AWS lists
    assert ok(world, "Encrypt", KeyId=key, Plaintext=b"x")["KeyId"] == arn
    blob = base64.b64decode(ok(world, "Encrypt", KeyId=key, Plaintext=b"x")["CiphertextBlob"])
    assert ok(world, "Decrypt", CiphertextBlob=blob)["KeyId"] == arn
    again = ok(world, "ReEncrypt", CiphertextBlob=blob, DestinationKeyId=world.key)
    assert (again["SourceKeyId"], again["KeyId"]) == (arn, world.arn(world.key))
    assert ok(world, "GenerateDataKey", KeyId=key, KeySpec="AES_128")["KeyId"] == arn
    assert ok(world, "GenerateDataKeyWithoutPlaintext", KeyId=key, KeySpec="AES_128")["KeyId"] == arn
    ok(world, "CreateGrant", KeyId=key, GranteePrincipal=world.principal, Operations=["Encrypt"])
    assert {g["KeyId"] for g in ok(world, "ListGrants", KeyId=key)["Grants"]} == {arn}
    assert ok(world, "ScheduleKeyDeletion", KeyId=key, PendingWindowInDays=7)["KeyId"] == arn
    assert ok(world, "CancelKeyDeletion", KeyId=key) == {"KeyId": arn}
    assert {"KeyId": key, "KeyArn": arn} in ok(world, "ListKeys", Limit=1000)["Keys"]


# -- 2. where aliases are accepted -------------------------------------------------------

def test_aliases_only_where_aws_takes_them(world: Any) -> None:
    alias_arn = f"arn:aws:kms:us-east-1:111122223333:{world.alias}"
    for form in (world.key, world.arn(world.key), world.alias, alias_arn):
        assert ok(world, "DescribeKey", KeyId=form)["KeyMetadata"]["KeyId"] == world.key
        assert ok(world, "Encrypt", KeyId=form, Plaintext=b"x")["KeyId"] == world.arn(world.key)
    for operation, extra in (("EnableKeyRotation", {}), ("GetKeyPolicy", {}), ("ListResourceTags", {}),
                             ("UpdateKeyDescription", {"Description": "x"}), ("DisableKey", {}),
                             ("RotateKeyOnDemand", {}), ("ListKeyRotations", {}), ("ScheduleKeyDeletion", {}),
                             ("ListGrants", {}), ("TagResource", {"Tags": [{"TagKey": "a", "TagValue": "b"}]})):
        for form in (world.alias, alias_arn):
            assert refused(world, operation, KeyId=form, **extra) == ("NotFoundException", f"Invalid keyId '{form}'")
    assert refused(world, "CreateAlias", AliasName=world.fresh_alias(), TargetKeyId=world.alias) == \
        ("ValidationException", "Aliases must refer to keys. Not aliases")
    assert refused(world, "CreateAlias", AliasName=world.fresh_alias(), TargetKeyId=alias_arn) == \
        ("NotFoundException", f"Invalid keyId '{alias_arn}'")


def test_key_not_found_messages(world: Any) -> None:
    missing = "0000aaaa-0000-4000-8000-000000000000"
    assert refused(world, "DescribeKey", KeyId=missing) == \
        ("NotFoundException", f"Key 'arn:aws:kms:us-east-1:111122223333:key/{missing}' does not exist")
    assert refused(world, "DescribeKey", KeyId="fake-key-id") == ("NotFoundException", "Invalid keyId 'fake-key-id'")
    assert refused(world, "DescribeKey", KeyId="alias/none") == \
        ("NotFoundException", "Alias arn:aws:kms:us-east-1:111122223333:alias/none is not found.")
    assert refused(world, "DescribeKey", KeyId=f"arn:aws:kms:ap-southeast-1:111122223333:key/{world.key}") == \
        ("NotFoundException", "Invalid arn ap-southeast-1")


# -- 3. tags ---------------------------------------------------------------------------------

@pytest.mark.parametrize("tag_key", ["aws:x", "AWS:x", "Aws:x"])
def test_reserved_tag_prefix_in_any_case(world: Any, tag_key: str) -> None:
    tags = [{"TagKey": tag_key, "TagValue": "v"}]
    assert refused(world, "TagResource", KeyId=world.key, Tags=tags) == \
        ("TagException", "Tags beginning with aws: are reserved")
    assert refused(world, "CreateKey", Tags=tags) == ("TagException", "Tags beginning with aws: are reserved")


def test_duplicate_and_too_many_tags(world: Any) -> None:
    twice = [{"TagKey": "k", "TagValue": "1"}, {"TagKey": "k", "TagValue": "2"}]
    assert refused(world, "TagResource", KeyId=world.key, Tags=twice) == ("TagException", "Duplicate tag keys")
    many = [{"TagKey": f"t{i}", "TagValue": "v"} for i in range(51)]
    assert refused(world, "CreateKey", Tags=many) == ("TagException", "Too many tags")
    assert refused(world, "TagResource", KeyId=world.key, Tags=many) == ("TagException", "Too many tags")


def test_tag_member_paths(world: Any) -> None:
    tags = [{"TagKey": "ok", "TagValue": "v"}, {"TagKey": "k" * 129, "TagValue": "v" * 257}]
    assert refused(world, "TagResource", KeyId=world.key, Tags=tags) == ("ValidationException", (
        f"2 validation errors detected: Value '{'k' * 129}' at 'tags.2.member.tagKey' failed to satisfy "
        "constraint: Member must have length less than or equal to 128; "
        f"Value '{'v' * 257}' at 'tags.2.member.tagValue' failed to satisfy constraint: "
        "Member must have length less than or equal to 256"))


# -- 4, 5. enums and validation wording ---------------------------------------------------------

def test_validation_wording(world: Any) -> None:
    assert refused(world, "GenerateRandom", NumberOfBytes=0) == ("ValidationException", (
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"))
    assert refused(world, "GenerateRandom", NumberOfBytes=1025) == ("ValidationException", (
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value less than or equal to 1024"))
    assert refused(world, "GenerateRandom") == ("ValidationException", "NumberOfBytes is required.")
    assert refused(world, "Encrypt", KeyId=world.key, Plaintext=b"x" * 4097) == ("ValidationException", (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"))
    code, message = refused(world, "GenerateDataKey", KeyId=world.key, KeySpec="AES_512")
    assert (code, message) == ("ValidationException", "1 validation error detected: Value 'AES_512' at 'keySpec' "
                               "failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]")


def test_unsupported_is_only_for_valid_values(world: Any) -> None:
    code, _ = refused(world, "CreateKey", Origin="AWS_CLOUDHSM")
    assert code == "UnsupportedOperationException"
    code, message = refused(world, "CreateKey", Origin="SOMEWHERE")
    assert code == "ValidationException" and "Member must satisfy enum value set: [AWS_KMS, EXTERNAL" in message


# -- 6. alias names -------------------------------------------------------------------------------

def test_alias_name_rules(world: Any) -> None:
    assert refused(world, "CreateAlias", AliasName="orders", TargetKeyId=world.key) == ("ValidationException", (
        'Alias must start with the prefix "alias/". Please see '
        "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"))
    assert refused(world, "CreateAlias", AliasName="alias/my:alias", TargetKeyId=world.key) == \
        ("ValidationException", "alias/my:alias contains invalid characters for an alias")
    assert refused(world, "CreateAlias", AliasName="alias/aws/mine", TargetKeyId=world.key) == \
        ("NotAuthorizedException", "")
    assert refused(world, "CreateAlias", AliasName="alias/sp ace", TargetKeyId=world.key) == \
        ("ValidationException", "1 validation error detected: Value 'alias/sp ace' at 'aliasName' failed to "
                                "satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$")


# -- 7. key material ids ----------------------------------------------------------------------------

def test_current_key_material_id(world: Any) -> None:
    key = world.new_key()
    first = ok(world, "DescribeKey", KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert HEX64.match(first)
    blob = base64.b64decode(ok(world, "Encrypt", KeyId=key, Plaintext=b"x")["CiphertextBlob"])
    ok(world, "RotateKeyOnDemand", KeyId=key)
    second = ok(world, "DescribeKey", KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert HEX64.match(second) and second != first
    rotations = ok(world, "ListKeyRotations", KeyId=key)["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"], r["RotationType"]) for r in rotations] == \
        [(second, "CURRENT", "ON_DEMAND")]
    everything = ok(world, "ListKeyRotations", KeyId=key, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"]) for r in everything] == \
        [(first, "NON_CURRENT"), (second, "CURRENT")]
    assert "RotationDate" not in everything[0] and "RotationType" not in everything[0]
    assert ok(world, "Decrypt", CiphertextBlob=blob)["KeyMaterialId"] == first  # the material that sealed it
    assert ok(world, "GenerateDataKey", KeyId=key, KeySpec="AES_256")["KeyMaterialId"] == second


# -- 8. InvalidCiphertextException carries no message ------------------------------------------------

def test_invalid_ciphertext_has_an_empty_message(world: Any) -> None:
    outcome = world.face.call("Decrypt", {"CiphertextBlob": b"not a ciphertext at all"})
    assert (outcome.code, outcome.message) == ("InvalidCiphertextException", "")
    assert outcome.body.get("message", "") == ""
    assert str(InvalidCiphertextException("why it failed")) == "InvalidCiphertextException"


# -- 9. limits ---------------------------------------------------------------------------------------

def test_on_demand_rotation_limit_message(world: Any) -> None:
    key = world.new_key()
    for _ in range(10):
        ok(world, "RotateKeyOnDemand", KeyId=key)
    assert refused(world, "RotateKeyOnDemand", KeyId=key) == ("LimitExceededException", (
        "The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations "
        f"can be performed for this key: {world.arn(key)}"))


# -- 10. small shapes ----------------------------------------------------------------------------------

def test_pending_deletion_shapes(world: Any) -> None:
    key = world.new_key()
    ok(world, "EnableKeyRotation", KeyId=key)
    ok(world, "ScheduleKeyDeletion", KeyId=key, PendingWindowInDays=7)
    assert refused(world, "TagResource", KeyId=key, Tags=[{"TagKey": "a", "TagValue": "b"}]) == \
        ("KMSInvalidStateException", f"{world.arn(key)} is pending deletion.")
    assert ok(world, "GetKeyRotationStatus", KeyId=key) == {"KeyId": world.arn(key), "KeyRotationEnabled": False}
    meta = ok(world, "DescribeKey", KeyId=key)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and "DeletionDate" in meta
    assert "PendingDeletionWindowInDays" not in meta  # AWS: only in PendingReplicaDeletion
    ok(world, "CancelKeyDeletion", KeyId=key)
    assert ok(world, "GetKeyRotationStatus", KeyId=key)["KeyRotationEnabled"] is True  # restored


def test_alias_entries_carry_their_dates(world: Any) -> None:
    entries = [a for a in ok(world, "ListAliases", KeyId=world.key)["Aliases"] if a["AliasName"] == world.alias]
    assert len(entries) == 1
    assert {"AliasName", "AliasArn", "TargetKeyId", "CreationDate", "LastUpdatedDate"} <= set(entries[0])
    assert entries[0]["TargetKeyId"] == world.key
