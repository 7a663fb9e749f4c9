"""A small synchronous etcd v3 client over etcd's JSON gateway (`/v3/...`).

etcd 3.4 serves its gRPC API as JSON over HTTP/1.1 on the client port
(grpc-gateway): keys and values are base64, 64-bit integers are strings,
fields equal to their zero value are left out (a failed txn has no
"succeeded"). Only the standard library is used (`http.client`, `json`): the
store's writer thread calls etcd synchronously, and keyledger needs no
gRPC stack for a handful of calls (range, txn, compaction, watch, status,
member list).

Several endpoints may be given: a call goes to the current one and moves
on to the next when it cannot connect or the member answers that it has no
leader or timed out. Each thread has its own connections (`http.client` is
not thread-safe).

An error whose outcome is unknown (the request was sent, no answer came)
raises `EtcdUnavailable` with `sent=True`; a refusal etcd answered raises
`EtcdError`.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from keyledger.errors import LedgerError

# gRPC codes etcd's gateway answers with, that mean "try again / elsewhere"
_RETRYABLE = {4, 8, 10, 13, 14}  # deadline exceeded, exhausted, aborted, internal, unavailable
_RETRYABLE_TEXT = ("no leader", "timed out", "leader changed", "not capable", "stopped",
                   "too many requests", "unhealthy cluster")


class EtcdError(LedgerError):
    """etcd refused a request (its answer is in the message)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class EtcdUnavailable(EtcdError):
    """No member answered. `sent`: a request may have reached one."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Compacted(EtcdError):
    """A read or watch asked for a revision etcd has compacted away."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with `prefix`."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


@dataclass(frozen=True)
class KV:
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int


def _kvs(answer: dict[str, Any]) -> list[KV]:
    return [KV(unb64(kv.get("key")), unb64(kv.get("value")), int(kv.get("mod_revision", 0)),
               int(kv.get("create_revision", 0))) for kv in answer.get("kvs", [])]


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    """`host:port,host:port` (or http:// URLs) -> [(host, port)]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "//" not in part:
            part = "http://" + part
        url = urlsplit(part)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"not an etcd client endpoint (http://host:port): {part}")
        out.append((url.hostname, url.port or 2379))
    if not out:
        raise ValueError("no etcd endpoints given")
    return out


class Etcd:
    """The client. `timeout`: seconds a call may take on one member."""

    def __init__(self, endpoints: list[tuple[str, int]], *, timeout: float = 5.0) -> None:
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._current = 0
        self._watching: http.client.HTTPConnection | None = None

    # -- plumbing ---------------------------------------------------------------

    def _connection(self, index: int) -> http.client.HTTPConnection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(index)
        if conn is None:
            host, port = self.endpoints[index]
            conn = conns[index] = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return conn

    def _drop(self, index: int) -> None:
        conns = getattr(self._local, "conns", {})
        conn = conns.pop(index, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for index in list(getattr(self._local, "conns", {})):
            self._drop(index)

    def call(self, path: str, body: dict[str, Any], *, idempotent: bool = True) -> dict[str, Any]:
        """POST `body` to /v3/`path` on a member that answers. A request that
        is not idempotent is not re-sent once it may have arrived."""
        data = json.dumps(body).encode()
        sent = False
        last = "no endpoint"
        start = self._current
        for attempt in range(len(self.endpoints)):
            index = (start + attempt) % len(self.endpoints)
            where = "%s:%d" % self.endpoints[index]
            answer, status, failure, maybe = self._post(index, path, data)
            if failure is not None:
                last = f"{where}: {failure}"
                sent = sent or maybe
                if maybe and not idempotent:
                    break  # it may have been applied: the caller must find out
                continue
            if status == 200 and "error" not in answer:
                self._current = index
                return answer
            message = str(answer.get("message") or answer.get("error") or status)
            code = int(answer.get("code", 0) or 0)
            if "compacted" in message:
                raise Compacted(message, code)
            if code in _RETRYABLE or status >= 500 or any(t in message for t in _RETRYABLE_TEXT):
                last = f"{where}: {message}"
                # "request timed out" may still commit; "no leader" was never proposed
                sent = sent or "no leader" not in message
                if sent and not idempotent:
                    break
                continue
            raise EtcdError(f"etcd refused {path}: {message}", code)
        with self._lock:
            self._current = (start + 1) % len(self.endpoints)
        raise EtcdUnavailable(f"etcd did not answer ({last})", sent=sent)

    def _post(self, index: int, path: str, data: bytes) -> tuple[dict[str, Any], int, str | None, bool]:
        """(answer, status, failure, maybe-arrived) of one POST to one member."""
        for fresh in (False, True):
            conns = getattr(self._local, "conns", {})
            reused = index in conns
            conn = self._connection(index)
            try:
                conn.request("POST", "/v3/" + path, data, {"Content-Type": "application/json"})
            except (OSError, http.client.HTTPException) as exc:  # not sent in full: never applied
                self._drop(index)
                if reused and not fresh:
                    continue
                return {}, 0, type(exc).__name__, False
            try:
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop(index)
                return {}, 0, type(exc).__name__, True
            try:
                answer = json.loads(payload or b"{}")
            except ValueError:
                answer = {"error": payload[:200].decode("utf-8", "replace")}
            if response.will_close:
                self._drop(index)
            return dict(answer), response.status, None, False
        return {}, 0, "no connection", False

    # -- the calls ----------------------------------------------------------------

    def range(self, key: bytes, end: bytes | None = None, *, limit: int = 0,
              revision: int = 0) -> tuple[int, list[KV], bool]:
        """(header revision, kvs, more) for [key, end) (or the one key)."""
        body: dict[str, Any] = {"key": b64(key)}
        if end is not None:
            body["range_end"] = b64(end)
        if limit:
            body["limit"] = limit
        if revision:
            body["revision"] = str(revision)
        answer = self.call("kv/range", body)
        return int(answer["header"].get("revision", 0)), _kvs(answer), bool(answer.get("more"))

    def get(self, key: bytes) -> KV | None:
        found = self.range(key)[1]
        return found[0] if found else None

    def put(self, key: bytes, value: bytes) -> int:
        return int(self.call("kv/put", {"key": b64(key), "value": b64(value)})["header"]["revision"])

    def delete_range(self, key: bytes, end: bytes | None = None) -> int:
        body = {"key": b64(key)}
        if end is not None:
            body["range_end"] = b64(end)
        return int(self.call("kv/deleterange", body).get("deleted", 0))

    def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
            failure: list[dict[str, Any]]) -> tuple[bool, int, list[dict[str, Any]]]:
        """(succeeded, revision, responses). Not re-sent once it may have
        arrived: EtcdUnavailable(sent=True) means the outcome is unknown."""
        answer = self.call("kv/txn", {"compare": compare, "success": success, "failure": failure},
                           idempotent=False)
        return bool(answer.get("succeeded")), int(answer["header"].get("revision", 0)), answer.get("responses", [])

    def compact(self, revision: int) -> None:
        try:
            self.call("kv/compaction", {"revision": str(revision), "physical": True})
        except Compacted:
            pass  # someone compacted at least this far

    def status(self, endpoint: int) -> dict[str, Any]:
        """One member's status (version, dbSize, leader, raftIndex...)."""
        one = Etcd([self.endpoints[endpoint]], timeout=self.timeout)
        try:
            return one.call("maintenance/status", {})
        finally:
            one.close()

    def defragment(self, endpoint: int) -> None:
        one = Etcd([self.endpoints[endpoint]], timeout=max(self.timeout, 30.0))
        try:
            one.call("maintenance/defragment", {})
        finally:
            one.close()

    def members(self) -> list[dict[str, Any]]:
        return list(self.call("cluster/member/list", {}).get("members", []))

    def wait_for_change(self, key: bytes, after: int, timeout: float) -> bool:
        """Block until `key` changes at a revision past `after`, or `timeout`
        seconds pass (a watch over the gateway's streaming /v3/watch); True
        if it changed (or the watch was compacted: the caller re-reads)."""
        index = self._current
        host, port = self.endpoints[index]
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        deadline = time.monotonic() + timeout
        self._watching = conn
        try:
            body = {"create_request": {"key": b64(key), "start_revision": str(after + 1)}}
            conn.request("POST", "/v3/watch", json.dumps(body), {"Content-Type": "application/json"})
            response = conn.getresponse()
            if response.status != 200:
                raise EtcdUnavailable(f"etcd watch answered {response.status}", sent=False)
            for line in _lines(response, deadline):
                result = json.loads(line).get("result", {})
                if result.get("events") or int(result.get("compact_revision", 0) or 0):
                    return True
                if result.get("canceled"):
                    return True
            return False
        except (socket.timeout, TimeoutError):
            return False
        except (OSError, http.client.HTTPException, ValueError) as exc:
            with self._lock:
                if self._current == index:
                    self._current = (index + 1) % len(self.endpoints)
            raise EtcdUnavailable(f"etcd watch on {host}:{port} failed: {type(exc).__name__}", sent=False) from None
        finally:
            self._watching = None
            conn.close()

    def interrupt(self) -> None:
        """End a `wait_for_change` in another thread now."""
        conn = self._watching
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _lines(response: http.client.HTTPResponse, deadline: float) -> Iterator[bytes]:
    while time.monotonic() < deadline:
        line = response.readline()
        if not line:
            return
        if line.strip():
            yield line
