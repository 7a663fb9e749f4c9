"""The read-only commands on a ledger with regions: `forensics key`,
`forensics who-can`, `forensics ciphertext`, `audit log --key-id` and
`replay prove-decryptable`. A key id resolves in whichever region(s) it
exists; an alias resolves in the request region (--region), as AWS resolves
it; a key ARN names its region; a multi-Region key's replicas are listed
per region."""

from __future__ import annotations

import json

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the fixture's type (tests/cli/conftest.py); other folders have a conftest too
    from conftest import Cli

US, EU = "us-east-1", "eu-west-1"
ACCOUNT = "111122223333"


def arn(region: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"


def test_forensics_key_finds_another_regions_key(cli: Cli) -> None:
    eu_key = cli.json("--region", EU, "create-key")["KeyMetadata"]["KeyId"]
    cli("--region", EU, "create-alias", "--alias-name", "alias/eu", "--target-key-id", eu_key)
    blob = cli.json("--region", EU, "encrypt", "--key-id", "alias/eu", "--plaintext", "x")["CiphertextBlob"]
    for form in (eu_key, arn(EU, eu_key)):  # no --region needed for a key id or ARN
        view = cli.json("forensics", "key", form)
        assert view["KeyArn"] == arn(EU, eu_key) and view["AliasesNow"] == ["alias/eu"]
        assert view["Regions"] == [{"Region": EU, "KeyArn": arn(EU, eu_key), "KeyState": "Enabled",
                                    "AliasesNow": ["alias/eu"]}]
        assert {e["Region"] for e in view["Timeline"]} == {EU}
    # an alias resolves in the request region
    assert cli.json("--region", EU, "forensics", "key", "alias/eu")["KeyId"] == eu_key
    error = cli("forensics", "key", "alias/eu", expect=1).stderr
    assert f"alias alias/eu does not exist now in {US}" in error
    cli("forensics", "key", arn(US, eu_key), expect=1)  # the ARN of a region it is not in
    # the ciphertext's key is named with its own region's ARN
    found = cli.json("forensics", "ciphertext", "--ciphertext-blob", blob)
    assert found["KeyArn"] == arn(EU, eu_key) and found["ProducedBy"]["Region"] == EU
    # who-can evaluates the key where it is
    who = cli.json("forensics", "who-can", "--key-id", eu_key)
    assert (who["KeyArn"], who["Region"], who["KeyState"]) == (arn(EU, eu_key), EU, "Enabled")
    assert "OtherRegions" not in who


def test_multi_region_replicas_are_listed_per_region(cli: Cli) -> None:
    mrk = cli.create_key("--multi-region")
    cli("replicate-key", "--key-id", mrk, "--replica-region", EU)
    cli("create-alias", "--alias-name", "alias/app", "--target-key-id", mrk)
    cli("--region", EU, "create-alias", "--alias-name", "alias/app-eu", "--target-key-id", mrk)
    cli("--region", EU, "encrypt", "--key-id", mrk, "--plaintext", "x")
    cli("--region", EU, "create-grant", "--key-id", mrk, "--grantee-principal",
        f"arn:aws:iam::{ACCOUNT}:user/alice", "--operations", "Decrypt")

    every = cli.json("forensics", "key", mrk)
    assert [(r["Region"], r["MultiRegionKeyType"], r["AliasesNow"]) for r in every["Regions"]] == [
        (US, "PRIMARY", ["alias/app"]), (EU, "REPLICA", ["alias/app-eu"])]
    assert every["KeyArn"] == arn(US, mrk)  # the request region's
    assert cli.json("--region", EU, "forensics", "key", mrk)["KeyArn"] == arn(EU, mrk)
    only_eu = cli.json("--region", EU, "forensics", "key", "alias/app-eu")
    assert [r["Region"] for r in only_eu["Regions"]] == [EU]
    assert {e["Region"] for e in only_eu["Timeline"]} == {EU}
    assert only_eu["UsageByPrincipal"] == [{"Principal": f"arn:aws:iam::{ACCOUNT}:root", "Requests": 1}]
    text = cli("--output", "text", "forensics", "key", mrk).stdout
    assert f"region:   {EU}: REPLICA Enabled, aliases alias/app-eu" in text

    who = cli.json("forensics", "who-can", "--key-id", mrk)
    assert who["Region"] == US and [o["Region"] for o in who["OtherRegions"]] == [EU]
    alice = f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert alice in {a["Principal"] for a in who["OtherRegions"][0]["Allowed"]}  # the replica's grant
    assert alice not in {a["Principal"] for a in who["Allowed"]}
    pinned = cli.json("forensics", "who-can", "--key-id", arn(EU, mrk))
    assert pinned["Region"] == EU and "OtherRegions" not in pinned

    # audit log: a bare id reaches every region's records, an alias or ARN its own region's
    def regions(*args: str) -> list[str]:
        lines = cli("audit", "log", "--oldest-first", *args).stdout.splitlines()
        return [json.loads(line).get("region", US) for line in lines]
    assert set(regions("--key-id", mrk)) == {US, EU}
    assert set(regions("--key-id", arn(EU, mrk))) == {EU}
    assert set(regions("--key-id", "alias/app")) == {US}
    assert set(regions("--region", EU, "--key-id", "alias/app-eu")) == {EU}
    assert "alias/app-eu does not exist now" in cli("audit", "log", "--key-id", "alias/app-eu", expect=1).stderr


def test_prove_decryptable_with_regions(cli: Cli, tmp_path) -> None:
    us_key = cli.create_key()
    eu_key = cli.json("--region", EU, "create-key")["KeyMetadata"]["KeyId"]
    lines = []
    for region, key in ((US, us_key), (EU, eu_key)):
        blob = cli.json("--region", region, "encrypt", "--key-id", key, "--plaintext", "x")["CiphertextBlob"]
        lines.append(f"{blob}\t{{}}")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    data = cli.json("--output", "json", "replay", "prove-decryptable", "--ciphertexts", str(corpus))
    assert data["Ok"] is True and data["Corpus"] == {"Total": 2, "Opened": 2, "Failures": []}
    assert {(k["KeyId"], k.get("Region"), k["Verdict"]) for k in data["Keys"]} == {
        (us_key, US, "ok"), (eu_key, EU, "ok")}
    text = cli("replay", "prove-decryptable").stdout
    assert f"key {eu_key} in {EU} (Enabled): OK" in text and f"key {us_key} (Enabled): OK" in text
