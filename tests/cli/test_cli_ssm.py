"""`keyledger ssm ...`: the parameter store named as `aws ssm` names it,
SSM's JSON out, SSM's errors as the AWS CLI prints them, every call on record."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import keyledger
from keyledger import events as ev
from keyledger.cli.main import main
from keyledger.cli.ssm import OPERATIONS, ssm

ARN = "arn:aws:ssm:us-east-1:111122223333:parameter"


def test_every_operation_has_its_command() -> None:
    names = {c.name for c in ssm.commands.values()}
    assert names == {"put-parameter", "get-parameter", "get-parameters", "get-parameters-by-path",
                     "delete-parameter", "delete-parameters", "get-parameter-history",
                     "label-parameter-version", "unlabel-parameter-version", "describe-parameters",
                     "add-tags-to-resource", "list-tags-for-resource", "remove-tags-from-resource"}
    assert {c.operation for c in ssm.commands.values()} == set(OPERATIONS)  # type: ignore[attr-defined]
    for command in ssm.commands.values():
        assert command.help and "aws ssm" in command.help
    help_text = CliRunner().invoke(main, ["ssm", "--help"]).output
    assert "put-parameter" in help_text and "SecureString" in help_text


def test_put_get_and_paths(cli, tmp_path: Path) -> None:
    assert cli.json("ssm", "put-parameter", "--name", "/app/prod/db-password", "--value", "cli-secret-value",
                    "--type", "SecureString") == {"Version": 1, "Tier": "Standard"}
    value_file = tmp_path / "url.txt"
    value_file.write_text("https://db.example")
    cli.json("ssm", "put-parameter", "--name", "/app/prod/url", "--value", f"file://{value_file}", "--type",
             "String", "--tags", "Key=team,Value=blue")
    got = cli.json("ssm", "get-parameter", "--name", "/app/prod/db-password", "--with-decryption")["Parameter"]
    assert got["Value"] == "cli-secret-value" and got["ARN"] == f"{ARN}/app/prod/db-password"
    assert got["LastModifiedDate"].endswith("Z")
    hidden = cli.json("ssm", "get-parameter", "--name", "/app/prod/db-password")["Parameter"]["Value"]
    assert hidden != "cli-secret-value"
    text = cli("ssm", "get-parameter", "--name", "/app/prod/url", "--query", "Parameter.Value", "--output",
               "text").stdout
    assert text.strip() == "https://db.example"
    cli.json("ssm", "put-parameter", "--name", "/app/prod/url", "--value", "https://db2", "--overwrite")
    both = cli.json("ssm", "get-parameters", "--names", "/app/prod/url:1", "/app/prod/url", "/none")
    assert [p["Value"] for p in both["Parameters"]] == ["https://db.example", "https://db2"]
    assert both["InvalidParameters"] == ["/none"]
    page = cli.json("ssm", "get-parameters-by-path", "--path", "/app", "--recursive", "--with-decryption",
                    "--max-results", "1")
    assert [p["Name"] for p in page["Parameters"]] == ["/app/prod/db-password"] and "NextToken" in page
    rest = cli.json("ssm", "get-parameters-by-path", "--path", "/app", "--recursive", "--next-token",
                    page["NextToken"])
    assert [p["Name"] for p in rest["Parameters"]] == ["/app/prod/url"] and "NextToken" not in rest
    secure = cli.json("ssm", "get-parameters-by-path", "--path", "/app/prod", "--parameter-filters",
                      "Key=Type,Values=SecureString")
    assert [p["Name"] for p in secure["Parameters"]] == ["/app/prod/db-password"]
    blue = cli.json("ssm", "describe-parameters", "--parameter-filters", "Key=tag:team,Values=blue")
    assert [m["Name"] for m in blue["Parameters"]] == ["/app/prod/url"]
    described = cli.json("ssm", "describe-parameters", "--filters", "Key=Type,Values=SecureString")
    assert described["Parameters"][0]["KeyId"] == "alias/aws/ssm"
    labeled = cli.json("ssm", "label-parameter-version", "--name", "/app/prod/url", "--parameter-version", "1",
                       "--labels", "stable", "9bad")
    assert labeled == {"InvalidLabels": ["9bad"], "ParameterVersion": 1}
    history = cli.json("ssm", "get-parameter-history", "--name", "/app/prod/url")["Parameters"]
    assert [(h["Version"], h["Labels"]) for h in history] == [(1, ["stable"]), (2, [])]
    assert cli.json("ssm", "delete-parameters", "--names", "/app/prod/url", "/zz") == \
        {"DeletedParameters": ["/app/prod/url"], "InvalidParameters": ["/zz"]}
    assert cli("ssm", "delete-parameter", "--name", "/app/prod/db-password").stdout == ""  # as `aws ssm` prints


def test_unlabel_and_tags(cli) -> None:
    cli.json("ssm", "put-parameter", "--name", "/svc/url", "--value", "https://a", "--type", "String")
    cli.json("ssm", "label-parameter-version", "--name", "/svc/url", "--labels", "prod", "stable")
    assert cli.json("ssm", "unlabel-parameter-version", "--name", "/svc/url", "--parameter-version", "1",
                    "--labels", "prod", "gone") == {"RemovedLabels": ["prod"], "InvalidLabels": ["gone"]}
    assert cli("ssm", "add-tags-to-resource", "--resource-type", "Parameter", "--resource-id", "/svc/url",
               "--tags", "Key=env,Value=prod", "Key=team,Value=blue").stdout == ""  # as `aws ssm` prints
    tags = cli.json("ssm", "list-tags-for-resource", "--resource-type", "Parameter", "--resource-id", "/svc/url")
    assert tags == {"TagList": [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "blue"}]}
    cli("ssm", "remove-tags-from-resource", "--resource-type", "Parameter", "--resource-id", "/svc/url",
        "--tag-keys", "team")
    assert cli("ssm", "list-tags-for-resource", "--resource-type", "Parameter", "--resource-id", "/svc/url",
               "--query", "TagList[].Key", "--output", "text").stdout.strip() == "env"
    out = cli("ssm", "list-tags-for-resource", "--resource-type", "Parameter", "--resource-id", "/none", expect=254)
    assert out.stderr == "An error occurred (InvalidResourceId) when calling the ListTagsForResource operation: \n"


def test_errors_as_the_aws_cli_prints_them(cli) -> None:
    out = cli("ssm", "get-parameter", "--name", "/none", expect=254)
    assert out.stderr == "An error occurred (ParameterNotFound) when calling the GetParameter operation: \n"
    cli("ssm", "put-parameter", "--name", "/p", "--value", "v", "--type", "String")
    out = cli("ssm", "put-parameter", "--name", "/p", "--value", "v2", expect=254)
    assert "(ParameterAlreadyExists) when calling the PutParameter operation: The parameter already exists." \
        in out.stderr
    out = cli("ssm", "put-parameter", "--name", "/aws/x", "--value", "v", "--type", "String", expect=254)
    assert "(AccessDeniedException)" in out.stderr and "No access to reserved parameter name" in out.stderr
    out = cli("ssm", "put-parameter", "--name", "/s", "--value", "secret-never-echoed", "--type", "SecureString",
              "--key-id", "alias/none", expect=254)
    assert "(InvalidKeyId)" in out.stderr and "secret-never-echoed" not in out.stderr
    out = cli("ssm", "get-parameters-by-path", "--path", "/x", "--max-results", "11", expect=254)
    assert "(ValidationException)" in out.stderr
    cli("ssm", "put-parameter", "--name", "/t", "--value", "v", "--type", "String", "--tags", "{bad", expect=2)


def test_every_call_is_on_record_as_the_principal(cli) -> None:
    cli("ssm", "put-parameter", "--name", "/r", "--value", "record-secret-value", "--type", "SecureString")
    cli("ssm", "get-parameter", "--name", "/r", "--with-decryption")
    cli("ssm", "get-parameter", "--name", "/none", expect=254)
    with keyledger.open(cli.home) as kms:
        log = list(kms.store.records())
    ops = [r.operation for r in log]
    assert ops[-6:] == ["CreateKey", "Encrypt", "PutParameter", "Decrypt", "GetParameter", "GetParameter"]
    assert isinstance(log[-1].event, ev.RequestDenied) and log[-1].event.error_code == "ParameterNotFound"
    assert all("record-secret-value" not in json.dumps(str(r.event)) for r in log)
