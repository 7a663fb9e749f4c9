"""The server's per-request shortcuts (issue 13) give what the long ways gave.

Each shortcut is checked against the code it replaced (kept here as the
reference): the STS routing from the parsed headers, the region from the
verified credential scope, the log's time text formatted once per second,
a flat response encoded straight from its struct; and, over real sockets,
a response's head and body written in one go (a HEAD response too), the
keep-alive timeout and the request deadline on one timer per connection.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st

from keyledger import responses
from keyledger.server import guard, protocol, sigv4, sts
from keyledger.server.app import _headers, _iso, configure_logging
from keyledger.server.runner import bind
from keyledger.server.sigv4 import request_region
from serverkit import REGION, Server


# -- STS routing: one header scan --------------------------------------------------------

def _old_is_sts_request(scope: dict[str, Any]) -> bool:
    """The scan `sts.is_sts_request` did before the app parsed headers once
    (with the first Authorization header, the one SigV4 verifies, since the
    route was made to read that one rather than the last)."""
    if scope.get("type") != "http" or scope.get("path") != "/" or scope.get("method") != "POST":
        return False
    target = content_type = ""
    authorization = None
    for name, value in scope.get("headers", ()):
        if name == b"x-amz-target":
            target = value.decode("latin-1")
        elif name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1").lower()
    if target:
        return False
    return "/sts/aws4_request" in (authorization or "") or content_type.startswith("application/x-www-form-urlencoded")


_NAMES = st.sampled_from([b"x-amz-target", b"authorization", b"content-type", b"host", b"x-amz-date"])
_VALUES = st.sampled_from([b"", b"TrentService.Encrypt", b"AmazonSSM.GetParameter",
                           b"AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/sts/aws4_request, x",
                           b"AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/kms/aws4_request, x",
                           b"application/x-www-form-urlencoded; charset=utf-8", b"Application/X-WWW-Form-URLEncoded",
                           b"application/x-amz-json-1.1"])


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=6))
def test_sts_routing_from_parsed_headers_matches_the_header_scan(raw: list[tuple[bytes, bytes]]) -> None:
    scope = {"type": "http", "path": "/", "method": "POST", "headers": raw}
    assert sts.is_sts(_headers(scope)) == _old_is_sts_request(scope) == sts.is_sts_request(scope)


# -- the region, from the verified scope ---------------------------------------------------

@pytest.mark.parametrize("region", [REGION, "eu-west-3", "ap-southeast-2"])
def test_the_verified_scope_names_the_region_request_region_reads(server: Server, region: str) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    key = server.access["alice"]
    req = AWSRequest(method="POST", url=server.url + "/", data=b"{}",
                     headers={"Content-Type": protocol.CONTENT_TYPE, "X-Amz-Target": "TrentService.ListKeys"})
    SigV4Auth(Credentials(key.access_key_id, key.secret_access_key), "kms", region).add_auth(req)
    headers = {"host": [f"127.0.0.1:{server.port}"], **{k.lower(): [v] for k, v in req.headers.items()}}
    verifier = server.app.verifier
    assert verifier is not None
    principal, scoped = verifier.verify_scoped("POST", "/", "", headers, b"{}")
    assert (principal, scoped) == (key.principal, region) == (key.principal, request_region(headers))
    assert verifier.verify("POST", "/", "", headers, b"{}") == principal


# -- SigV4's canonical request and date ---------------------------------------------------

def _old_canonical_headers(headers: dict[str, list[str]], signed_headers: str) -> str:
    lines = []
    for name in signed_headers.split(";"):
        values = headers.get(name, [])
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
    return "\n".join(lines) + "\n"


_HEADER_VALUE = st.text(alphabet=st.sampled_from(list("ab1 \t\n\x0b\x0c\r\x85\xa0,;=/")), max_size=12)


@given(st.dictionaries(st.sampled_from(["host", "x-amz-date", "x-amz-target", "content-type"]),
                       st.lists(_HEADER_VALUE, max_size=3), max_size=4),
       st.lists(st.sampled_from(["host", "x-amz-date", "x-amz-target", "content-type", "missing"]), min_size=1,
                max_size=5))
def test_canonical_headers_are_what_the_general_join_gives(headers: dict[str, list[str]], signed: list[str]) -> None:
    signed_headers = ";".join(signed)
    creq = sigv4.canonical_request("POST", "/", "", headers, signed_headers, "h")
    assert creq == "\n".join(("POST", "/", "", _old_canonical_headers(headers, signed_headers), signed_headers, "h"))


def _old_amz_date(raw: str) -> datetime:
    if len(raw) != 16 or raw[8] != "T" or raw[15] != "Z" or not (raw[:8] + raw[9:15]).isdigit():
        raise ValueError(raw)
    return datetime(int(raw[:4]), int(raw[4:6]), int(raw[6:8]), int(raw[9:11]), int(raw[11:13]),
                    int(raw[13:15]), tzinfo=timezone.utc)


@given(st.one_of(st.datetimes(min_value=datetime(1, 1, 1)).map(lambda d: d.strftime("%Y%m%dT%H%M%SZ")),
                 st.text(alphabet="0123456789TZ\u0663", min_size=14, max_size=17)))
def test_the_cached_date_parse_agrees_with_the_parse(raw: str) -> None:
    for _ in range(2):  # the second time from the cache
        try:
            expected: Any = _old_amz_date(raw)
        except ValueError:
            expected = ValueError
        try:
            got: Any = sigv4._amz_date(raw)
        except ValueError:
            got = ValueError
        assert got == expected


# -- the log's time ---------------------------------------------------------------------------

@given(st.integers(min_value=0, max_value=(2**33) * 10**9))
def test_the_log_time_is_what_datetime_isoformat_gives(ns: int) -> None:
    when = datetime.fromtimestamp(ns // 10**9, timezone.utc).replace(microsecond=(ns // 1000) % 10**6)
    expected = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if when.year >= 1000:  # strftime's %Y pads no year below 1000 (none is now)
        assert _iso(ns) == expected


def test_the_access_log_line_starts_with_its_time(server: Server, kms: Any, key_id: str, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    configure_logging(str(path))
    try:
        before = time.time()
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
        server.raw(None, "", method="GET", path="/healthz", who=None)
    finally:
        configure_logging(None)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        entry = json.loads(line)
        assert list(entry)[:4] == ["time", "remote", "method", "path"]
        assert list(entry)[-3:] == ["status", "bytes_out", "ms"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
        logged = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert before - 1 <= logged.timestamp() <= time.time()


# -- responses ----------------------------------------------------------------------------------

def _old_encode(response: Any) -> bytes:
    if response is None:
        return b""
    return msgspec.json.encode(protocol._wire(msgspec.to_builtins(response, builtin_types=(datetime,))))


_TEXT = st.text(max_size=20)
_WHEN = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.just(timezone.utc))
_RESPONSES = st.one_of(
    st.builds(responses.EncryptResponse, st.binary(max_size=64), _TEXT, _TEXT),
    st.builds(responses.DecryptResponse, _TEXT, st.binary(max_size=64), _TEXT, st.none() | _TEXT),
    st.builds(responses.KeyMetadata, _TEXT, key_id=_TEXT, creation_date=st.none() | _WHEN,
              enabled=st.booleans(), deletion_date=st.none() | _WHEN),
    st.none(),
)


@settings(max_examples=300)
@given(_RESPONSES)
def test_a_response_encodes_as_the_general_path_encodes_it(response: Any) -> None:
    assert protocol.encode_response(response) == _old_encode(response)


# -- the connection: one write, one timer -------------------------------------------------------

async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    body = b'{"hello":"world"}'
    close = [(b"connection", b"close")] if scope["path"] == "/close" else []
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
                            *close]})
    await send({"type": "http.response.body", "body": body})


class _Uvicorn:
    """The guarded protocol under uvicorn, on a free loopback port, with a short keep-alive."""

    def __init__(self, *, keep_alive: int = 1, request_timeout: float = 30.0) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(
            _hello, lifespan="off", access_log=False, log_level="warning",
            http=guard.guarded(None, request_timeout=request_timeout), timeout_keep_alive=keep_alive,
            timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "did not start"
            time.sleep(0.01)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def plain() -> Any:
    started: list[_Uvicorn] = []

    def _start(**kwargs: Any) -> _Uvicorn:
        started.append(_Uvicorn(**kwargs))
        return started[-1]
    yield _start
    for s in started:
        s.stop()


def _response(sock: socket.socket) -> bytes:
    """One whole response (head and body, by content-length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_responses_on_a_kept_alive_connection_head_requests_and_close(plain: Any) -> None:
    srv = plain(keep_alive=5)
    with srv.connect() as sock:
        for _ in range(3):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _response(sock)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'{"hello":"world"}')
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")  # a head and no body: the head still goes out
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\n")
        assert b"content-length: 17" in data.lower()
        sock.sendall(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")  # the app closes: the whole response first
        answer = _response(sock)
        assert b"connection: close" in answer.lower() and answer.endswith(b'{"hello":"world"}')
        assert sock.recv(65536) == b""


def _read_to_end(sock: Any) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_pipelined_requests_are_answered_in_order(plain: Any) -> None:
    srv = plain(keep_alive=5)
    with srv.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" * 3 + b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
                     + b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
        data = _read_to_end(sock)
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 5
    assert data.count(b'{"hello":"world"}') == 4  # not after the HEAD


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(plain: Any) -> None:
    srv = plain(keep_alive=1)
    with srv.connect() as busy, srv.connect() as idle:
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(idle).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        for _ in range(8):  # busy: a request every 0.3 s for 2.4 s, so never idle for 1 s
            busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(busy).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)
        idle.settimeout(5)
        assert idle.recv(65536) == b""  # closed by the server
        assert time.monotonic() - started > 0.9
        busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # still open
        assert _response(busy).startswith(b"HTTP/1.1 200")


def test_the_request_deadline_holds_across_requests_on_one_connection(plain: Any) -> None:
    srv = plain(keep_alive=30, request_timeout=1.0)
    with srv.connect() as sock:
        for _ in range(4):  # complete requests within the deadline, 0.4 s apart: no timeout
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(0.4)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # half a head: 408 within about a second
        started = time.monotonic()
        sock.settimeout(10)
        data = _read_to_end(sock)
        assert data.startswith(b"HTTP/1.1 408 ")
        assert 0.5 < time.monotonic() - started < 8


def test_the_guard_protocol_keeps_uvicorns_hooks() -> None:
    """What the guard overrides of uvicorn's httptools protocol still exists there."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
    for name in ("on_response_complete", "_unset_keepalive_if_required", "timeout_keep_alive_handler",
                 "on_headers_complete", "on_message_complete", "data_received"):
        assert callable(getattr(HttpToolsProtocol, name))
    assert asyncio.iscoroutinefunction(RequestResponseCycle.send)
