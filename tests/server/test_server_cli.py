"""The `serve` and `iam create-access-key` commands, and a real `serve`
process stopped by SIGTERM under load."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from click.testing import CliRunner

import keyledger
from keyledger import events as ev
from keyledger.server import credentials as creds
from keyledger.server.cli import iam, serve
from serverkit import ALL_KMS, REGION, Process


def make_user(home: Path, name: str, policy: str | None = ALL_KMS) -> str:
    with keyledger.open(home, create=True) as kms:
        arn = kms.create_user(name).arn
        if policy:
            kms.put_principal_policy(arn, "kms-all", policy)
    return arn


def create_access_key(home: Path, user: str, *extra: str) -> Any:
    result = CliRunner().invoke(iam, ["create-access-key", "--user-name", user, "--home", str(home), *extra])
    return result


def test_iam_create_access_key(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    arn = make_user(home, "alice")
    result = create_access_key(home, "alice")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)["AccessKey"]
    assert set(out) == {"UserName", "AccessKeyId", "Status", "SecretAccessKey", "CreateDate"}
    assert out["UserName"] == "alice" and out["Status"] == "Active" and out["AccessKeyId"].startswith("AKIA")
    assert len(out["AccessKeyId"]) == 20 and len(out["SecretAccessKey"]) == 40
    assert not (home / creds.DEFAULT_FILE).exists()  # the ledger holds it: no file
    with keyledger.open(home) as kms:
        principal, secret, active = kms.held_access_key(out["AccessKeyId"])
        records = list(kms.store.records())
        raw = b"".join(r.body for r in kms.store.raw_records())
    assert (principal, secret.reveal(), active) == (arn, out["SecretAccessKey"].encode(), True)
    issued = [r for r in records if isinstance(r.event, ev.AccessKeyCreated)]
    assert issued[-1].event == ev.AccessKeyCreated(arn, out["AccessKeyId"], held=True)
    assert out["SecretAccessKey"] not in repr(records) and out["SecretAccessKey"].encode() not in raw
    # --credentials FILE keeps the secret in that file instead (only a server given the file accepts it)
    other = tmp_path / "elsewhere.jsonl"
    result = create_access_key(home, "alice", "--credentials", str(other))
    assert result.exit_code == 0, result.output
    second = json.loads(result.stdout)["AccessKey"]
    assert os.stat(other).st_mode & 0o777 == 0o600
    found = creds.Credentials(other).lookup(second["AccessKeyId"])
    assert found.principal == arn and found.secret.reveal() == second["SecretAccessKey"].encode()
    with keyledger.open(home) as kms:
        assert kms.held_access_key(second["AccessKeyId"]) is None
    # two keys per user, as in AWS
    result = create_access_key(home, "alice")
    assert result.exit_code == 254
    assert "(LimitExceededException) when calling the CreateAccessKey operation: Cannot exceed quota for " \
           "AccessKeysPerUser: 2" in result.stderr
    # with no --user-name, the caller's own key: the account root's
    result = CliRunner().invoke(iam, ["create-access-key", "--home", str(home)])
    assert result.exit_code == 0, result.output
    root_key = json.loads(result.stdout)["AccessKey"]
    assert "UserName" not in root_key
    with keyledger.open(home) as kms:
        assert kms.held_access_key(root_key["AccessKeyId"])[0] == f"arn:aws:iam::{kms.account}:root"


def test_iam_create_access_key_for_a_missing_user(tmp_path: Path) -> None:
    keyledger.open(tmp_path / "ledger", create=True).close()
    result = create_access_key(tmp_path / "ledger", "nobody")
    assert result.exit_code == 254
    assert "An error occurred (NotFoundException) when calling the CreateAccessKey operation" in result.stderr
    assert not (tmp_path / "ledger" / creds.DEFAULT_FILE).exists()


def test_serve_refuses_without_credentials(tmp_path: Path) -> None:
    keyledger.open(tmp_path / "ledger", create=True).close()
    result = CliRunner().invoke(serve, ["--home", str(tmp_path / "ledger"), "--port", "0"])
    assert result.exit_code == 1 and "no access keys: create one with `keyledger iam create-access-key" \
        in result.stderr and "no credentials file" in result.stderr
    assert "Traceback" not in result.output


def test_sigterm_under_load_loses_no_acknowledged_request(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    make_user(home, "alice")
    key = json.loads(create_access_key(home, "alice").stdout)["AccessKey"]
    server = Process("--home", str(home), "--durability", "relaxed")
    try:
        def client() -> Any:
            return boto3.client("kms", endpoint_url=server.url, region_name=REGION,
                                aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                                config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=20))
        key_id = client().create_key()["KeyMetadata"]["KeyId"]
        acknowledged: list[str] = []
        failures: list[BaseException] = []
        started = threading.Barrier(9)

        def load() -> None:
            kms = client()
            started.wait()
            while True:
                try:
                    out = kms.encrypt(KeyId=key_id, Plaintext=b"payload")
                except Exception as exc:  # noqa: BLE001 - the server went away: the end of the load
                    failures.append(exc)
                    return
                acknowledged.append(out["ResponseMetadata"]["RequestId"])

        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        started.wait()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        code = server.stop(signal.SIGTERM)
        for t in threads:
            t.join(30)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    assert code == 0, "".join(server.lines)
    assert len(acknowledged) >= 200 and len(failures) == 8
    with keyledger.open(home) as kms:
        logged = {r.request_id for r in kms.store.records() if isinstance(r.event, ev.Encrypted)}
    missing = set(acknowledged) - logged
    assert not missing, f"{len(missing)} acknowledged requests are not in the log"
    events = [e["event"] for e in server.events()]
    assert events[0] == "listening" and events[-1] == "closed" and "stopped" in events
    assert not any("Traceback" in line for line in server.lines)
    assert key["SecretAccessKey"] not in "".join(server.lines)
    assert set(acknowledged) <= {line.get("request_id") for line in server.access() if line["status"] == 200}


def serving_without_auth(home: Path, *options: str) -> tuple[Process, Any]:
    """A new ledger at `home` served with --auth none, and a KMS client of it."""
    keyledger.open(home, create=True).close()
    server = Process("--home", str(home), "--auth", "none", *options)
    return server, boto3.client("kms", endpoint_url=server.url, region_name=REGION,
                                aws_access_key_id="anything", aws_secret_access_key="anything")


def test_auth_none_warns_and_serves_the_root(tmp_path: Path) -> None:
    server, kms = serving_without_auth(tmp_path / "ledger", "--access-log", "off")
    try:
        kms.create_key()
    finally:
        code = server.stop(signal.SIGINT)
    assert code == 0
    text = "".join(server.lines)
    assert "WARNING: authentication is disabled" in text
    assert [e for e in server.events() if e["event"] == "auth-disabled"][0]["level"] == "WARNING"
    with keyledger.open(tmp_path / "ledger") as kms:
        created = [r for r in kms.store.records() if isinstance(r.event, ev.KeyCreated)]
    assert created[0].principal == f"arn:aws:iam::{created[0].principal.split(':')[4]}:root"


def test_commands_under_the_main_group_inherit_its_home(tmp_path: Path) -> None:
    """As the lead registers them (`main.add_command(serve)`, `main.add_command(iam)`),
    on a copy of the main group so that no other test sees the change."""
    import click

    from keyledger.cli.main import main
    group = click.Group("keyledger", params=main.params, callback=main.callback,
                        commands={"serve": serve, "iam": iam})
    home = tmp_path / "ledger"
    make_user(home, "carol")
    result = CliRunner().invoke(group, ["--home", str(home), "iam", "create-access-key", "--user-name", "carol"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["AccessKey"]["UserName"] == "carol"
    with keyledger.open(home) as kms:  # the inherited home's ledger holds it
        assert kms.held_access_key(json.loads(result.stdout)["AccessKey"]["AccessKeyId"])[0].endswith("user/carol")
    assert CliRunner().invoke(group, ["serve", "--help"]).exit_code == 0
    # or into the CLI's own iam group, as its docstring invites
    from keyledger.cli.iam import iam as cli_iam
    from keyledger.server.cli import create_access_key as command
    merged = click.Group("iam", commands={**cli_iam.commands, "create-access-key": command})
    group = click.Group("keyledger", params=main.params, callback=main.callback,
                        commands={"serve": serve, "iam": merged})
    bob = tmp_path / "bob"
    make_user(bob, "bob")
    result = CliRunner().invoke(group, ["--home", str(bob), "iam", "create-access-key", "--user-name", "bob"])
    assert result.exit_code == 0, result.output
    # a principal without iam:CreateAccessKey may not issue keys
    result = CliRunner().invoke(group, ["--home", str(bob), "--principal", "arn:aws:iam::111122223333:user/bob",
                                        "iam", "create-access-key", "--user-name", "bob"])
    assert result.exit_code == 254 and "AccessDeniedException" in result.stderr


def test_serve_behind_a_trusted_proxy_logs_the_client_and_the_proxy(tmp_path: Path) -> None:
    server, kms = serving_without_auth(tmp_path / "ledger", "--trusted-proxy", "127.0.0.0/8")
    try:
        kms.meta.events.register("before-sign.kms.*", lambda request, **_: request.headers.__setitem__(
            "X-Forwarded-For", "198.51.100.23"))
        kms.create_key()
    finally:
        assert server.stop() == 0
    [listening] = [e for e in server.events() if e["event"] == "listening"]
    assert listening["trusted_proxies"] == ["127.0.0.0/8"]
    [line] = [e for e in server.access() if e.get("operation") == "CreateKey"]
    assert (line["remote"], line["proxy"]) == ("198.51.100.23", "127.0.0.1")
    with keyledger.open(tmp_path / "ledger") as kms:
        assert [r.source for r in kms.store.records() if isinstance(r.event, ev.KeyCreated)] == ["198.51.100.23"]


def test_iam_get_access_key_last_used(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    make_user(home, "alice")
    made = json.loads(create_access_key(home, "alice").stdout)["AccessKey"]
    result = CliRunner().invoke(iam, ["get-access-key-last-used", "--access-key-id", made["AccessKeyId"],
                                      "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"UserName": "alice",
                                         "AccessKeyLastUsed": {"ServiceName": "N/A", "Region": "N/A"}}
    missing = CliRunner().invoke(iam, ["get-access-key-last-used", "--access-key-id", "AKIAIOSFODNN7EXAMPLE",
                                       "--home", str(home)])
    assert missing.exit_code != 0 and "not authorized to perform: iam:GetAccessKeyLastUsed" in missing.output
