"""Access keys whose secrets the ledger holds (CreateAccessKey): the secret
is wrapped under the root key in the `keks` table, never in the log; the
key's status is folded from the log; deleting the key shreds the secret;
rotating the root key rewraps it; audit checks the rows against the log."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec
import pytest

import keyledger
from keyledger import events as ev
from keyledger import responses as r
from keyledger.errors import (
    AccessDeniedException,
    LimitExceededException,
    NotFoundException,
    ValidationException,
)
from keyledger.projections import access_key_row, principal_row, replay
from keyledger.service import KeyLedger
from tamperkit import raw, verify


def _user(kms: KeyLedger, name: str = "alice") -> str:
    return kms.create_user(name).arn


def test_a_held_key_is_issued_once_and_authenticates(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        alice = _user(kms)
        issued = kms.create_access_key(alice)
        secret = issued.secret_access_key.reveal()
        assert issued.user_name == "alice" and issued.status == "Active"
        assert issued.access_key_id.startswith("AKIA") and len(issued.access_key_id) == 20
        assert len(secret) == 40 and len(base64.b64decode(secret)) == 30
        assert secret.decode() not in repr(issued)
        shape = issued.to_aws()["AccessKey"]
        assert shape["SecretAccessKey"] == secret.decode() and shape["CreateDate"].endswith("Z")
        principal, found, active = kms.held_access_key(issued.access_key_id)
        assert (principal, found.reveal(), active) == (alice, secret, True)
        assert kms.held_access_key(issued.access_key_id)[1] is found  # unwrapped once, then cached
        assert kms.held_access_key("AKIAIOSFODNN7EXAMPLE") is None
        [metadata] = kms.list_access_keys(alice).access_key_metadata
        assert (metadata.user_name, metadata.access_key_id, metadata.status) == \
            ("alice", issued.access_key_id, "Active")
        assert metadata.create_date == issued.create_date
        records = list(kms.store.records())
        assert records[-2].event == ev.AccessKeyCreated(alice, issued.access_key_id, held=True)
        assert records[-2].principal == f"arn:aws:iam::{kms.account}:root"
    # the secret is nowhere in the clear: not in the log, not in any LMDB page
    data = (home / "data.mdb").read_bytes()
    assert secret not in data and base64.b64decode(secret) not in data


def test_status_follows_the_log_and_deletion_shreds_the_secret(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        alice = _user(kms)
        key = kms.create_access_key(alice).access_key_id
        kms.update_access_key(alice, key, "Inactive")
        assert kms.held_access_key(key)[2] is False
        assert kms.list_access_keys(alice).access_key_metadata[0].status == "Inactive"
        kms.update_access_key(alice, key, "Active")
        assert kms.held_access_key(key)[2] is True
        kms.delete_access_key(alice, key)
        assert kms.held_access_key(key) is None
        assert kms.store.kek(access_key_row(key)) is None
        assert kms.list_access_keys(alice).access_key_metadata == []
        with pytest.raises(NotFoundException, match=f"The Access Key with id {key} cannot be found."):
            kms.update_access_key(alice, key, "Active")
        with kms.store.snapshot() as snap:
            assert replay.check(snap).ok
    assert verify(home).ok


def test_the_rules_of_issue(tmp_path: Path) -> None:
    with keyledger.open(tmp_path / "ledger", create=True) as kms:
        alice = _user(kms)
        role = kms.create_role("deployer").arn
        kms.create_access_key(alice)
        kms.create_access_key(alice)
        with pytest.raises(LimitExceededException, match="Cannot exceed quota for AccessKeysPerUser: 2$"):
            kms.create_access_key(alice)
        with pytest.raises(ValidationException, match="issued to users, not to a role"):
            kms.create_access_key(role)
        with pytest.raises(NotFoundException):
            kms.create_access_key(f"arn:aws:iam::{kms.account}:user/nobody")
        with pytest.raises(AccessDeniedException):  # bob has no iam:CreateAccessKey
            kms.as_caller(_user(kms, "bob")).create_access_key(alice)
        refused = [r for r in kms.store.records() if isinstance(r.event, ev.RequestDenied)]
        assert [r.event.error_code for r in refused] == ["LimitExceededException", "ValidationException",
                                                         "NotFoundException", "AccessDeniedException"]
        assert {r.operation for r in refused} == {"CreateAccessKey"}
        assert len(kms.store.get("principals", principal_row(alice)).access_keys) == 2


def test_rotating_the_root_key_rewraps_the_secret(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        alice = _user(kms)
        issued = kms.create_access_key(alice)
        before = kms.store.kek(access_key_row(issued.access_key_id))
        assert kms.rotate_root_key() == 1  # the one row in keks: the secret (no KMS key yet)
        after = kms.store.kek(access_key_row(issued.access_key_id))
        assert before != after
    with keyledger.open(home) as kms:  # a fresh handle: nothing cached
        assert kms.held_access_key(issued.access_key_id)[1] == issued.secret_access_key
    assert verify(home).ok


def test_audit_checks_the_secret_rows_against_the_log(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        alice = _user(kms)
        live = kms.create_access_key(alice).access_key_id
        gone = kms.create_access_key(alice).access_key_id
        wrapped = kms.store.kek(access_key_row(gone))
        kms.delete_access_key(alice, gone)
    assert verify(home).ok
    with raw(home) as (txn, dbs):
        txn.put(access_key_row(gone).encode(), wrapped, db=dbs["keks"])  # the deleted secret is back
        txn.delete(access_key_row(live).encode(), db=dbs["keks"])  # a live key's secret lost
        txn.put(access_key_row("AKIAIOSFODNN7EXAMPLE").encode(), wrapped, db=dbs["keks"])  # never issued
    report = verify(home)
    assert {(p.kind, p.row) for p in report.problems} == {
        ("kek", f"keks[iam/{gone}]"), ("kek", f"keks[iam/{live}]"), ("kek", "keks[iam/AKIAIOSFODNN7EXAMPLE]")}
    messages = " ".join(p.message for p in report.problems)
    assert "live in the log but its secret row is missing" in messages
    assert "a secret row for an access key the log does not hold" in messages
    assert wrapped.hex() not in messages


def test_a_swapped_secret_row_does_not_unwrap(tmp_path: Path) -> None:
    """The wrap binds the access key id: one key's row under another's name fails."""
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        alice = _user(kms)
        first, second = (kms.create_access_key(alice).access_key_id for _ in range(2))
        other = kms.store.kek(access_key_row(second))
    with raw(home) as (txn, dbs):
        txn.put(access_key_row(first).encode(), other, db=dbs["keks"])
    with keyledger.open(home) as kms:
        with pytest.raises(keyledger.LedgerError, match=f"the secret of access key {first} does not unwrap"):
            kms.held_access_key(first)


def test_a_credentials_file_key_keeps_its_record_and_row(tmp_path: Path) -> None:
    """Records of keys a credentials file holds encode as before `held`
    existed, and their status changes leave the principal's row alone, so
    old ledgers replay to the rows (and checkpoint digests) they had."""
    assert msgspec.msgpack.encode(ev.AccessKeyCreated("p", "AKIAIOSFODNN7EXAMPLE")) == \
        msgspec.msgpack.encode({"type": "AccessKeyCreated", "principal": "p", "access_key_id": "AKIAIOSFODNN7EXAMPLE"})
    with keyledger.open(tmp_path / "ledger", create=True) as kms:
        alice = _user(kms)
        kms.record_access_key(alice, "AKIAIOSFODNN7EXAMPLE")
        row = kms.store.get("principals", principal_row(alice))
        kms.update_access_key(alice, "AKIAIOSFODNN7EXAMPLE", "Inactive")
        assert kms.store.get("principals", principal_row(alice)) == row
        assert row.held_keys == {} and kms.held_access_key("AKIAIOSFODNN7EXAMPLE") is None
        [metadata] = kms.list_access_keys(alice).access_key_metadata
        assert (metadata.status, metadata.create_date) == (None, None)  # the file has them


def test_the_account_root_may_hold_keys_too(tmp_path: Path) -> None:
    """As in AWS (CreateAccessKey with no user name, signed by the root): the
    root's row appears with its first held key and holds nothing else."""
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        root = f"arn:aws:iam::{kms.account}:root"
        issued = kms.create_access_key(root)
        assert issued.user_name is None and "UserName" not in issued.to_aws()["AccessKey"]
        assert kms.held_access_key(issued.access_key_id)[0] == root
        [listed] = kms.list_access_keys(root).access_key_metadata
        assert (listed.user_name, listed.access_key_id, listed.status) == (None, issued.access_key_id, "Active")
        assert kms.list_users().users == []  # the root is no user
        with pytest.raises(NotFoundException):  # nor does it take identity policies
            kms.put_principal_policy(root, "p", '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                                                '"Action":"kms:*","Resource":"*"}]}')
        kms.create_access_key(root)
        with pytest.raises(LimitExceededException):
            kms.create_access_key(root)
        kms.update_access_key(root, issued.access_key_id, "Inactive")
        assert kms.held_access_key(issued.access_key_id)[2] is False
        kms.delete_access_key(root, issued.access_key_id)
        assert kms.held_access_key(issued.access_key_id) is None
        # a root key of a credentials file (never recorded) is still changed without a check
        kms.update_access_key(root, "AKIAIOSFODNN7EXAMPLE", "Inactive")
    assert verify(home).ok


def test_get_access_key_last_used_reads_the_records_the_key_signed(tmp_path: Path) -> None:
    with keyledger.open(tmp_path / "ledger", create=True) as kms:
        kms.create_user("carol")
        carol = f"arn:aws:iam::{kms.account}:user/carol"
        kms.put_principal_policy(carol, "kms", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["kms:*", "ssm:*"], "Resource": "*"}]}))
        used, idle = kms.create_access_key(carol), kms.create_access_key(carol)
        never = kms.get_access_key_last_used(idle.access_key_id)
        assert (never.user_name, never.access_key_last_used) == ("carol", r.AccessKeyLastUsed("N/A", "N/A"))
        signed = kms.as_caller(carol).from_address("192.0.2.1", True, access_key=used.access_key_id)
        key_id = signed.create_key().key_metadata.key_id
        kms.as_caller(carol).encrypt(key_id, b"not signed with the key: a library call")
        last = kms.get_access_key_last_used(used.access_key_id).access_key_last_used
        assert (last.service_name, last.region) == ("kms", "us-east-1")
        created = [rec for rec in kms.store.records() if rec.operation == "CreateKey"][-1]
        assert last.last_used_date == ev.from_us(created.time)
        signed.in_region("eu-west-1").parameters.put_parameter("/app/x", "v", type="String")
        last = kms.get_access_key_last_used(used.access_key_id).access_key_last_used
        assert (last.service_name, last.region) == ("ssm", "eu-west-1")
        assert kms.get_access_key_last_used(idle.access_key_id).access_key_last_used.service_name == "N/A"
        with pytest.raises(AccessDeniedException) as unknown:  # as for a key the caller may not read
            kms.get_access_key_last_used("AKIAIOSFODNN7EXAMPLE")
        assert unknown.value.message == (f"User: arn:aws:iam::{kms.account}:root is not authorized to perform: "
                                         "iam:GetAccessKeyLastUsed on resource: access key AKIAIOSFODNN7EXAMPLE")
