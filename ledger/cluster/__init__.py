"""More than one machine: a ledger whose log is ordered by etcd, every node a
full LMDB replica (DESIGN.md sections 8 and 10).

    kms = keyledger.open(home, cluster="etcd://10.0.0.1:2379,10.0.0.2:2379", node="n1")
    kms = keyledger.open(home, node="n1", cluster="etcds://10.0.0.1:2379,10.0.0.2:2379/keyledger"
                         "?cacert=/etc/kl/ca.pem&cert=/etc/kl/n1.pem&key=/etc/kl/n1-key.pem")

etcd (Raft) orders and durably replicates the *tail* of the log: one etcd
transaction per group commit, conditional on the head key's revision, carries
the commit's records exactly as stored (`store.Batch`). Every node keeps the
whole log and every projection in its own LMDB and applies the batches in
order through the store's append path, re-checking the hash chain, so reads,
audit, forensics, replay and `audit verify` stay local. A write decides
against the node's local state and appends after the revision that state
came from; if another node appended first, etcd answers with the winner's
batches, the node applies them and decides again (`store.Store`,
`_replicate_round`). Two nodes can never both append seq N.

Secrets. The root key is provisioned to every node (root.key or
KEYLEDGER_ROOT_KEY, as for one node). A key's KEK (wrapped under the root key)
travels inside the batch that created it, so every node holds every KEK in
its own `keks` table; a deletion travels the same way and every node drops
the row when it applies the `KeyDeleted` record. etcd keeps no KEK
directory: only batches not yet applied everywhere. Crypto-shredding and
etcd: a deleted key's wrapped KEK stays in etcd's revision history until the
tail holding it is deleted and the history compacted (`compact`: every live
node does it every `compact_interval` seconds behind the slowest node), and
in etcd's bbolt file until `keyledger cluster compact --defragment`. As on
one node, `rotate-root-key` is what makes any lingering copy noise. On a
cluster the operator first stages the same new key on every node
(`keyledger.stage_root_key`, root.key.staged); the rotation is one batch of
re-wrapped KEKs and the new key's check, which each node checks its staged
key against before applying it (`Store.prepare_root`), then adopts; the
cluster's identity in etcd then names the new key (`Node.publish_root`).

New nodes (`join`) copy a consistent, compacted snapshot of a peer (its home
directory, or its `keyledger serve` URL, which answers only a peer holding
the root key) and then follow etcd; a node that fell behind the compacted
tail does the same by itself. Each node signs checkpoints with its own key
(same origin, same note body at the same tree size), so notes from two nodes
combine into one note with two signatures (`cosign`).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import msgspec

from keyledger.cluster.etcd import Etcd, EtcdError, EtcdUnavailable, TlsFiles, b64, parse_endpoints
from keyledger.cluster.log import EtcdLog, Head, Layout, decode_head
from keyledger.cluster.node import Node, peer_token
from keyledger.errors import LedgerError
from keyledger.secret import Secret
from keyledger.store import REVISION, LogGap, LogUnavailable, Store

if TYPE_CHECKING:
    from keyledger.service import KeyLedger

__all__ = ["ClusterConfig", "TlsFiles", "config", "attach", "join", "has_ledger", "status", "compact", "cosign", "Node",
           "peer_token"]

_IDENTITY = ("ledger_id", "origin", "region", "account", "root_check", "format")


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster's etcd is and who this node is.

    `url`: this node's `keyledger serve` address, published so peers can copy
    a snapshot from it. `source`: where this node copies one from (a peer's
    home directory or URL; default: the peers' published URLs). `timeout`:
    how long a commit waits for etcd. `node_timeout`: a node silent that long
    no longer holds the compacted tail back. `tls`: HTTPS to etcd
    (`etcds://`), None for plain HTTP (`etcd://`)."""

    endpoints: tuple[tuple[str, int], ...]
    node: str = field(default_factory=socket.gethostname)
    prefix: bytes = b"/keyledger/"
    url: str | None = None
    source: str | None = None
    timeout: float = 20.0
    etcd_timeout: float = 1.5
    node_timeout: float = 60.0
    compact_interval: float = 30.0
    report_interval: float = 1.0
    tls: TlsFiles | None = None


_TLS_PARAMETERS = ("cacert", "cert", "key")


def config(value: "str | ClusterConfig", *, node: str | None = None, **settings: Any) -> ClusterConfig:
    """A ClusterConfig from `etcd://host:port,host:port[/prefix]` (plain
    HTTP) or `etcds://host:port,...[/prefix][?cacert=CA&cert=CERT&key=KEY]`
    (TLS; CA default: the system's trust store), or one given."""
    if isinstance(value, ClusterConfig):
        out = value
    else:
        url = urlsplit(value)
        if url.scheme not in ("etcd", "etcds"):
            raise ValueError(f"a cluster is named etcd://host:port[,host:port...][/prefix] (etcds:// for TLS), "
                             f"not {value!r}")
        tls = _tls_files(url.scheme, url.query) if url.query or url.scheme == "etcds" else None
        endpoints = tuple(parse_endpoints(url.netloc, tls=tls is not None))
        prefix = (url.path.rstrip("/") or "/keyledger") + "/"
        out = ClusterConfig(endpoints, prefix=prefix.encode(), tls=tls)
    if node is not None:
        out = replace(out, node=node)
    if settings:
        out = replace(out, **settings)
    if not out.node or "/" in out.node:
        raise ValueError(f"a node name is a non-empty word without '/': {out.node!r}")
    return out


def _tls_files(scheme: str, query: str) -> TlsFiles:
    """The `cacert`, `cert` and `key` parameters of an `etcds://` URL."""
    pairs = parse_qsl(query, keep_blank_values=True)
    unknown = sorted({name for name, _ in pairs if name not in _TLS_PARAMETERS})
    if unknown:
        raise ValueError(f"unknown cluster URL parameter(s): {', '.join(unknown)} (known: "
                         f"{', '.join(_TLS_PARAMETERS)})")
    if scheme != "etcds":
        raise ValueError("cacert=, cert= and key= are TLS settings: name the cluster etcds://... to use TLS")
    given: dict[str, str] = {}
    for name, path in pairs:
        if name in given:
            raise ValueError(f"the cluster URL gives {name}= twice")
        if not path:
            raise ValueError(f"the cluster URL's {name}= is empty (a file path)")
        given[name] = path
    return TlsFiles(given.get("cacert"), given.get("cert"), given.get("key"))


def _etcd(cfg: ClusterConfig) -> Etcd:
    return Etcd(list(cfg.endpoints), timeout=cfg.etcd_timeout, tls=cfg.tls)


def _identity(cfg: ClusterConfig, etcd: Etcd) -> dict[str, str] | None:
    try:
        kv = etcd.get(Layout(cfg.prefix).meta)
    except EtcdUnavailable as exc:
        raise LedgerError(f"the cluster's etcd is unavailable: {exc}") from None
    return None if kv is None else dict(msgspec.json.decode(kv.value))


def has_ledger(cfg: ClusterConfig) -> bool:
    """Whether a node has made the cluster's ledger yet."""
    etcd = _etcd(cfg)
    try:
        return _identity(cfg, etcd) is not None
    finally:
        etcd.close()


def _check_identity(identity: dict[str, str], meta: dict[str, bytes], where: str, *, root: bool = True) -> None:
    """The ledger is the cluster's (and, with `root`, under the cluster's
    current root key). A node restarting after it missed a root-key rotation
    is the cluster's under an older key: it follows the rotation through the
    log, with the key staged (`root=False` when it attaches)."""
    for name in ("ledger_id", "root_check") if root else ("ledger_id",):
        ours = meta.get(name)
        mine = (ours.hex() if name == "root_check" else ours.decode()) if ours is not None else None
        if mine != identity.get(name):
            what = "root key" if name == "root_check" else "ledger"
            raise LedgerError(f"{where} is not a node of this cluster: its {what} is not the cluster's")


def join(home: Path, cfg: ClusterConfig, root: Secret, *, checkpoint_public: bytes | None) -> None:
    """Make `home` a new node of the cluster: from etcd alone while etcd still
    holds the log from seq 0, else from a peer's snapshot."""
    from keyledger import crypto, home as home_

    etcd = _etcd(cfg)
    try:
        identity = _identity(cfg, etcd)
        if identity is None:
            raise LedgerError("the cluster has no ledger yet: `keyledger init` its first node and serve it "
                              "with --cluster")
        if crypto.root_check(root).hex() != identity["root_check"]:
            raise LedgerError("this root key is not the cluster's (provision the cluster's root.key or "
                              "KEYLEDGER_ROOT_KEY)")
        layout = Layout(cfg.prefix)
        etcd_log = EtcdLog(etcd, layout, cfg.node)
        etcd_log.report({"applied_seq": 0, "state": "joining", "url": cfg.url})  # hold compaction back
        # a log from seq 0 replays every root-key rotation, each needing the key before it: after one,
        # a new node starts from a peer's snapshot, under the current key
        from_start = not identity.get("rotated") and (
            etcd.get(layout.log_key(0)) is not None or decode_head(etcd.get(layout.head))[0].seq == 0)
        home_.make_private_dir(home)
        store = Store(str(home), create=True)
        try:
            if from_start and cfg.source is None:
                store.init_meta({name: (bytes.fromhex(identity[name]) if name == "root_check"
                                        else identity[name].encode()) for name in _IDENTITY}
                                | ({"checkpoint_public": checkpoint_public} if checkpoint_public else {}))
                return
            node = Node(store, etcd_log, root=root, url=cfg.url, source=cfg.source,
                        checkpoint_public=checkpoint_public, node_timeout=cfg.node_timeout,
                        compact_interval=0, report_interval=cfg.report_interval)
            # a node started with its peers waits a while for one to report itself ready (a busy peer's
            # report can be a node timeout old), rather than failing at once for want of a peer
            patience = time.monotonic() + max(10.0, 3 * cfg.node_timeout)
            while cfg.source is None and not node.peer_urls() and time.monotonic() < patience:
                time.sleep(min(cfg.report_interval, 0.5))
            node.rebootstrap()
            _check_identity(identity, store.meta(), str(home))
        finally:
            store.close()
    finally:
        etcd.close()


def attach(kms: "KeyLedger", cfg: ClusterConfig, root: Secret, *, start: bool = True) -> Node:
    """Make the open ledger `kms` a node of the cluster: claim the cluster if
    it has no ledger yet (this ledger becomes it), else check it is the
    cluster's; catch up; start the node's upkeep thread."""
    store = kms.store
    meta = store.meta()
    etcd = _etcd(cfg)
    layout = Layout(cfg.prefix)
    etcd_log = EtcdLog(etcd, layout, cfg.node, timeout=cfg.timeout)
    try:
        identity = _identity(cfg, etcd)
        if identity is None:
            identity = _claim(store, meta, etcd, layout, cfg.node)
        _check_identity(identity, meta, str(store.path), root=False)
        head, revision = etcd_log.head()
        local = store.head()
        if head.seq == local.seq and head.hash == local.hash and store.applied_revision() < revision:
            store.set_meta({REVISION: revision.to_bytes(8, "big")})  # the head its maker wrote
    except BaseException:
        etcd.close()
        raise
    node = Node(store, etcd_log, root=lambda: kms._root, url=cfg.url, source=cfg.source,
                checkpoint_public=meta.get("checkpoint_public"), node_timeout=cfg.node_timeout,
                compact_interval=cfg.compact_interval, report_interval=cfg.report_interval,
                on_adopted=lambda: _adopted(kms), staged_root=kms._staged_root)
    store.on_applied = lambda records: _forget_deleted(kms, records)
    store.root_rotated = node.publish_root
    store.log = node
    try:
        node.catch_up()
    except LogGap:
        node.catch_up()  # re-bootstraps from a peer's snapshot first
    except LogUnavailable as exc:
        node.state, node.error = "unavailable", str(exc)
    if start:
        node.start()
    return node


def _claim(store: Store, meta: dict[str, bytes], etcd: Etcd, layout: Layout, node: str) -> dict[str, str]:
    """This ledger becomes the cluster's: its identity and head go to etcd in
    one transaction that only succeeds if no node did it first."""
    identity = {name: (meta[name].hex() if name == "root_check" else meta[name].decode())
                for name in _IDENTITY if name in meta}
    local = store.head()
    head = msgspec.msgpack.encode(Head(local.seq, local.hash, node, time.time()))
    ok, revision, responses = etcd.txn(
        [{"key": b64(layout.meta), "target": "CREATE", "result": "EQUAL", "create_revision": "0"},
         {"key": b64(layout.head), "target": "MOD", "result": "EQUAL", "mod_revision": "0"}],
        [{"request_put": {"key": b64(layout.meta), "value": b64(msgspec.json.encode(identity))}},
         {"request_put": {"key": b64(layout.head), "value": b64(head)}}],
        [{"request_range": {"key": b64(layout.meta)}}])
    if ok:
        store.set_meta({REVISION: revision.to_bytes(8, "big")})
        return identity
    found = _identity(ClusterConfig((), prefix=layout.prefix), etcd)
    if found is None:
        raise LedgerError("the cluster's etcd holds a log without a ledger identity")
    return found


def _forget_deleted(kms: "KeyLedger", records: list[Any]) -> None:
    from keyledger import events as ev
    for record in records:
        if isinstance(record.event, ev.KeyDeleted):  # another node shredded it: drop our cached copies
            kms._forget(record.event.key_id)


def _forget_all(kms: "KeyLedger") -> None:
    with kms._cache_lock:
        kms._keks.clear()
        kms._materials.clear()
        kms._private_keys.clear()


def _adopted(kms: "KeyLedger") -> None:
    """After a node took a peer's snapshot: nothing cached survives, and a
    snapshot made after a root-key rotation this node missed switches it to
    the staged key (or stops it, saying which key it needs)."""
    _forget_all(kms)
    check = kms.store.meta()["root_check"]
    kms._prepare_root(check)
    kms._adopt_root(check)


def status(cfg: ClusterConfig) -> dict[str, Any]:
    """The cluster as etcd sees it: head, nodes (applied seq, lag, head
    hash, state, age of their report), etcd members (leader, db size)."""
    etcd = _etcd(cfg)
    try:
        layout = Layout(cfg.prefix)
        etcd_log = EtcdLog(etcd, layout, cfg.node)
        identity = _identity(cfg, etcd)
        head, revision = etcd_log.head()
        now = time.time()
        nodes = []
        for name, r in sorted(etcd_log.reports().items()):
            seq = int(r.get("applied_seq", 0))
            nodes.append({"Name": name, "State": r.get("state"), "AppliedSeq": seq, "Lag": max(head.seq - seq, 0),
                          "AppliedRevision": r.get("applied_revision"), "HeadHash": r.get("head_hash"),
                          "Url": r.get("url"), "ReportAgeSeconds": round(now - float(r.get("time", 0)), 1),
                          "StagedRootKeyCheck": r.get("staged_root_check")})
        _, tail, _ = etcd.range(layout.log, layout.log_end)
        members = []
        for m in etcd.members():
            entry: dict[str, Any] = {"Name": m.get("name"), "Id": m.get("ID"), "ClientUrls": m.get("clientURLs", [])}
            for index, (host, port) in enumerate(cfg.endpoints):
                if any(u.endswith(f"//{host}:{port}") for u in m.get("clientURLs", [])):
                    try:
                        st = etcd.status(index)
                        entry.update({"Leader": st.get("leader") == st["header"].get("member_id"),
                                      "DbSize": int(st.get("dbSize", 0)), "Version": st.get("version")})
                    except EtcdError:
                        entry["Reachable"] = False
            members.append(entry)
        return {"Ledger": identity, "Head": {"Seq": head.seq, "Hash": head.hash.hex(), "Revision": revision,
                                             "Node": head.node},
                "Tail": {"Batches": len(tail), "FirstSeq": msgspec.msgpack.decode(tail[0].value)[2] if tail else None},
                "Nodes": nodes, "Members": members}
    finally:
        etcd.close()


def compact(cfg: ClusterConfig, *, defragment: bool = False) -> dict[str, Any]:
    """Delete the batches every live node has applied and compact etcd's
    history now; with `defragment`, also give the freed space back on every
    member (so a deleted key's wrapped KEK leaves etcd's file too)."""
    etcd = _etcd(cfg)
    try:
        done: dict[str, Any] = EtcdLog(etcd, Layout(cfg.prefix), cfg.node).compact(node_timeout=cfg.node_timeout)
        if defragment:
            for index in range(len(cfg.endpoints)):
                etcd.defragment(index)
            done["defragmented"] = len(cfg.endpoints)
        return done
    finally:
        etcd.close()


def cosign(notes: list[bytes]) -> bytes:
    """One checkpoint note carrying every signature of `notes`, which must
    be the same checkpoint (same origin, size, root and state) signed by
    different nodes: witness-style evidence that those nodes hold the same
    log (C2SP signed notes allow several signature lines)."""
    if not notes:
        raise ValueError("no notes to combine")
    bodies = {note.split(b"\n\n", 1)[0] for note in notes}
    if len(bodies) != 1:
        raise LedgerError("the notes are not the same checkpoint: they cannot be cosigned")
    lines: list[bytes] = []
    for note in notes:
        for line in note.split(b"\n\n", 1)[1].split(b"\n"):
            if line and line not in lines:
                lines.append(line)
    return bodies.pop() + b"\n\n" + b"\n".join(lines) + b"\n"
