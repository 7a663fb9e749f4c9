"""Connection limits below the ASGI app: header size, request time, connection count.

uvicorn (as of 0.54) leaves these open on its httptools protocol: the
parser buffers a header of any size (one 96 MB header cost 378 MB that
was never given back), nothing times out a connection that sends half a
request, and `limit_concurrency` answers 503 only once a request's headers
are complete, so idle and half-open connections are never refused. The
ASGI app cannot help: it is called only after the headers are in.

So `guarded(app, ...)` makes a subclass of uvicorn's httptools protocol
that counts the bytes of each request head as they arrive (before the
parser buffers them) and enforces:

- the request line at most `max_request_line` bytes (else 414) and the
  whole head at most `max_head` bytes (else 431), so memory stays bounded
  by that plus one socket read;
- a request complete within `request_timeout` seconds of its first byte
  (or of the connection, for one that sends nothing): else 408 if the head
  is incomplete, or the connection is closed if the body is (the app sees
  a disconnect and answers nothing). Idle keep-alive connections between
  requests stay under uvicorn's `timeout_keep_alive`;
- at most `max_connections` open connections: one more is answered 503
  at once and closed.

These refusals carry AWS-style JSON error bodies and are counted with the
unauthenticated refusals (`server.refusals`), by source address; those a
client causes (408, 414, 431) also take a token from its address's rate
limit. Why a protocol subclass rather than h11's
`h11_max_incomplete_event_size`: h11 answers an oversized head with a
generic 400, is pure Python (slower than httptools' C parser), and
still has no header timeout; the subclass keeps httptools and adds all three limits in
one place. Each connection keeps one timer for both its request deadline
and uvicorn's keep-alive timeout, re-armed only when it fires (a request
sets a deadline, it does not schedule and cancel a timer), and a
response's head leaves with its body in one socket write: on a busy
server both were per-request costs of the event loop (issue 13). TLS
handshakes happen before a connection reaches this class
(asyncio times them out after 60 s); on a graceful stop an idle TLS
connection is dropped rather than closed, since a close waits (up to 30 s)
for a close_notify that an SDK's pooled connection never sends.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

if TYPE_CHECKING:
    from keyledger.server.app import KMSApp

MAX_CONNECTIONS = 256
MAX_HEAD = 64 * 1024
MAX_REQUEST_LINE = 8 * 1024
REQUEST_TIMEOUT = 10.0

_REASONS = {408: "Request Timeout", 414: "URI Too Long", 431: "Request Header Fields Too Large",
            503: "Service Unavailable"}


class _Rejected(Exception):
    """Raised in a parser callback to stop parsing a request over a limit."""


def _too_large(limit: int) -> tuple[int, str, str]:
    return 431, "ValidationException", f"The request headers are larger than {limit} bytes."


def _response(status: int, code: str, message: str) -> bytes:
    body = json.dumps({"__type": code, "message": message}).encode()
    return (f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/x-amz-json-1.1\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above (set on the
    subclass `guarded` makes)."""

    kms_app: "KMSApp | None" = None
    max_connections = MAX_CONNECTIONS
    max_head = MAX_HEAD
    max_request_line = MAX_REQUEST_LINE
    request_timeout = REQUEST_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = b""
        self._in_head = True  # reading a request line and headers (or idle before one)
        self._head_bytes = 0  # bytes received since the head began (it may end inside the last chunk)
        self._head_size = 0  # the parsed request line and headers
        self._got_bytes = False
        self._rejection: tuple[int, str, str] | None = None
        self._deadline: float | None = None  # (loop time) the request in progress must be in by then
        self._idle_until: float | None = None  # (loop time) an idle keep-alive connection closes then
        self._timer: asyncio.TimerHandle | None = None  # the connection's one timer, for both
        self._timer_at = 0.0
        self._refused = False

    # -- connections -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._refuse_connection(transport, _peer(transport), 503, "ServiceUnavailableException",
                                    f"The server has {self.max_connections} connections open; try again.")
            return
        super().connection_made(transport)
        self._arm()

    def _refuse_connection(self, transport: asyncio.Transport, address: str, status: int, code: str,
                           message: str) -> None:
        self._refused = True
        self.transport = transport
        self._count(address, code, message, charge=False)
        transport.write(_response(status, code, message))
        transport.close()

    def shutdown(self) -> None:
        """A graceful stop: an idle TLS connection is dropped at once. (A
        close would wait for the client's close_notify, up to 30 s, and an
        SDK's idle pooled connection never sends one; nothing is lost.)"""
        if self.scheme == "https" and (self.cycle is None or self.cycle.response_complete):
            self.transport.abort()
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            return
        super().connection_lost(exc)

    # -- keep-alive (uvicorn's timeout, on the connection's timer) ----------------------

    def _unset_keepalive_if_required(self) -> None:
        self._idle_until = None  # busy again; the timer, if armed, finds that and lets it be

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive timeout as a time on the
        connection's timer instead of a timer of its own per response."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:  # a pipelined request is next
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_until = self.loop.time() + self.timeout_keep_alive
            self._wake_at(self._idle_until)

    # -- the request head --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the head counted before the parser buffers it."""
        if self._refused or self.transport.is_closing():
            return
        if self._in_head:
            self._got_bytes = True
            if self._deadline is None:
                self._arm()
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._rejection is not None:  # raised by a callback below
                self._reject(*self._rejection)
                return
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_bytes > self.max_head and not self.transport.is_closing():
            self._reject(*_too_large(self.max_head))  # all of it head, and no end yet

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_request_line:
            self._rejection = (414, "ValidationException",
                               f"The request line is longer than {self.max_request_line} bytes.")
            raise _Rejected
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.max_head:
            self._rejection = _too_large(self.max_head)
            raise _Rejected

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle:  # just made by uvicorn (its task has not run yet)
            cycle.__class__ = _OneWriteCycle

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._deadline = None  # in time: the timer, if armed, finds no deadline and lets it be
        self._in_head, self._head_bytes, self._head_size, self._got_bytes = True, 0, 0, False

    def _reject(self, status: int, code: str, message: str) -> None:
        self._disarm()
        self._count(_peer(self.transport), code, message, charge=True)
        self.transport.write(_response(status, code, message))
        self.transport.close()

    # -- the request deadline and the keep-alive timeout: one timer -----------------------

    def _arm(self) -> None:
        """A request begins (or a connection opens): it has `request_timeout` seconds."""
        self._deadline = self.loop.time() + self.request_timeout
        self._wake_at(self._deadline)

    def _wake_at(self, when: float) -> None:
        """Have the timer fire by `when` (a timer armed earlier stays: when
        it fires it re-arms for whatever is due next)."""
        if self._timer is None or when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = self.loop.call_at(when, self._tick)

    def _disarm(self) -> None:
        self._deadline = self._idle_until = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        now = self.loop.time()
        if self._deadline is not None and now >= self._deadline:
            self._expired()
        elif self._idle_until is not None and now >= self._idle_until:
            self._idle_until = None
            self.timeout_keep_alive_handler()
        else:
            due = [t for t in (self._deadline, self._idle_until) if t is not None]
            if due:
                self._wake_at(min(due))

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        message = f"The request was not received in full within {self.request_timeout:g} seconds."
        self._count(_peer(self.transport), "RequestTimeoutException", message, charge=True)
        if self._in_head and self._got_bytes:
            self.transport.write(_response(408, "RequestTimeoutException", message))
        # else nothing was sent (just close), or the body is late: the app,
        # waiting for it, sees a disconnect and answers nothing
        self.transport.close()

    def _count(self, address: str, code: str, message: str, *, charge: bool) -> None:
        app = self.kms_app
        if app is None:
            return
        app.refusals.add(address, code, message)
        if charge:
            app.limiter.charge(address)


class _OneWriteCycle(RequestResponseCycle):
    """uvicorn's request cycle, whose response head waits for the first
    body message and leaves with it in one socket write (one syscall, one
    packet) instead of two. uvicorn's `send` does all the work; while it
    runs, this cycle stands in for the transport, so its writes are joined
    here. A head never followed by a body (the app failed after starting)
    is dropped with the connection, which uvicorn closes."""

    _held = b""  # the response head, until the body goes out
    _holding = False  # uvicorn is writing the head: keep it
    _transport: asyncio.Transport

    async def send(self, message: Any) -> None:
        if self.flow.write_paused or self.disconnected:  # uvicorn's send will wait (or do nothing)
            if self._held and not self.disconnected:
                self._flush()
            await super().send(message)
            return
        if not (self._held or (message["type"] == "http.response.start" and not self.response_started)):
            await super().send(message)
            return
        # neither paused nor disconnected: uvicorn's send runs through without awaiting anything,
        # so nothing else can see this cycle's transport swapped meanwhile
        self._holding = not self._held
        self._transport, self.transport = self.transport, self  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = self._transport
            self._holding = False
        if self._held and self.response_complete:  # nothing was written with it (HEAD, say)
            self._flush()

    # -- the transport as uvicorn's send sees it --------------------------------------------

    def write(self, data: bytes) -> None:
        if self._holding:
            self._held = data
        else:
            held, self._held = self._held, b""
            self._transport.write(held + data)

    def _flush(self) -> None:
        held, self._held = self._held, b""
        if held:
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return ""


def guarded(app: "KMSApp | None" = None, *, max_connections: int = MAX_CONNECTIONS, max_head: int = MAX_HEAD,
            max_request_line: int = MAX_REQUEST_LINE,
            request_timeout: float = REQUEST_TIMEOUT) -> type[GuardedProtocol]:
    """The protocol class for uvicorn's `http=` option, with these limits."""
    return type("GuardedProtocol", (GuardedProtocol,), {
        "kms_app": app, "max_connections": max_connections, "max_head": max_head,
        "max_request_line": max_request_line, "request_timeout": request_timeout})
