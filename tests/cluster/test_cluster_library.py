"""Nodes of a cluster through the library (`keyledger.open(..., cluster=...)`)
on real etcd members (127.0.0.1): every node a full replica with the same
chain, a key's KEK usable and shredded everywhere, compaction of the tail,
a node that fell behind it starting over from a peer's snapshot, joining,
cosigned checkpoints."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import keyledger
from keyledger import checkpoint as checkpoint_
from keyledger import cluster as cluster_
from keyledger.cluster import node as node_
from keyledger.errors import KMSError, LedgerError
from keyledger.projections import replay as rp
from keyledger.secret import Secret
from keyledger.store import Store

pytestmark = pytest.mark.cluster


def _node(home: Path, url: str, name: str, *, root: bytes | None = None, **settings: Any) -> Any:
    cfg = cluster_.config(url, node=name, **settings)
    return keyledger.open(home, create=True, cluster=cfg, root_key=root, **({} if "clock" not in settings else {}))


def _three(tmp_path: Path, url: str, **settings: Any) -> list[Any]:
    first = _node(tmp_path / "n0", url, "n0", **settings)
    root = (tmp_path / "n0" / "root.key").read_bytes()
    return [first] + [_node(tmp_path / f"n{i}", url, f"n{i}", root=root, **settings) for i in (1, 2)]


def _settle(nodes: list[Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kms in nodes:
            kms.store.catch_up()
        heads = {(kms.store.head().seq, kms.store.head().hash) for kms in nodes}
        if len(heads) == 1:
            return
        time.sleep(0.05)
    raise AssertionError("the nodes did not converge")


def _verified(home: Path) -> rp.Report:
    store = Store(str(home), readonly=True, create=False)
    try:
        with store.snapshot() as snap:
            return rp.check(snap)
    finally:
        store.close()


def test_three_nodes_one_log(tmp_path: Path, cluster_url: str) -> None:
    nodes = _three(tmp_path, cluster_url)
    try:
        key = nodes[0].create_key(description="shared").key_metadata.key_id
        blobs: list[tuple[int, bytes]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def client(i: int) -> None:
            try:
                for n in range(15):
                    blob = nodes[i % 3].encrypt(key, b"m%d-%d" % (i, n)).ciphertext_blob
                    with lock:
                        blobs.append((i, blob))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        _settle(nodes)
        # every node can use every key: each opens what another encrypted
        for i, blob in blobs[:6]:
            assert nodes[(i + 1) % 3].decrypt(blob).plaintext.startswith(b"m")
        _settle(nodes)
        records = [list(kms.store.raw_records()) for kms in nodes]
        assert [r.hash for r in records[0]] == [r.hash for r in records[1]] == [r.hash for r in records[2]]
        assert [r.seq for r in records[0]] == list(range(len(records[0])))
    finally:
        for kms in nodes:
            kms.close()
    for i in range(3):
        report = _verified(tmp_path / f"n{i}")
        assert report.ok, report.differences or report.chain_error


def test_a_node_home_is_never_opened_alone(tmp_path: Path, cluster_url: str) -> None:
    kms = _node(tmp_path / "n0", cluster_url, "n0")
    kms.close()
    with pytest.raises(LedgerError, match="node of a cluster"):
        keyledger.open(tmp_path / "n0")
    assert _verified(tmp_path / "n0").ok  # the audit tools read it


def test_a_wrong_root_key_cannot_join(tmp_path: Path, cluster_url: str) -> None:
    _node(tmp_path / "n0", cluster_url, "n0").close()
    with pytest.raises(LedgerError, match="root key"):
        _node(tmp_path / "n1", cluster_url, "n1", root=b"\x01" * 32)


def test_deleting_a_key_shreds_its_kek_on_every_node(tmp_path: Path, cluster_url: str) -> None:
    now = [datetime(2030, 1, 1, tzinfo=timezone.utc)]
    clock = lambda: now[0]  # noqa: E731
    first = keyledger.open(tmp_path / "n0", create=True, cluster=cluster_url, node="n0", clock=clock)
    root = (tmp_path / "n0" / "root.key").read_bytes()
    second = keyledger.open(tmp_path / "n1", create=True, cluster=cluster_url, node="n1", clock=clock,
                            root_key=root)
    try:
        key = first.create_key().key_metadata.key_id
        blob = first.encrypt(key, b"secret").ciphertext_blob
        assert second.decrypt(blob).plaintext == b"secret"  # the KEK came with the batch
        assert second.store.kek(key) is not None
        second.schedule_key_deletion(key, pending_window_in_days=7)
        now[0] += timedelta(days=8)
        first.rotate_due()  # the deletion falls due on the other node
        _settle([first, second])
        assert first.store.kek(key) is None and second.store.kek(key) is None
        with pytest.raises(KMSError):
            second.decrypt(blob)
    finally:
        first.close()
        second.close()


def test_an_access_key_issued_on_one_node_authenticates_on_every_node(tmp_path: Path, cluster_url: str) -> None:
    """The secret travels in the batch like a KEK (never in a record), the
    status with the log: a node that joins later gets both in its snapshot."""
    first = _node(tmp_path / "n0", cluster_url, "n0")
    root = (tmp_path / "n0" / "root.key").read_bytes()
    second = _node(tmp_path / "n1", cluster_url, "n1", root=root)
    third = None
    try:
        alice = first.create_user("alice").arn
        issued = first.create_access_key(alice)
        key = issued.access_key_id
        _settle([first, second])
        principal, secret, active = second.held_access_key(key)
        assert (principal, secret, active) == (alice, issued.secret_access_key, True)
        second.update_access_key(alice, key, "Inactive")  # switched off on the other node
        _settle([first, second])
        assert first.held_access_key(key)[2] is False
        third = _node(tmp_path / "n2", cluster_url, "n2", root=root)  # joins from a snapshot
        _settle([first, second, third])
        assert third.held_access_key(key)[1] == issued.secret_access_key and third.held_access_key(key)[2] is False
        third.delete_access_key(alice, key)
        _settle([first, second, third])
        for kms in (first, second, third):
            assert kms.held_access_key(key) is None and kms.store.kek(f"iam/{key}") is None
        assert issued.secret_access_key.reveal() not in b"".join(r.body for r in first.store.raw_records())
    finally:
        for kms in (first, second, third):
            if kms is not None:
                kms.close()
    for name in ("n0", "n1", "n2"):
        assert _verified(tmp_path / name).ok


def test_a_user_deleted_on_one_node_loses_its_rights_on_every_node(tmp_path: Path, cluster_url: str) -> None:
    """DeleteUser's policy and grant rewrites are part of its batch: every
    node folds them, and a user made again on another node inherits nothing."""
    first = _node(tmp_path / "n0", cluster_url, "n0")
    root = (tmp_path / "n0" / "root.key").read_bytes()
    second = _node(tmp_path / "n1", cluster_url, "n1", root=root)
    try:
        alice = first.create_user("alice").arn
        admin = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{first.account}:root"},
                 "Action": "kms:*", "Resource": "*"}
        use = {"Effect": "Allow", "Principal": {"AWS": alice}, "Action": "kms:Encrypt", "Resource": "*"}
        key = first.create_key(policy=json.dumps({"Version": "2012-10-17", "Statement": [admin, use]})) \
            .key_metadata.key_id
        other = first.create_key().key_metadata.key_id
        first.create_grant(other, alice, ["Encrypt"])
        first.as_caller(alice).encrypt(key, b"x")
        _settle([first, second])
        second.delete_user("alice")
        _settle([first, second])
        named = json.loads(first.get_key_policy(key).policy)["Statement"][1]["Principal"]["AWS"]
        assert named.startswith("AIDA") and first.list_grants(other).grants[0].grantee_principal == named
        first.create_user("alice")  # the name is free on every node, and carries nothing
        _settle([first, second])
        for kms in (first, second):
            for key_id in (key, other):
                with pytest.raises(KMSError, match="AccessDeniedException"):
                    kms.as_caller(alice).encrypt(key_id, b"x")
    finally:
        first.close()
        second.close()
    for name in ("n0", "n1"):
        assert _verified(tmp_path / name).ok


def test_a_session_issued_on_one_node_authenticates_on_every_node(tmp_path: Path, cluster_url: str) -> None:
    """A session token is sealed under a key derived from the shared root
    key, so nothing about it is replicated but its record; its role deleted
    on another node ends it everywhere."""
    first = _node(tmp_path / "n0", cluster_url, "n0")
    root = (tmp_path / "n0" / "root.key").read_bytes()
    second = _node(tmp_path / "n1", cluster_url, "n1", root=root)
    try:
        alice = first.create_user("alice").arn
        trust = {"Effect": "Allow", "Principal": {"AWS": alice}, "Action": "sts:AssumeRole"}
        first.create_role("worker", json.dumps({"Version": "2012-10-17", "Statement": [trust]}))
        made = first.as_caller(alice).from_address("192.0.2.7", True) \
            .assume_role(f"arn:aws:iam::{first.account}:role/worker", "job")
        ident, token = made.credentials.access_key_id, made.credentials.session_token.reveal().decode()
        _settle([first, second])
        assert list(second.store.records())[-1].source == "192.0.2.7"  # where it came from, replicated
        for kms in (first, second):
            principal, secret, _, _ = kms.session_credentials(ident, token)
            assert (principal, secret) == (made.assumed_role_user.arn, made.credentials.secret_access_key)
        second.delete_role("worker")
        _settle([first, second])
        assert first.session_credentials(ident, token) is None and second.session_credentials(ident, token) is None
    finally:
        first.close()
        second.close()
    for name in ("n0", "n1"):
        assert _verified(tmp_path / name).ok


def _compact_past(cluster_url: str, writer: Any, key: str, seq: int) -> None:
    """Write through `writer` until etcd's tail starts after `seq` (a stopped
    node's position). An empty tail counts when the log is past it: the live
    nodes had applied every batch, and compaction deleted them all (a test
    read that as 'not yet' and failed when every poll found the tail empty)."""
    deadline = time.monotonic() + 45  # generous: a loaded 2-core machine compacts late, never early

    def compacted() -> bool:
        status = cluster_.status(cluster_.config(cluster_url, node="s"))
        first = status["Tail"]["FirstSeq"]
        return first > seq if first is not None else status["Head"]["Seq"] > seq
    while not compacted() and time.monotonic() < deadline:
        writer.encrypt(key, b"y")
        time.sleep(0.2)
    assert compacted(), "the tail was not compacted behind the live nodes"


def test_a_node_behind_the_compacted_tail_starts_over_from_a_snapshot(tmp_path: Path, cluster_url: str) -> None:
    fast = {"node_timeout": 1.0, "compact_interval": 0.2, "report_interval": 0.1}
    nodes = _three(tmp_path, cluster_url, **fast)
    key = nodes[0].create_key().key_metadata.key_id
    _settle(nodes)
    nodes[2].close()  # n2 goes away; the others carry on past its position
    for i in range(30):
        nodes[i % 2].encrypt(key, b"x")
    _compact_past(cluster_url, nodes[0], key, 1)
    # n2 comes back: its next batch is gone from etcd; it copies a snapshot of n0
    snapshot = nodes[0].store.copy_to(str(tmp_path / "snapshot"))
    back = keyledger.open(tmp_path / "n2", root_key=(tmp_path / "n0" / "root.key").read_bytes(),
                          cluster=cluster_.config(cluster_url, node="n2", source=snapshot, **fast))
    try:
        assert back.store.log.rebootstraps == 1
        back.encrypt(key, b"after")
        _settle([nodes[0], nodes[1], back])
        assert back.store.head().hash == nodes[0].store.head().hash
        signed = back.checkpoint()  # with its own key: the peer's checkpoints were dropped
        assert signed.size == back.store.head().seq
    finally:
        back.close()
        for kms in nodes[:2]:
            kms.close()
    assert _verified(tmp_path / "n2").ok


def test_join_from_a_peer_and_cosign(tmp_path: Path, cluster_url: str) -> None:
    nodes = _three(tmp_path, cluster_url, compact_interval=0)
    try:
        key = nodes[0].create_key().key_metadata.key_id
        nodes[1].encrypt(key, b"z")
        root = (tmp_path / "n0" / "root.key").read_bytes()
        cfg = cluster_.config(cluster_url, node="n3", source=nodes[1].store.copy_to(str(tmp_path / "snap")),
                              compact_interval=0)
        fourth = keyledger.open(tmp_path / "n3", create=True, cluster=cfg, root_key=root)
        nodes.append(fourth)
        assert fourth.store.head().seq > 0
        # the same tree head signed by two nodes: one note, two signatures
        _settle(nodes)
        a, b = nodes[0].checkpoint(), fourth.checkpoint()
        if a.size == b.size:
            note = cluster_.cosign([a.note, b.note])
            for kms in (nodes[0], fourth):
                meta = kms.store.meta()
                checkpoint_.verify(note, meta["origin"].decode(), meta["checkpoint_public"])
            assert nodes[0].store.meta()["checkpoint_public"] != fourth.store.meta()["checkpoint_public"]
    finally:
        for kms in nodes:
            kms.close()


def test_a_root_key_rotation_on_a_cluster(tmp_path: Path, cluster_url: str) -> None:
    """The new key staged on every node (one of them down), a rotation on
    one: the running node's KEKs are re-wrapped, the cluster's identity in
    etcd names the new key (a node joining with the old one is refused, one
    with the new one joins from a snapshot), and the node that was down
    follows the rotation when it starts, with its staged key."""
    import os
    first = _node(tmp_path / "n0", cluster_url, "n0")
    old_root = (tmp_path / "n0" / "root.key").read_bytes()
    second = _node(tmp_path / "n1", cluster_url, "n1", root=old_root)
    (tmp_path / "n1" / "root.key").write_bytes(old_root)  # n1 keeps its key in a file, like n0
    new_root = os.urandom(32)
    nodes = [first]
    try:
        key = first.create_key().key_metadata.key_id
        blob = first.encrypt(key, b"before").ciphertext_blob
        _settle([first, second])
        check = keyledger.stage_root_key(tmp_path / "n0", new_root)
        with pytest.raises(LedgerError, match=r"node\(s\) n1 have not staged this root key"):
            first.rotate_root_key()  # n1 is up and has no key staged: it could not follow
        second.close()  # n1 goes down (it says so): it does not hold the rotation back
        assert keyledger.stage_root_key(tmp_path / "n1", new_root) == check
        assert first.rotate_root_key() == 1
        assert (tmp_path / "n0" / "root.key").read_bytes() == new_root
        with pytest.raises(LedgerError, match="root key is not the cluster's"):
            _node(tmp_path / "n2", cluster_url, "n2", root=old_root)
        cfg = cluster_.config(cluster_url, node="n3", source=first.store.copy_to(str(tmp_path / "snap")),
                              compact_interval=0)
        third = keyledger.open(tmp_path / "n3", create=True, cluster=cfg, root_key=new_root)
        nodes.append(third)
        second = _node(tmp_path / "n1", cluster_url, "n1")  # under its old root.key, with the new one staged
        nodes.append(second)
        _settle(nodes)
        assert (tmp_path / "n1" / "root.key").read_bytes() == new_root
        for kms in nodes:
            assert kms.decrypt(blob).plaintext == b"before"
        after = second.encrypt(key, b"after").ciphertext_blob
        _settle(nodes)
        assert first.decrypt(after).plaintext == b"after" and third.decrypt(after).plaintext == b"after"
    finally:
        for kms in nodes:
            kms.close()
    for name in ("n0", "n1", "n3"):
        assert _verified(tmp_path / name).ok


@contextlib.contextmanager
def _serving(kms: Any) -> Iterator[str]:
    """`kms` (a node) answering HTTP on 127.0.0.1, as `keyledger serve --cluster` does: its URL."""
    from keyledger.server.app import KMSApp
    from keyledger.server.runner import bind, make_server
    app = KMSApp(kms, auth="none", sweep_interval=None, refusal_interval=0)
    sock = bind("127.0.0.1", 0)
    server = make_server(app, graceful_timeout=10)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the peer's server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.mark.parametrize("source", ["file", "url"])
def test_a_node_that_missed_a_rotation_and_the_tail_follows_from_a_snapshot(tmp_path: Path, cluster_url: str,
                                                                            source: str) -> None:
    """n2 is down through a root-key rotation and past the compacted tail: it
    starts over from a peer's snapshot, which is under the new key, and
    switches to the key staged in its home. From a peer's URL it must prove
    a root key to the peer: the old key in its root.key is refused (403),
    the staged one is let in."""
    import os
    fast = {"node_timeout": 1.0, "compact_interval": 0.2, "report_interval": 0.1}
    nodes = _three(tmp_path, cluster_url, **fast)
    old_root = (tmp_path / "n0" / "root.key").read_bytes()
    new_root = os.urandom(32)
    key = nodes[0].create_key().key_metadata.key_id
    blob = nodes[0].encrypt(key, b"before").ciphertext_blob
    _settle(nodes)
    seq = nodes[2].store.head().seq
    nodes[2].close()  # reports itself stopped: it does not hold the rotation back
    for name in ("n1", "n2"):  # (opened with the key given) every node keeps its key in a file, the next staged
        (tmp_path / name / "root.key").write_bytes(old_root)
    for name in ("n0", "n1", "n2"):
        check = keyledger.stage_root_key(tmp_path / name, new_root)
    back = None
    try:
        deadline = time.monotonic() + 15
        while nodes[0].store.log.staged_root_checks().get("n1") != check:  # n1's next report says so
            assert time.monotonic() < deadline
            time.sleep(0.05)
        nodes[0].rotate_root_key()
        _compact_past(cluster_url, nodes[0], key, seq)
        with contextlib.ExitStack() as stack:
            snapshot = nodes[0].store.copy_to(str(tmp_path / "snapshot")) if source == "file" \
                else stack.enter_context(_serving(nodes[0]))
            if source == "url":  # the peer refuses a token under the old key, which n2's root.key still holds
                with pytest.raises(LedgerError, match="403"):
                    node_.fetch_snapshot([snapshot], Secret(old_root), tmp_path / "refused")
            back = keyledger.open(tmp_path / "n2", cluster=cluster_.config(cluster_url, node="n2",
                                                                           source=snapshot, **fast))
        assert back.store.log.rebootstraps == 1
        assert (tmp_path / "n2" / "root.key").read_bytes() == new_root
        assert back.decrypt(blob).plaintext == b"before"
        _settle([nodes[0], nodes[1], back])
    finally:
        if back is not None:
            back.close()
        for kms in nodes[:2]:
            kms.close()
    assert _verified(tmp_path / "n2").ok
