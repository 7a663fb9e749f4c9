"""`keyledger rotate-root-key` beside a running `keyledger serve` on the same
home. The CLI is another process: it re-wraps every KEK and held access-key
secret under a new root key and destroys the old one. The server follows at
its next transaction, before it wraps or unwraps anything: a key it makes
afterwards is wrapped under the new key, so it still opens after a restart;
old ciphertexts decrypt; a ledger-held access key keeps authenticating; and
every session issued before the rotation ends, as the rotation promises."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import keyledger
from keyledger import crypto
from keyledger.secret import Secret
from serverkit import ACCOUNT, REGION, Server

ONE_TRY = Config(retries={"total_max_attempts": 1})
CAROL = f"arn:aws:iam::{ACCOUNT}:user/carol"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from keyledger.cli.main import main; main()",
                           "--home", str(home), *args], capture_output=True, text=True, timeout=120)


def client(server: Server, service: str, key_id: str, secret: str, token: str | None = None) -> object:
    return boto3.client(service, endpoint_url=server.url, region_name=REGION, config=ONE_TRY,
                        aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token)


def test_a_running_server_follows_a_rotation_made_by_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    server = Server(home)
    try:
        old_root = (home / "root.key").read_bytes()
        alice = server.client("alice")
        first = alice.create_key()["KeyMetadata"]["KeyId"]
        before = alice.encrypt(KeyId=first, Plaintext=b"before")["CiphertextBlob"]
        server.kms.create_user("carol")
        server.kms.put_principal_policy(CAROL, "kms", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["kms:*", "sts:AssumeRole"], "Resource": "*"}]}))
        held = server.kms.create_access_key(CAROL)  # its secret is wrapped under the root key
        carol = client(server, "kms", held.access_key_id, held.secret_access_key.reveal().decode())
        assert carol.decrypt(CiphertextBlob=before)["Plaintext"] == b"before"  # the server unwrapped it once
        server.kms.create_role("worker", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": CAROL}, "Action": "sts:AssumeRole"}]}))
        server.kms.put_principal_policy(f"arn:aws:iam::{ACCOUNT}:role/worker", "kms", json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}))
        made = client(server, "sts", held.access_key_id, held.secret_access_key.reveal().decode()).assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/worker", RoleSessionName="job")["Credentials"]
        session = client(server, "kms", made["AccessKeyId"], made["SecretAccessKey"], made["SessionToken"])
        session.list_keys()

        rotated = cli(home, "rotate-root-key")  # another process, while the server serves
        assert rotated.returncode == 0, rotated.stderr
        assert json.loads(rotated.stdout) == {"KeksRewrapped": 2}  # the key's KEK and carol's secret
        new_root = (home / "root.key").read_bytes()
        assert new_root != old_root and not (home / "root.key.next").exists()

        # the server goes on: old ciphertexts open, the held key authenticates, a new key is made
        assert alice.decrypt(CiphertextBlob=before)["Plaintext"] == b"before"
        assert carol.decrypt(CiphertextBlob=before)["Plaintext"] == b"before"
        second = carol.create_key()["KeyMetadata"]["KeyId"]
        after = carol.encrypt(KeyId=second, Plaintext=b"after")["CiphertextBlob"]
        time.sleep(1.1)  # the server remembers a session it verified for at most a second
        with pytest.raises(ClientError) as ended:  # sealed under the destroyed key: the session is over
            session.list_keys()
        assert ended.value.response["Error"]["Code"] == "UnrecognizedClientException"
    finally:
        server.stop()

    # after a restart, with only the new root key on disk, everything the server made opens
    assert crypto.root_check(Secret(new_root)) != crypto.root_check(Secret(old_root))
    with keyledger.open(home) as kms:
        assert kms.decrypt(after).plaintext == b"after"
        assert kms.decrypt(before).plaintext == b"before"
        assert kms.held_access_key(held.access_key_id)[1].reveal() == held.secret_access_key.reveal()
    proved = cli(home, "replay", "prove-decryptable")
    assert proved.returncode == 0, proved.stdout + proved.stderr


def test_a_process_that_cannot_find_the_new_key_writes_nothing(tmp_path: Path) -> None:
    """If the new key is not in the home (moved away by hand), a process
    that held the old one refuses to write rather than wrap under it."""
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        key_id = kms.create_key().key_metadata.key_id
        rotated = cli(home, "rotate-root-key")
        assert rotated.returncode == 0, rotated.stderr
        new_root = (home / "root.key").read_bytes()
        (home / "root.key").rename(tmp_path / "elsewhere.key")
        head = kms.store.head().seq
        with pytest.raises(keyledger.LedgerError, match="another process rotated this ledger's root key"):
            kms.create_key()
        with pytest.raises(keyledger.LedgerError, match="another process rotated"):
            kms.encrypt(key_id, b"x")
        assert kms.store.head().seq == head  # nothing written, not even the refusals
        (tmp_path / "elsewhere.key").rename(home / "root.key")
        assert kms.decrypt(kms.encrypt(key_id, b"x").ciphertext_blob).plaintext == b"x"
    assert (home / "root.key").read_bytes() == new_root
