"""Revoking access keys: `keyledger iam list-access-keys`, `update-access-key`
and `delete-access-key`, recorded in the log, and a running server that
refuses a switched-off key within a second (it used to keep accepting a
known key until an unknown one forced a reload)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from keyledger import events as ev
from keyledger.server import credentials as creds
from serverkit import ACCOUNT, Server

INVALID_TOKEN = "The security token included in the request is invalid."


def run(server: Server, *args: str, principal: str | None = None) -> subprocess.CompletedProcess[str]:
    """`keyledger [--principal P] iam ...` on the server's own ledger and
    credentials file, in another process (as an operator runs it while
    the server holds the ledger open)."""
    extra = ["--principal", principal] if principal else []
    return subprocess.run([sys.executable, "-c", "from keyledger.cli.main import main; main()",
                           "--home", str(server.home), *extra, "iam", *args],
                          capture_output=True, text=True, timeout=60)


def refused_within(client: Any, seconds: float = 3.0) -> float:
    """How long until the client's key is refused (UnrecognizedClientException), polling."""
    started = time.monotonic()
    while True:
        try:
            client.list_keys()
        except ClientError as exc:
            error = exc.response["Error"]
            assert (error["Code"], error["Message"]) == ("UnrecognizedClientException", INVALID_TOKEN)
            return time.monotonic() - started
        assert time.monotonic() - started < seconds, "the switched-off key still works"
        time.sleep(0.05)


def works_again(client: Any, seconds: float = 3.0) -> None:
    started = time.monotonic()
    while True:
        try:
            client.list_keys()
            return
        except ClientError as exc:
            assert time.monotonic() - started < seconds, exc
            time.sleep(0.05)


def test_appending_inactive_for_a_known_key_takes_effect(start_server: Any) -> None:
    """The issue's exact case: the key is known and in use; a line that
    switches it off is appended by hand."""
    server = start_server()
    alice = server.client("alice")
    alice.list_keys()  # known, cached, in use
    entry = server.access["alice"]
    creds.append(server.keys_file, creds.AccessKeyLine(
        entry.access_key_id, entry.secret_access_key, entry.principal, entry.user_name, "Inactive",
        entry.create_date))
    refused_within(alice)
    with pytest.raises(ClientError) as info:  # only that key: bob is still who he says (with no permission)
        server.client("bob").list_keys()
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"


def test_update_and_delete_access_key_through_the_cli(start_server: Any) -> None:
    server = start_server()
    alice, entry = server.client("alice"), server.access["alice"]
    alice.list_keys()
    before = server.head()

    listed = run(server, "list-access-keys", "--user-name", "alice")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"AccessKeyMetadata": [{
        "UserName": "alice", "AccessKeyId": entry.access_key_id, "Status": "Active",
        "CreateDate": entry.create_date}]}
    assert entry.secret_access_key not in listed.stdout + listed.stderr

    result = run(server, "update-access-key", "--access-key-id", entry.access_key_id, "--status", "Inactive")
    assert result.returncode == 0 and result.stdout == "", result.stderr
    refused_within(alice)
    listed = json.loads(run(server, "list-access-keys", "--user-name", "alice").stdout)
    assert listed["AccessKeyMetadata"][0]["Status"] == "Inactive"

    result = run(server, "update-access-key", "--access-key-id", entry.access_key_id, "--status", "Active",
                 "--user-name", "alice")
    assert result.returncode == 0, result.stderr
    works_again(alice)

    result = run(server, "delete-access-key", "--access-key-id", entry.access_key_id)
    assert result.returncode == 0 and result.stdout == "", result.stderr
    refused_within(alice)
    assert entry.access_key_id not in server.keys_file.read_text()  # the secret left the file
    assert entry.secret_access_key not in server.keys_file.read_text()
    assert server.keys_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(run(server, "list-access-keys", "--user-name", "alice").stdout) == {"AccessKeyMetadata": []}

    # all of it is on record, under the caller (the account root), never a secret
    records = [r for r in server.records(before) if r.operation != "ListKeys" and r.principal != "anonymous"]
    assert [(r.operation, r.event) for r in records] == [
        ("ListAccessKeys", ev.MetadataRead("ListAccessKeys")),
        ("UpdateAccessKey", ev.AccessKeyStatusChanged(entry.principal, entry.access_key_id, "Inactive")),
        ("ListAccessKeys", ev.MetadataRead("ListAccessKeys")),
        ("UpdateAccessKey", ev.AccessKeyStatusChanged(entry.principal, entry.access_key_id, "Active")),
        ("DeleteAccessKey", ev.AccessKeyDeleted(entry.principal, entry.access_key_id)),
        ("ListAccessKeys", ev.MetadataRead("ListAccessKeys")),
    ]
    assert {r.principal for r in records} == {f"arn:aws:iam::{ACCOUNT}:root"}
    assert entry.secret_access_key not in repr(server.records(before))
    # and the projection forgot the deleted key
    with server.kms.store.snapshot() as snap:
        from keyledger.projections import principal_row
        assert entry.access_key_id not in snap.get("principals", principal_row(entry.principal)).access_keys
    # a deleted key cannot be switched on again
    again = run(server, "update-access-key", "--access-key-id", entry.access_key_id, "--status", "Active",
                "--user-name", "alice")
    assert again.returncode == 254
    assert "An error occurred (NotFoundException) when calling the UpdateAccessKey operation: " \
           f"The Access Key with id {entry.access_key_id} cannot be found." in again.stderr


def test_revoking_needs_permission_and_the_refusal_is_recorded(start_server: Any) -> None:
    server = start_server()
    entry = server.access["alice"]
    bob = f"arn:aws:iam::{ACCOUNT}:user/bob"
    before = server.head()
    for args, operation in [
        (("update-access-key", "--access-key-id", entry.access_key_id, "--status", "Inactive"), "UpdateAccessKey"),
        (("delete-access-key", "--access-key-id", entry.access_key_id), "DeleteAccessKey"),
        (("list-access-keys", "--user-name", "alice"), "ListAccessKeys"),
    ]:
        result = run(server, *args, principal=bob)
        assert result.returncode == 254, result.stderr
        assert f"An error occurred (AccessDeniedException) when calling the {operation} operation" in result.stderr
    denied = server.records(before)
    assert [(r.operation, r.principal, type(r.event)) for r in denied] == [
        ("UpdateAccessKey", bob, ev.RequestDenied), ("DeleteAccessKey", bob, ev.RequestDenied),
        ("ListAccessKeys", bob, ev.RequestDenied)]
    assert [e.status for e in creds.entries(server.keys_file)
            if e.access_key_id == entry.access_key_id] == ["Active"]
    server.client("alice").list_keys()  # untouched


@pytest.mark.parametrize("status", ["inactive", "Disabled"])
def test_update_access_key_status_is_checked(start_server: Any, status: str) -> None:
    server = start_server()
    result = run(server, "update-access-key", "--access-key-id", server.access["alice"].access_key_id,
                 "--status", status)
    assert result.returncode == 2 and "'Active', 'Inactive'" in result.stderr


def test_a_key_of_another_user_is_not_found(start_server: Any) -> None:
    server = start_server()
    result = run(server, "delete-access-key", "--access-key-id", server.access["alice"].access_key_id,
                 "--user-name", "bob")
    assert result.returncode == 254 and "NotFoundException" in result.stderr
    assert server.access["alice"].access_key_id in server.keys_file.read_text()


def test_a_key_the_ledger_holds_works_at_once_and_is_revoked_within_a_second(start_server: Any) -> None:
    """`keyledger iam create-access-key` (no --credentials) while the server
    runs: the ledger holds the secret and the status, so the very next
    request authenticates with it, and a change made by another process is
    refused within a second (the server remembers a key it found active
    that long, as it does a credentials file's); no file is touched."""
    server = start_server()
    before_file = server.keys_file.read_bytes()
    issued = run(server, "create-access-key", "--user-name", "alice")
    assert issued.returncode == 0, issued.stderr
    key = json.loads(issued.stdout)["AccessKey"]
    alice = server.client("alice", aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"])
    alice.list_keys()  # no wait: the ledger is what the verifier reads
    wrong = server.client("alice", aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"][::-1])
    with pytest.raises(ClientError, match="InvalidSignatureException"):
        wrong.list_keys()

    listed = json.loads(run(server, "list-access-keys", "--user-name", "alice").stdout)["AccessKeyMetadata"]
    file_key = server.access["alice"]
    assert [(k["AccessKeyId"], k["Status"]) for k in listed] == [
        (file_key.access_key_id, "Active"), (key["AccessKeyId"], "Active")]  # in the order issued
    assert listed[1]["UserName"] == "alice" and listed[1]["CreateDate"].startswith(key["CreateDate"][:19])

    assert run(server, "update-access-key", "--access-key-id", key["AccessKeyId"], "--status", "Inactive").returncode == 0
    assert refused_within(alice) < 3.0
    assert json.loads(run(server, "list-access-keys", "--user-name", "alice").stdout)["AccessKeyMetadata"][1][
        "Status"] == "Inactive"
    assert run(server, "update-access-key", "--access-key-id", key["AccessKeyId"], "--status", "Active").returncode == 0
    works_again(alice)  # (an id not found is never remembered)
    assert run(server, "delete-access-key", "--access-key-id", key["AccessKeyId"]).returncode == 0
    refused_within(alice)
    server.client("alice").list_keys()  # the file's key is untouched
    assert server.keys_file.read_bytes() == before_file
    records = server.records(0)
    assert key["SecretAccessKey"] not in repr(records)
    assert [type(r.event) for r in records if r.operation.endswith("AccessKey")][-4:] == [
        ev.AccessKeyCreated, ev.AccessKeyStatusChanged, ev.AccessKeyStatusChanged, ev.AccessKeyDeleted]
