"""Key lifecycle, tags, aliases and rotation through the CLI: exact AWS shapes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cli

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ARN = "arn:aws:kms:us-east-1:111122223333:key/"


class _MaterialId(str):
    """Equal to any KeyMaterialId: 64 lowercase hex characters."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(r"[0-9a-f]{64}", other) is not None

    __hash__ = str.__hash__


MATERIAL_ID = _MaterialId("<64 hex>")


def metadata(key_id: str, **changes: object) -> dict[str, object]:
    expected = {
        "AWSAccountId": "111122223333",
        "KeyId": key_id,
        "Arn": ARN + key_id,
        "Enabled": True,
        "Description": "",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": "Enabled",
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": False,
        "CurrentKeyMaterialId": MATERIAL_ID,
    }
    expected.update(changes)
    return expected


def test_create_key_prints_the_aws_shape(cli: Cli) -> None:
    out = cli.json("create-key", "--description", "orders")
    meta = out["KeyMetadata"]
    assert list(out) == ["KeyMetadata"]
    assert UUID.match(meta["KeyId"])
    assert DATE.match(meta.pop("CreationDate"))
    assert meta == metadata(meta["KeyId"], Description="orders")


def test_describe_key_accepts_every_key_id_form(cli: Cli, key: str) -> None:
    cli("create-alias", "--alias-name", "alias/orders", "--target-key-id", key)
    forms = [key, ARN + key, "alias/orders", "arn:aws:kms:us-east-1:111122223333:alias/orders"]
    for form in forms:
        meta = cli.json("describe-key", "--key-id", form)["KeyMetadata"]
        meta.pop("CreationDate")
        assert meta == metadata(key, Description="test key")


def test_create_key_tags_shorthand_several_values(cli: Cli) -> None:
    key = cli.create_key("--tags", "TagKey=team,TagValue=payments", "TagKey=env,TagValue=prod",
                         "--description", "after the list")
    assert cli.json("describe-key", "--key-id", key)["KeyMetadata"]["Description"] == "after the list"
    assert cli.json("list-resource-tags", "--key-id", key) == {
        "Tags": [{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "payments"}],
        "Truncated": False,
    }


def test_tags_as_json_and_untag(cli: Cli, key: str) -> None:
    out = cli("tag-resource", "--key-id", key, "--tags",
              '[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}]')
    assert out.stdout == ""  # an empty response prints nothing
    cli("tag-resource", "--key-id", key, "--tags", "TagKey=c,TagValue=3")
    cli("untag-resource", "--key-id", key, "--tag-keys", "a", "c")
    assert cli.json("list-resource-tags", "--key-id", key)["Tags"] == [{"TagKey": "b", "TagValue": "2"}]
    cli("untag-resource", "--key-id", key, "--tag-keys", '["b"]')
    assert cli.json("list-resource-tags", "--key-id", key)["Tags"] == []


def test_unknown_tag_member_is_a_usage_error(cli: Cli) -> None:
    result = cli("create-key", "--tags", "Key=a,Value=b", expect=2)
    assert "unknown tag member 'Key'" in result.stderr


def test_lifecycle_enable_disable_delete_cancel(cli: Cli, key: str) -> None:
    def state() -> str:
        return cli.json("describe-key", "--key-id", key)["KeyMetadata"]["KeyState"]

    assert cli("disable-key", "--key-id", key).stdout == ""
    assert state() == "Disabled"
    cli("enable-key", "--key-id", key)
    assert state() == "Enabled"
    cli("update-key-description", "--key-id", key, "--description", "renamed")
    assert cli.json("describe-key", "--key-id", key)["KeyMetadata"]["Description"] == "renamed"

    out = cli.json("schedule-key-deletion", "--key-id", key, "--pending-window-in-days", "7")
    assert DATE.match(out.pop("DeletionDate"))
    assert out == {"KeyId": ARN + key, "KeyState": "PendingDeletion", "PendingWindowInDays": 7}
    assert state() == "PendingDeletion"
    assert cli.json("cancel-key-deletion", "--key-id", key) == {"KeyId": ARN + key}
    assert state() == "Disabled"  # as in AWS


def test_list_keys_pages_with_limit_and_marker(cli: Cli) -> None:
    keys = {cli.create_key() for _ in range(3)}
    first = cli.json("list-keys", "--limit", "2")
    assert first["Truncated"] is True and len(first["Keys"]) == 2
    second = cli.json("list-keys", "--limit", "2", "--marker", first["NextMarker"])
    assert second["Truncated"] is False and "NextMarker" not in second
    listed = first["Keys"] + second["Keys"]
    assert {k["KeyId"] for k in listed} == keys
    assert all(k["KeyArn"] == ARN + k["KeyId"] for k in listed)


def test_aliases_create_update_list_delete(cli: Cli, key: str) -> None:
    other = cli.create_key()
    cli("create-alias", "--alias-name", "alias/app", "--target-key-id", key)
    cli("update-alias", "--alias-name", "alias/app", "--target-key-id", other)
    out = cli.json("list-aliases")
    [alias] = [a for a in out["Aliases"] if "TargetKeyId" in a]  # not the predefined alias/aws/*
    assert DATE.match(alias.pop("CreationDate")) and DATE.match(alias.pop("LastUpdatedDate"))
    assert alias == {"AliasName": "alias/app", "AliasArn": "arn:aws:kms:us-east-1:111122223333:alias/app",
                     "TargetKeyId": other}
    assert cli.json("list-aliases", "--key-id", key)["Aliases"] == []
    assert [a["AliasName"] for a in cli.json("list-aliases", "--key-id", other)["Aliases"]] == ["alias/app"]
    cli("delete-alias", "--alias-name", "alias/app")
    assert [a for a in cli.json("list-aliases")["Aliases"] if "TargetKeyId" in a] == []


def test_rotation_commands(cli: Cli, key: str) -> None:
    assert cli.json("get-key-rotation-status", "--key-id", key) == {
        "KeyRotationEnabled": False, "KeyId": ARN + key}
    cli("enable-key-rotation", "--key-id", key, "--rotation-period-in-days", "90")
    status = cli.json("get-key-rotation-status", "--key-id", key)
    assert DATE.match(status.pop("NextRotationDate"))
    assert status == {"KeyRotationEnabled": True, "KeyId": ARN + key, "RotationPeriodInDays": 90}

    assert cli.json("rotate-key-on-demand", "--key-id", key) == {"KeyId": ARN + key}  # AWS answers the ARN
    out = cli.json("list-key-rotations", "--key-id", key)
    [rotation] = out["Rotations"]
    assert DATE.match(rotation.pop("RotationDate"))
    assert out == {"Rotations": [{"KeyId": key, "KeyMaterialId": MATERIAL_ID, "KeyMaterialState": "CURRENT",
                                  "RotationType": "ON_DEMAND"}], "Truncated": False}

    cli("disable-key-rotation", "--key-id", key)
    assert cli.json("get-key-rotation-status", "--key-id", key)["KeyRotationEnabled"] is False


def test_text_output_is_the_aws_cli_format(cli: Cli) -> None:
    key = cli.create_key("--description", "orders")
    created = cli.json("describe-key", "--key-id", key)["KeyMetadata"]["CreationDate"]
    out = cli("describe-key", "--key-id", key, "--output", "text").stdout
    # scalars of a structure on one line, in key order, after its name in upper case
    material = cli.json("describe-key", "--key-id", key)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert out == ("\t".join(["KEYMETADATA", "111122223333", ARN + key, created, material, "SYMMETRIC_DEFAULT", "orders",
                              "True", key, "CUSTOMER", "SYMMETRIC_DEFAULT", "Enabled", "ENCRYPT_DECRYPT",
                              "False", "AWS_KMS"]) + "\n"
                   "ENCRYPTIONALGORITHMS\tSYMMETRIC_DEFAULT\n")
    # the global option works too, before the command
    assert cli("--output", "text", "describe-key", "--key-id", key).stdout == out


def test_text_output_of_a_list(cli: Cli, key: str) -> None:
    cli("tag-resource", "--key-id", key, "--tags", "TagKey=b,TagValue=2", "TagKey=a,TagValue=1")
    out = cli("list-resource-tags", "--key-id", key, "--output", "text").stdout
    assert out == "False\nTAGS\ta\t1\nTAGS\tb\t2\n"


def test_query_prints_one_field(cli: Cli, key: str) -> None:
    assert cli("describe-key", "--key-id", key, "--query", "KeyMetadata.KeyId",
               "--output", "text").stdout == key + "\n"
    assert cli("describe-key", "--key-id", key, "--query", "KeyMetadata.KeyState").stdout == '"Enabled"\n'
    assert cli("--query", "KeyMetadata.Nope", "describe-key", "--key-id", key).stdout == "null\n"
    # a JMESPath expression (issue 9): what matches nothing is null, what does not parse is a usage error
    assert cli("describe-key", "--key-id", key, "--query", "Keys[0]").stdout == "null\n"
    result = cli("describe-key", "--key-id", key, "--query", "Keys[", expect=2)
    assert "--query" in result.stderr and "not a JMESPath expression" in result.stderr
