"""The HTTP face of a cluster node (`keyledger serve --cluster`):
`GET /cluster/snapshot` streams a compacted copy of this node's ledger to a
peer that proves it holds the cluster's root key (a short-lived token,
`keyledger.cluster.peer_token`), so a new or lagging node can start from it.

The snapshot holds the whole log and the KEKs wrapped under the root key:
useless without the root key, but it tells the log's story. Serve the
cluster over TLS (or loopback) so nobody on the path reads or replays it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
from typing import Any

from keyledger.cluster.node import SNAPSHOT_PATH, TOKEN_HEADER, Node

log = logging.getLogger("keyledger.server")

__all__ = ["SNAPSHOT_PATH", "node_of", "send_snapshot"]


def node_of(kms: Any) -> Node | None:
    found = getattr(kms.store, "log", None)
    return found if isinstance(found, Node) else None


async def send_snapshot(node: Node, scope: dict[str, Any], send: Any) -> None:
    token = None
    for name, value in scope.get("headers", []):
        if name.decode("latin-1").lower() == TOKEN_HEADER:
            token = value.decode("latin-1")
    if scope.get("method") != "GET":
        await _answer(send, 405, {"__type": "UnsupportedOperationException", "message": "GET only"})
        return
    staging = tempfile.mkdtemp(prefix=".snapshot-", dir=node.store.path)
    try:
        try:
            path = await asyncio.to_thread(node.snapshot, token, staging)
        except PermissionError:
            await _answer(send, 403, {"__type": "AccessDeniedException",
                                      "message": "only a node of this cluster may copy its ledger"})
            return
        size = os.path.getsize(path)
        log.info(json.dumps({"event": "snapshot-served", "bytes": size, "remote": (scope.get("client") or ("",))[0]}))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(size).encode())]})
        with open(path, "rb") as f:
            while True:
                chunk = await asyncio.to_thread(f.read, 1 << 20)
                if not chunk:
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        shutil.rmtree(staging, ignore_errors=True)


async def _answer(send: Any, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/x-amz-json-1.1"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
