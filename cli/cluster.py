"""`keyledger cluster`: a ledger served by several nodes whose log etcd
orders (keyledger.cluster). Thin: parse, one library call, print.

    keyledger cluster status  --cluster etcd://127.0.0.1:2379
    keyledger cluster join    --cluster etcd://... --node-name n2 [--from URL|DIR]
    keyledger cluster compact --cluster etcd://... [--defragment]
    keyledger cluster rotate-root-key --cluster etcd://... --node-name n1
"""

from __future__ import annotations

from typing import Any

import click

import keyledger
from keyledger.cli.context import settings
from keyledger.cli.output import Failure, show
from keyledger.errors import LedgerError

CLUSTER_ENV = "KEYLEDGER_CLUSTER"

_cluster_option = click.option(
    "--cluster", "cluster_url", required=True, envvar=CLUSTER_ENV, metavar="etcd://HOST:PORT,...[/PREFIX]",
    help=f"The cluster's etcd endpoints and key prefix (env {CLUSTER_ENV}); etcds://... for TLS, with "
         "?cacert=CA.pem&cert=NODE.pem&key=NODE-KEY.pem.")


def _config(cluster_url: str, **settings_: Any) -> Any:
    from keyledger import cluster as cluster_
    try:
        return cluster_.config(cluster_url, **settings_)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cluster") from None


@click.group("cluster")
def cluster() -> None:
    """A ledger served by several `keyledger serve --cluster` nodes, every
    one a full replica, whose log etcd orders."""


@cluster.command("status")
@_cluster_option
def status(cluster_url: str) -> None:
    """The cluster as etcd sees it: the log's head, each node's applied seq,
    lag, state and head hash, the tail etcd still holds, and etcd's members
    (which one leads, database size)."""
    from keyledger import cluster as cluster_
    try:
        show(cluster_.status(_config(cluster_url, node="status")))
    except LedgerError as exc:
        raise Failure(str(exc)) from None


@cluster.command("join")
@_cluster_option
@click.option("--node-name", required=True, help="The new node's name.")
@click.option("--from", "source", default=None, metavar="URL|DIR",
              help="Copy the snapshot from this peer (its keyledger serve URL or home directory; default: "
                   "the peers' advertised URLs, or etcd alone while it still holds the whole log).")
def join(cluster_url: str, node_name: str, source: str | None) -> None:
    """Make --home a new node of the cluster (it needs the cluster's root key:
    root.key in the home, or KEYLEDGER_ROOT_KEY), then catch up. Serve it
    with `keyledger serve --cluster ... --node-name NAME`."""
    home = settings().ledger_home
    cfg = _config(cluster_url, node=node_name, source=source, compact_interval=0)
    try:
        with keyledger.open(home, create=True, cluster=cfg) as kms:
            head = kms.store.head()
            show({"Home": str(home), "Node": node_name, "AppliedSeq": head.seq, "HeadHash": head.hash.hex()})
    except LedgerError as exc:
        raise Failure(str(exc)) from None


@cluster.command("compact")
@_cluster_option
@click.option("--defragment", is_flag=True,
              help="Also defragment every etcd member, so freed pages (a deleted key's wrapped KEK among "
                   "them) leave etcd's file.")
@click.option("--node-timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              metavar="SECONDS", help="Nodes silent this long do not hold the tail back.")
def compact(cluster_url: str, defragment: bool, node_timeout: float) -> None:
    """Delete the log batches every live node has applied and compact etcd's
    history now (nodes also do it by themselves every --compact-interval)."""
    from keyledger import cluster as cluster_
    try:
        done = cluster_.compact(_config(cluster_url, node="compact", node_timeout=node_timeout),
                                defragment=defragment)
    except LedgerError as exc:
        raise Failure(str(exc)) from None
    show({"DeletedBatches": done.get("deleted", 0), "CompactedRevision": done.get("revision", 0),
          "Floor": done.get("floor"), "Defragmented": done.get("defragmented", 0)})


@cluster.command("rotate-root-key")
@_cluster_option
@click.option("--node-name", required=True, help="The node whose home --home is (its server stopped).")
def rotate_root_key(cluster_url: str, node_name: str) -> None:
    """Switch every node of the cluster to the root key staged on each
    (`keyledger stage-root-key`, the same key everywhere): the KEKs are
    re-wrapped under it in one batch of the log, and each node checks its
    staged key against the batch before applying it, then makes it its
    root.key; the old key is gone. Run it on one node's home while that
    node's server is stopped (start it again afterwards); a node that has
    no matching key staged stops applying until it has. Account root only."""
    home = settings().ledger_home
    cfg = _config(cluster_url, node=node_name)
    try:
        with keyledger.open(home, cluster=cfg) as kms:
            count = kms.rotate_root_key()
            check = kms.store.meta()["root_check"].hex()
    except LedgerError as exc:
        raise Failure(str(exc)) from None
    show({"KeksRewrapped": count, "RootKeyCheck": check})


COMMANDS = [cluster]
