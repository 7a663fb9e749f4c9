"""Three `keyledger serve --cluster` processes on three real etcd members
(all on 127.0.0.1), boto3 clients spread over the nodes, and faults under a
bounded write load: a node SIGKILLed mid-batch, the etcd leader SIGKILLed, a
node paused (SIGSTOP) past compaction so it must start over from a peer's
snapshot, then everything restarted. Afterwards: every acknowledged request
is in the log exactly once, the seqs are dense, every node has the same
chain, and `replay --check` and `audit verify` pass on each home."""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

import keyledger
from keyledger import events as ev
from keyledger.server import credentials as creds
from keyledger.projections import replay as rp
from keyledger.store import Store

from etcdkit import EtcdCluster, etcd_binary, free_ports

pytestmark = pytest.mark.cluster

ALL_KMS = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})


class ServeNode:
    """One `keyledger serve --cluster` process on a fixed loopback port."""

    def __init__(self, home: Path, name: str, port: int, cluster: str, keys: Path | None = None) -> None:
        self.home, self.name, self.port, self.cluster, self.keys = home, name, port, cluster, keys
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.home.parent / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "keyledger.server", "serve", "--home", str(self.home), "--port", str(self.port),
             *(["--credentials", str(self.keys)] if self.keys else []), "--cluster", self.cluster,
             "--node-name", self.name,
             "--node-timeout", "3", "--compact-interval", "0.5", "--sweep-interval", "2", "--access-log", "off",
             "--graceful-timeout", "5"], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

    def health(self) -> int:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            conn.request("GET", "/healthz")
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return 0

    def wait_ready(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health() == 200:
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"node {self.name} not ready: " +
                             (self.home.parent / f"{self.name}.log").read_text(errors="replace")[-3000:])

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(timeout=20)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)


class Load:
    """Client threads encrypting through whichever node answers; what was
    acknowledged (request ids) and what failed everywhere."""

    def __init__(self, nodes: list[ServeNode], access: creds.AccessKeyLine, key: str, threads: int = 4) -> None:
        self.nodes, self.access, self.key = nodes, access, key
        self.acknowledged: list[str] = []
        self.failures = 0
        self.retried = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _client(self, node: ServeNode) -> Any:
        return boto3.client("kms", endpoint_url=node.url, region_name="us-east-1",
                            aws_access_key_id=self.access.access_key_id,
                            aws_secret_access_key=self.access.secret_access_key,
                            config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=8))

    def _run(self, index: int) -> None:
        clients = [self._client(n) for n in self.nodes]
        at = index % len(clients)
        rnd = random.Random(index)
        shunned = [0.0] * len(clients)  # a node that failed is left alone for a while
        while not self._stop.is_set():
            for attempt in range(2 * len(clients)):
                try:
                    answer = clients[at].encrypt(KeyId=self.key, Plaintext=b"p%d" % rnd.randrange(1 << 30))
                except (BotoCoreError, ClientError):
                    shunned[at] = time.monotonic() + 5
                    at = (at + 1) % len(clients)  # a client retrying against another node
                    with self._lock:
                        self.retried += 1
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.acknowledged.append(answer["ResponseMetadata"]["RequestId"])
                usable = [i for i in range(len(clients)) if shunned[i] < time.monotonic()] or [at]
                at = rnd.choice(usable)
                break
            else:
                with self._lock:
                    self.failures += 1
            time.sleep(0.01)

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def wait_for(self, more: int, timeout: float = 30.0) -> None:
        """Until `more` further requests are acknowledged (the cluster makes progress)."""
        target = self.count() + more
        deadline = time.monotonic() + timeout
        while self.count() < target:
            assert time.monotonic() < deadline, "the cluster made no progress"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


@pytest.fixture
def etcd_own(tmp_path: Path) -> Iterator[EtcdCluster]:
    if etcd_binary() is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    cluster = EtcdCluster(tmp_path / "etcd").start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _read_log(home: Path) -> tuple[list[Any], bytes]:
    store = Store(str(home), readonly=True, create=False)
    try:
        raws = list(store.raw_records())
        return raws, store.head().hash
    finally:
        store.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from keyledger.cli.main import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def test_faults_under_load(tmp_path: Path, etcd_own: EtcdCluster) -> None:
    url = etcd_own.url("kl")
    homes = [tmp_path / f"n{i}" for i in range(3)]
    keys_file = tmp_path / "access-keys.jsonl"
    # the first node: an ordinary ledger with a user and an access key, which becomes the cluster's
    with keyledger.open(homes[0], create=True) as kms:
        alice = kms.create_user("alice").arn
        kms.put_principal_policy(alice, "kms-all", ALL_KMS)
        access = creds.new_access_key(alice, "alice")
        kms.record_access_key(alice, access.access_key_id)
    creds.append(keys_file, access)
    for home in homes[1:]:  # the root key provisioned to every node
        home.mkdir(mode=0o700)
        shutil.copy(homes[0] / "root.key", home / "root.key")
        os.chmod(home / "root.key", 0o600)
    ports = free_ports(3)
    nodes = [ServeNode(homes[i], f"n{i}", ports[i], url, keys_file) for i in range(3)]
    nodes[0].start()
    nodes[0].wait_ready()
    for node in nodes[1:]:  # they join by copying n0's snapshot over HTTP
        node.start()
    for node in nodes[1:]:
        node.wait_ready()
    key = boto3.client("kms", endpoint_url=nodes[1].url, region_name="us-east-1",
                       aws_access_key_id=access.access_key_id,
                       aws_secret_access_key=access.secret_access_key).create_key()["KeyMetadata"]["KeyId"]
    load = Load(nodes, access, key).start()
    try:
        load.wait_for(30)
        # 1. a keyledger node SIGKILLed mid-batch, then back
        nodes[1].signal(signal.SIGKILL)
        load.wait_for(30)
        nodes[1].start()
        nodes[1].wait_ready()
        load.wait_for(20)
        # 2. the etcd leader SIGKILLed: a new leader, writes go on
        leader = etcd_own.leader()
        assert leader is not None
        etcd_own.kill(leader)
        load.wait_for(30)
        etcd_own.restart(leader)
        # 3. a node paused past compaction: it must copy a peer's snapshot
        nodes[2].signal(signal.SIGSTOP)
        time.sleep(4)  # past --node-timeout 3: the others compact without it
        load.wait_for(40)
        status = _cli("cluster", "status", "--cluster", url)
        assert status.returncode == 0, status.stderr
        tail = json.loads(status.stdout)["Tail"]["FirstSeq"]
        assert tail is None or tail > json.loads(status.stdout)["Nodes"][2]["AppliedSeq"]
        nodes[2].signal(signal.SIGCONT)
        nodes[2].wait_ready()
        load.wait_for(20)
    finally:
        load.stop()
    assert "re-bootstrapped" in (tmp_path / "n2.log").read_text(errors="replace")
    # 4. restart everything
    for node in nodes:
        node.stop()
    etcd_own.stop()
    etcd_own.start()
    for node in nodes:
        node.start()
    for node in nodes:
        node.wait_ready()
    for node in nodes:  # every node takes writes again
        boto3.client("kms", endpoint_url=node.url, region_name="us-east-1", aws_access_key_id=access.access_key_id,
                     aws_secret_access_key=access.secret_access_key).encrypt(KeyId=key, Plaintext=b"last")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = json.loads(_cli("cluster", "status", "--cluster", url).stdout)
        if len({n["HeadHash"] for n in st["Nodes"]}) == 1 and all(n["Lag"] == 0 for n in st["Nodes"]):
            break
        time.sleep(0.3)
    for node in nodes:
        node.stop()

    logs = [_read_log(home) for home in homes]
    assert logs[0][1] == logs[1][1] == logs[2][1], "the nodes' chains differ"
    raws = logs[0][0]
    assert [r.seq for r in raws] == list(range(len(raws))), "a seq is missing or written twice"
    assert [r.hash for r in raws] == [r.hash for r in logs[1][0]] == [r.hash for r in logs[2][0]]
    encrypted = [ev.decode(r.body).request_id for r in raws if isinstance(ev.decode(r.body).event, ev.Encrypted)]
    seen = set(encrypted)
    assert len(seen) == len(encrypted), "one request was appended twice"
    missing = [rid for rid in load.acknowledged if rid not in seen]
    assert not missing, f"{len(missing)} acknowledged requests are not in the log"
    assert len(load.acknowledged) >= 150 and load.failures == 0
    for home in homes:
        for args in (("replay", "--check"), ("audit", "verify")):
            done = _cli("--home", str(home), *args)
            assert done.returncode == 0, (home.name, args, done.stdout[-2000:], done.stderr[-2000:])


def _until(check: Any, timeout: float = 20.0) -> Any:
    """`check()`'s first answer that is not an exception (a node applies the others' records a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_node_started_while_no_peer_is_ready_waits_for_one(tmp_path: Path, cluster_url: str) -> None:
    """A joining node needs a peer's snapshot. Started while no peer has
    reported itself ready within the node timeout (the peer is down, or too
    busy to report), it waits for one instead of giving up at once; this
    race made a loaded CI run fail to start a cluster."""
    homes = [tmp_path / "n0", tmp_path / "n1"]
    with keyledger.open(homes[0], create=True) as kms:  # an ordinary ledger: a joiner must copy it
        kms.create_access_key(kms.create_user("admin").arn)  # (serve needs a key to authenticate)
    homes[1].mkdir(mode=0o700)
    shutil.copy(homes[0] / "root.key", homes[1] / "root.key")
    os.chmod(homes[1] / "root.key", 0o600)
    first, second = (ServeNode(home, f"n{i}", port, cluster_url)
                     for i, (home, port) in enumerate(zip(homes, free_ports(2))))
    try:
        first.start()
        first.wait_ready()
        first.stop()
        time.sleep(3.5)  # n0's last report is now older than the node timeout (3 s): no peer is ready
        second.start()
        time.sleep(1.5)
        assert second.proc is not None and second.proc.poll() is None, "n1 gave up instead of waiting"
        first.start()
        first.wait_ready()
        second.wait_ready()
    finally:
        first.stop()
        second.stop()
    for home in homes:
        store = Store(str(home), readonly=True, create=False)
        try:
            with store.snapshot() as snap:
                assert rp.check(snap).ok
        finally:
            store.close()


def _two_nodes(tmp_path: Path, cluster_url: str, policy: str) -> tuple[list[Path], list[ServeNode], Any]:
    """Two homes, the first an ordinary ledger whose user admin has `policy`
    and a ledger-held access key (returned), the second empty but for the
    root key; a `serve --cluster` node for each, not started."""
    homes = [tmp_path / "n0", tmp_path / "n1"]
    with keyledger.open(homes[0], create=True) as kms:
        admin = kms.create_user("admin").arn
        kms.put_principal_policy(admin, "policy", policy)
        issued = kms.create_access_key(admin)
    homes[1].mkdir(mode=0o700)
    shutil.copy(homes[0] / "root.key", homes[1] / "root.key")
    os.chmod(homes[1] / "root.key", 0o600)
    nodes = [ServeNode(home, f"n{i}", port, cluster_url) for i, (home, port) in enumerate(zip(homes, free_ports(2)))]
    return homes, nodes, issued


def test_a_running_cluster_is_administered_through_any_node(tmp_path: Path, cluster_url: str) -> None:
    """No credentials file anywhere: the admin's key, made before the first
    serve, reaches the second node in its snapshot; a user and a key made
    through IAM on one node sign KMS requests on the other, and switching
    the key off on that other node stops it on the first."""
    homes, nodes, issued = _two_nodes(tmp_path, cluster_url, json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:*", "iam:*"], "Resource": "*"}]}))
    try:
        for node in nodes:
            node.start()
            node.wait_ready()

        def client(service: str, node: ServeNode, key_id: str, secret: str) -> Any:
            return boto3.client(service, endpoint_url=node.url, region_name="us-east-1", aws_access_key_id=key_id,
                                aws_secret_access_key=secret, config=Config(retries={"total_max_attempts": 1}))

        secret = issued.secret_access_key.reveal().decode()
        iam0 = client("iam", nodes[0], issued.access_key_id, secret)
        iam1 = client("iam", nodes[1], issued.access_key_id, secret)  # the key came with n1's snapshot
        iam0.create_user(UserName="app")
        iam0.put_user_policy(UserName="app", PolicyName="kms", PolicyDocument=ALL_KMS)
        made = iam0.create_access_key(UserName="app")["AccessKey"]
        app1 = client("kms", nodes[1], made["AccessKeyId"], made["SecretAccessKey"])
        key_id = _until(lambda: app1.create_key())["KeyMetadata"]["KeyId"]
        app0 = client("kms", nodes[0], made["AccessKeyId"], made["SecretAccessKey"])
        _until(lambda: app0.describe_key(KeyId=key_id))
        iam1.update_access_key(UserName="app", AccessKeyId=made["AccessKeyId"], Status="Inactive")

        def refused_on_n0() -> None:
            try:
                app0.list_keys()
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "UnrecognizedClientException"
                return
            raise ClientError({"Error": {"Code": "StillAccepted", "Message": ""}}, "ListKeys")
        _until(refused_on_n0)
        listed = iam0.list_access_keys(UserName="app")["AccessKeyMetadata"]
        assert [(k["AccessKeyId"], k["Status"]) for k in listed] == [(made["AccessKeyId"], "Inactive")]
    finally:
        for node in nodes:
            node.stop()
    for home in homes:
        assert not (home / creds.DEFAULT_FILE).exists()
        store = Store(str(home), readonly=True, create=False)
        try:
            log = b"".join(r.body for r in store.raw_records())
        finally:
            store.close()
        assert made["SecretAccessKey"].encode() not in log and secret.encode() not in log


def test_the_root_key_is_rotated_under_a_serving_cluster(tmp_path: Path, cluster_url: str) -> None:
    """The operator's procedure, through the CLI: stage one new key on both
    nodes while they serve, stop one node's server, rotate through its home,
    start it again. The node that kept serving applies the rotation in its
    upkeep thread and goes on answering (its ledger-held access key, a secret
    wrapped under the root key, included); both end under the new key."""
    homes, nodes, issued = _two_nodes(tmp_path, cluster_url, ALL_KMS)
    try:
        for node in nodes:
            node.start()
            node.wait_ready()
        secret = issued.secret_access_key.reveal().decode()
        kms0, kms1 = (boto3.client("kms", endpoint_url=node.url, region_name="us-east-1",
                                   aws_access_key_id=issued.access_key_id, aws_secret_access_key=secret,
                                   config=Config(retries={"total_max_attempts": 1})) for node in nodes)
        key_id = kms0.create_key()["KeyMetadata"]["KeyId"]
        blob = kms0.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]
        staged = _cli("--home", str(homes[0]), "stage-root-key")
        assert staged.returncode == 0, staged.stderr
        check = json.loads(staged.stdout)["StagedRootKeyCheck"]
        copied = _cli("--home", str(homes[1]), "stage-root-key", "--key-file", str(homes[0] / "root.key.staged"))
        assert json.loads(copied.stdout)["StagedRootKeyCheck"] == check
        new_root = (homes[0] / "root.key.staged").read_bytes()

        def staged_on_n1() -> bool:  # as n1 reports it (cluster status shows what a rotation checks first)
            listed = json.loads(_cli("cluster", "status", "--cluster", cluster_url).stdout)["Nodes"]
            return any(n["Name"] == "n1" and n["StagedRootKeyCheck"] == check for n in listed)
        deadline = time.monotonic() + 20
        while not staged_on_n1():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        nodes[0].stop()
        rotated = _cli("--home", str(homes[0]), "cluster", "rotate-root-key", "--cluster", cluster_url,
                       "--node-name", "n0")
        assert rotated.returncode == 0, rotated.stderr
        assert json.loads(rotated.stdout) == {"KeksRewrapped": 2, "RootKeyCheck": check}  # the key's, the secret's
        deadline = time.monotonic() + 20
        while (homes[1] / "root.key").read_bytes() != new_root:  # n1's upkeep applies it
            assert time.monotonic() < deadline, (tmp_path / "n1.log").read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        assert _until(lambda: kms1.decrypt(CiphertextBlob=blob))["Plaintext"] == b"before"
        after = kms1.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
        nodes[0].start()
        nodes[0].wait_ready()
        assert _until(lambda: kms0.decrypt(CiphertextBlob=after))["Plaintext"] == b"after"
        for home in homes:
            assert (home / "root.key").read_bytes() == new_root and not (home / "root.key.staged").exists()
    finally:
        for node in nodes:
            node.stop()
