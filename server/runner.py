"""Running the app under uvicorn: binding, serving, graceful shutdown.

uvicorn stops on SIGTERM or SIGINT by closing the listening socket and idle
keep-alive connections, letting the requests in flight finish (up to
`graceful_timeout` seconds), then running the app's lifespan shutdown,
which commits whatever is still queued. Only after that does `run` return,
and the caller closes the ledger (a final sync in `relaxed` mode).
"""

from __future__ import annotations

import math
import signal
import socket
from typing import Any

import uvicorn

from keyledger.server import guard
from keyledger.server.app import KMSApp


def bind(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening socket (port 0 picks a free one: read it from getsockname)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def make_server(app: KMSApp, *, graceful_timeout: float | None = 30.0,
                max_connections: int = guard.MAX_CONNECTIONS, request_timeout: float = guard.REQUEST_TIMEOUT,
                max_head: int = guard.MAX_HEAD, max_request_line: int = guard.MAX_REQUEST_LINE,
                tls_cert: str | None = None, tls_key: str | None = None, **config: Any) -> uvicorn.Server:
    """A uvicorn server for the app: its own lifespan, no uvicorn access
    log (the app writes a structured one), no `server` header, no trust in
    proxy headers, the connection limits of `server.guard`, and TLS if a
    certificate (and its key, unless in the same PEM file) is given."""
    protocol = guard.guarded(app, max_connections=max_connections, request_timeout=request_timeout,
                             max_head=max_head, max_request_line=max_request_line)
    return uvicorn.Server(uvicorn.Config(
        app, lifespan="on", access_log=False, server_header=False, log_level="warning",
        http=protocol,  # uvicorn's httptools protocol, with header, time and connection limits
        proxy_headers=False,  # no X-Forwarded-For: the access log shows the real peer
        timeout_keep_alive=60,  # SDK connection pools reuse idle connections for about a minute
        ssl_certfile=tls_cert, ssl_keyfile=tls_key,
        timeout_graceful_shutdown=None if graceful_timeout is None else math.ceil(graceful_timeout), **config))


def run(app: KMSApp, sock: socket.socket, *, graceful_timeout: float | None = 30.0, **limits: Any) -> None:
    """Serve on `sock` in this (main) thread until SIGTERM or SIGINT, then
    shut down gracefully and return normally. `limits` are `make_server`'s
    (connections, timeouts, TLS)."""
    server = make_server(app, graceful_timeout=graceful_timeout, **limits)
    # uvicorn re-raises the signal that stopped it once it has shut down; a
    # no-op handler underneath makes a graceful stop an ordinary return (exit 0).
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise RuntimeError("the HTTP server did not start (see the log above)")
