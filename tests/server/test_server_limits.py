"""Connection limits of a real `serve` process (server.guard): a huge header
is refused with bounded memory, half-sent requests are closed by the request
timeout, connections beyond --max-connections are refused, and what they
cost is counted in the refusal summaries. Only 127.0.0.1, bounded in
count and time."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import keyledger
from keyledger import events as ev
from keyledger.server import credentials as creds
from serverkit import ALL_KMS, Process


def make_home(home: Path) -> creds.AccessKeyLine:
    with keyledger.open(home, create=True) as kms:
        arn = kms.create_user("alice").arn
        kms.put_principal_policy(arn, "kms-all", ALL_KMS)
        entry = creds.new_access_key(arn, "alice")
        kms.record_access_key(arn, entry.access_key_id)
    creds.append(home / creds.DEFAULT_FILE, entry)
    return entry


def start(tmp_path: Path, *args: str) -> Process:
    home = tmp_path / "ledger"
    make_home(home)
    return Process("--home", str(home), "--access-log", "off", "--sweep-interval", "0", *args)


def port_of(server: Process) -> int:
    return int(server.url.rsplit(":", 1)[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def healthy(server: Process) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def read_all(sock: socket.socket, limit: float = 10.0) -> bytes:
    sock.settimeout(limit)
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (ConnectionResetError, socket.timeout):
        pass
    return b"".join(chunks)


def summaries(home: Path) -> dict[str, int]:
    with keyledger.open(home) as kms:
        out: dict[str, int] = {}
        for r in kms.store.records():
            if isinstance(r.event, ev.UnauthenticatedRequestsRefused):
                assert r.event.source_address == "127.0.0.1"
                out[r.event.error_code] = out.get(r.event.error_code, 0) + r.event.count
        return out


def stopped(server: Process) -> None:
    if server.proc.poll() is None:
        assert server.stop(signal.SIGTERM) == 0, "".join(server.lines)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's RSS from /proc")
def test_a_96_mb_header_is_refused_and_memory_stays_bounded(tmp_path: Path) -> None:
    server = start(tmp_path, "--unauthenticated-rate", "0")
    try:
        assert healthy(server)
        before = rss_kib(server.proc.pid)
        sock = socket.create_connection(("127.0.0.1", port_of(server)))
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        chunk, sent = b"a" * (1 << 20), 0
        try:
            while sent < 96 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused long before the end
        answer = read_all(sock)
        sock.close()
        assert sent < 96 << 20, "the server read the whole 96 MB header"
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body == {"__type": "ValidationException", "message": "The request headers are larger than 65536 bytes."}
        grown = rss_kib(server.proc.pid) - before
        assert grown < 16 * 1024, f"the server grew by {grown} KiB"
        # a request line past its cap: 414
        sock = socket.create_connection(("127.0.0.1", port_of(server)))
        sock.sendall(b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 414 ")
        sock.close()
        assert healthy(server)  # still serving
    finally:
        stopped(server)
    # both are on record, summarized (the graceful stop flushed them)
    assert summaries(tmp_path / "ledger") == {"ValidationException": 2}


def test_half_sent_requests_are_closed_by_the_request_timeout(tmp_path: Path) -> None:
    count = 500
    server = start(tmp_path, "--request-timeout", "1", "--max-connections", "1000")
    socks: list[socket.socket] = []
    try:
        for i in range(count):
            sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=10)
            # half a header, or (every tenth) a full head and half a body
            sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: TrentService.ListKeys\r\n"
                         + (b"Content-Length: 100\r\n\r\n{" if i % 10 == 0 else b"X-Slow: "))
            socks.append(sock)
        deadline = time.monotonic() + 20
        answers = []
        for sock in socks:
            answers.append(read_all(sock, max(0.1, deadline - time.monotonic())))
            sock.close()
        # a half head is answered 408 and closed; a half body is closed
        assert sum(a.startswith(b"HTTP/1.1 408 ") for a in answers) == count - count // 10
        assert all(a == b"" for a in answers[::10])
        assert time.monotonic() < deadline, "connections left open past the request timeout"
        time.sleep(0.3)  # a token back for 127.0.0.1 (the timeouts took them all)
        assert healthy(server)
    finally:
        for sock in socks:
            sock.close()
        stopped(server)
    assert summaries(tmp_path / "ledger").get("RequestTimeoutException") == count


def test_connections_beyond_the_cap_are_refused(tmp_path: Path) -> None:
    cap = 20
    server = start(tmp_path, "--max-connections", str(cap), "--request-timeout", "30")
    held: list[socket.socket] = []
    try:
        for _ in range(cap):
            held.append(socket.create_connection(("127.0.0.1", port_of(server)), timeout=10))
        time.sleep(0.3)  # accepted by the server's loop
        extra = socket.create_connection(("127.0.0.1", port_of(server)), timeout=10)
        answer = read_all(extra)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["__type"] == "ServiceUnavailableException"
        for sock in held:
            sock.close()
        held.clear()
        deadline = time.monotonic() + 10
        while True:  # once the server has seen them go, a new connection is served
            try:
                if healthy(server):
                    break
            except (http.client.HTTPException, ConnectionError):
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        for sock in held:
            sock.close()
        stopped(server)


def test_serve_with_a_mismatched_tls_key_fails_in_one_line(tmp_path: Path, tls_files: Any) -> None:
    from click.testing import CliRunner

    from keyledger.server.cli import serve
    home = tmp_path / "ledger"
    make_home(home)
    cert, _ = tls_files(tmp_path / "a")
    _, other_key = tls_files(tmp_path / "b")
    result = CliRunner().invoke(serve, ["--home", str(home), "--port", "0", "--tls-cert", str(cert),
                                        "--tls-key", str(other_key)])
    assert result.exit_code == 1 and "cannot use the TLS certificate" in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
