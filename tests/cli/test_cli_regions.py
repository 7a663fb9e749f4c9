"""The CLI's --region picks the request's region: init sets the ledger's
initial region; other commands make their requests in the region named;
audit log --region keeps only the records made there."""

from __future__ import annotations

import json

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the fixture's type (tests/cli/conftest.py); other folders have a conftest too
    from conftest import Cli


def test_region_selects_the_request_region(cli: Cli) -> None:
    cli("init", "--region", "eu-west-1")
    home_key = cli.json("create-key")["KeyMetadata"]
    assert home_key["Arn"].startswith("arn:aws:kms:eu-west-1:")
    us_key = cli.json("--region", "us-west-2", "create-key")["KeyMetadata"]
    assert us_key["Arn"].startswith("arn:aws:kms:us-west-2:")
    assert [k["KeyId"] for k in cli.json("--region", "us-west-2", "list-keys")["Keys"]] == [us_key["KeyId"]]
    assert [k["KeyId"] for k in cli.json("list-keys")["Keys"]] == [home_key["KeyId"]]
    error = cli("--region", "us-west-2", "describe-key", "--key-id", home_key["KeyId"], expect=254)
    assert "NotFoundException" in error.stderr
    # multi-Region keys from the CLI
    mrk = cli.json("create-key", "--multi-region")["KeyMetadata"]["KeyId"]
    out = cli.json("replicate-key", "--key-id", mrk, "--replica-region", "us-west-2")
    assert out["ReplicaKeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    cli("update-primary-region", "--key-id", mrk, "--primary-region", "us-west-2")
    config = cli.json("describe-key", "--key-id", mrk)["KeyMetadata"]["MultiRegionConfiguration"]
    assert config["PrimaryKey"]["Region"] == "us-west-2"
    lines = cli("audit", "log", "--region", "us-west-2", "--oldest-first").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["region"] for r in records} == {"us-west-2"}
    assert [r["operation"] for r in records] == ["CreateKey", "ListKeys", "DescribeKey", "ReplicateKey"]
