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

TLS (`etcds://` cluster URLs, `TlsFiles`): every connection, the watch's
too, is HTTPS with one `ssl.SSLContext` per client that verifies each
member's certificate (host name or IP as given in the endpoint) against the
CA file or the system's trust store, and shows a client certificate for
etcd's `--client-cert-auth`. There is no fallback to plain HTTP. A handshake
that fails (a certificate that does not verify, one etcd refuses, a member
that does not speak TLS) is a setting to fix, not an outage to wait out: it
raises `EtcdTlsError`, an `EtcdError` the callers do not retry.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
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


class EtcdTlsError(EtcdError):
    """A TLS setting is wrong: a file cannot be read, or no member completed
    a handshake (certificate verification, client certificate, not TLS)."""


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


@dataclass(frozen=True)
class TlsFiles:
    """TLS to etcd: the CA file that verifies the members' certificates
    (None: the system's trust store) and this node's client certificate and
    its key for etcd's `--client-cert-auth` (both or neither). Paths only:
    safe to show."""

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate for etcd needs both cert= and key= (or neither)")


def tls_context(tls: TlsFiles) -> ssl.SSLContext:
    """The client's SSLContext: verifies the peer and its host name, TLS 1.2
    at least. LedgerError (EtcdTlsError) naming the file if one cannot be
    used; never the file's contents."""
    try:
        context = ssl.create_default_context(cafile=tls.cacert)
    except (OSError, ValueError) as exc:
        raise EtcdTlsError(f"cannot use the etcd CA file {tls.cacert}: {_reason(exc)}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert is not None:
        for what, path in (("certificate", tls.cert), ("key", tls.key)):  # which one, not just "PEM lib"
            try:
                with open(path or "", "rb"):
                    pass
            except OSError as exc:
                raise EtcdTlsError(f"cannot read the etcd client {what} file {path}: "
                                   f"{exc.strerror or _reason(exc)}") from None
        try:
            context.load_cert_chain(tls.cert, tls.key, password=_no_password)
        except (OSError, ValueError) as exc:
            reason = _reason(exc)
            if "PEM lib" in reason:  # OpenSSL's word for "not a PEM certificate (chain) and key"
                reason = "not a PEM certificate and its private key"
            raise EtcdTlsError(f"cannot use the etcd client certificate {tls.cert} with key {tls.key}: "
                               f"{reason}") from None
    return context


def _no_password() -> str:
    raise ValueError("the key file is encrypted (give an unencrypted key)")


def _reason(exc: BaseException) -> str:
    """One line about an ssl/OS error (OpenSSL's reason, not the repr)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# how a member hangs up without a word (a TLS 1.3 refusal can look like this)
_HUNG_UP = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError,
            http.client.RemoteDisconnected)


class _TlsFailure(str):
    """A member's failure that is a TLS setting to fix (its message)."""


def _tls_failure(exc: BaseException) -> bool:
    """A handshake that will fail again the same way (not a dropped line)."""
    return isinstance(exc, ssl.SSLError) and not isinstance(
        exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError,
              ssl.SSLWantWriteError))


def parse_endpoints(text: str, *, tls: bool = False) -> list[tuple[str, int]]:
    """`host:port,host:port` (or http:// URLs; https:// ones with `tls`) ->
    [(host, port)]."""
    scheme = "https" if tls else "http"
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "//" not in part:
            part = f"{scheme}://" + part
        url = urlsplit(part)
        if url.scheme != scheme or not url.hostname:
            raise ValueError(f"not an etcd client endpoint ({scheme}://host:port): {part}")
        out.append((url.hostname, url.port or 2379))
    if not out:
        raise ValueError("no etcd endpoints given")
    return out


class Etcd:
    """The client. `timeout`: seconds a call may take on one member. `tls`:
    HTTPS to every member (TlsFiles, or a context another client built);
    None: plain HTTP."""

    def __init__(self, endpoints: list[tuple[str, int]], *, timeout: float = 5.0,
                 tls: TlsFiles | ssl.SSLContext | None = None) -> None:
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.tls = tls_context(tls) if isinstance(tls, TlsFiles) else tls  # built once, fails early
        self._local = threading.local()
        self._lock = threading.Lock()
        self._current = 0
        self._watching: http.client.HTTPConnection | None = None

    def sibling(self, endpoints: list[tuple[str, int]] | None = None, *, timeout: float | None = None) -> Etcd:
        """Another client (its own connections) to the same members, or to
        `endpoints`, with the same TLS context."""
        return Etcd(self.endpoints if endpoints is None else endpoints,
                    timeout=self.timeout if timeout is None else timeout, tls=self.tls)

    # -- plumbing ---------------------------------------------------------------

    def _open(self, index: int, timeout: float) -> http.client.HTTPConnection:
        host, port = self.endpoints[index]
        if self.tls is None:
            return http.client.HTTPConnection(host, port, timeout=timeout)
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=self.tls)

    def _connection(self, index: int) -> http.client.HTTPConnection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(index)
        if conn is None:
            conn = conns[index] = self._open(index, self.timeout)
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
        tls_failure: str | None = None
        start = self._current
        for attempt in range(len(self.endpoints)):
            index = (start + attempt) % len(self.endpoints)
            where = "%s:%d" % self.endpoints[index]
            answer, status, failure, maybe = self._post(index, path, data)
            if isinstance(failure, _TlsFailure):
                tls_failure = tls_failure or failure  # the next member may be set up right
                last = failure
                continue
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
            if self.tls is None and _speaks_tls(status, message):
                tls_failure = tls_failure or self._plain_to_tls_message(index)
                last = tls_failure
                continue
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
        if tls_failure is not None and not sent:  # a setting to fix: waiting will not help
            raise EtcdTlsError(tls_failure)
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
                setting = None if reused else self._setting_at_fault(index, exc)
                if setting is not None:
                    return {}, 0, setting, False
                if reused and not fresh:
                    continue
                return {}, 0, type(exc).__name__, False
            try:
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop(index)
                # (TLS 1.3: etcd refuses a client certificate after the client's
                # side of the handshake is done, so it shows here; the request
                # was never read)
                setting = None if reused else self._setting_at_fault(index, exc)
                if setting is not None:
                    return {}, 0, setting, False
                return {}, 0, type(exc).__name__, True
            try:
                answer = json.loads(payload or b"{}")
            except ValueError:
                answer = {"error": payload[:200].decode("utf-8", "replace")}
            if response.will_close:
                self._drop(index)
            return dict(answer), response.status, None, False
        return {}, 0, "no connection", False

    def _setting_at_fault(self, index: int, exc: BaseException) -> _TlsFailure | None:
        """Whether a fresh connection failed because of a TLS setting (its
        message) or not (None: a member down or a line dropped). A member
        that hangs up says nothing: then a second connection asks it why,
        without sending a request (a TLS alert, or plain HTTP spoken)."""
        if _tls_failure(exc):
            return self._tls_message(index, exc)
        if not isinstance(exc, _HUNG_UP):
            return None
        host, port = self.endpoints[index]
        if self.tls is None:
            return self._plain_to_tls_message(index) if _answers_tls(host, port, self.timeout) else None
        try:
            with socket.create_connection((host, port), timeout=self.timeout) as sock:
                try:
                    tls = self.tls.wrap_socket(sock, server_hostname=host)
                except ssl.SSLEOFError:
                    if not _answers_http(host, port, self.timeout):
                        return None
                    return _TlsFailure(f"TLS to etcd {host}:{port} failed: it speaks plain HTTP, not TLS (name "
                                       f"the cluster etcd://..., or serve etcd's client port with --cert-file "
                                       f"and --key-file)")
                with tls:
                    tls.settimeout(min(self.timeout, 0.5))
                    tls.recv(1)  # etcd only answers requests: anything here is its refusal
        except ssl.SSLError as again:
            if _tls_failure(again):
                return self._tls_message(index, again)
        except OSError:
            pass
        return None

    def _plain_to_tls_message(self, index: int) -> _TlsFailure:
        host, port = self.endpoints[index]
        return _TlsFailure(f"etcd {host}:{port} speaks only TLS: name the cluster etcds://... (with ?cacert=...)")

    def _tls_message(self, index: int, exc: BaseException) -> _TlsFailure:
        host, port = self.endpoints[index]
        reason = _reason(exc)
        if "wrong version number" in reason or "record layer failure" in reason:
            reason += " (is that member serving TLS?)"
        elif "certificate required" in reason or "bad certificate" in reason or "unknown ca" in reason:
            reason += " (etcd refused this node's client certificate, or its lack of one: give cert= and " \
                      "key= signed by a CA in etcd's --trusted-ca-file)"
        return _TlsFailure(f"TLS to etcd {host}:{port} failed: {reason}")

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
        one = self.sibling([self.endpoints[endpoint]])
        try:
            return one.call("maintenance/status", {})
        finally:
            one.close()

    def defragment(self, endpoint: int) -> None:
        one = self.sibling([self.endpoints[endpoint]], timeout=max(self.timeout, 30.0))
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
        conn = self._open(index, timeout)
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
            if _tls_failure(exc):
                raise EtcdTlsError(self._tls_message(index, exc)) from None
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


def _answers_tls(host: str, port: int, timeout: float) -> bool:
    """Whether a member that hung up on plain HTTP speaks TLS: a handshake
    only, to word the error (no request is sent, nothing is trusted)."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                probe.wrap_socket(sock, server_hostname=host):
            return True
    except ssl.SSLError as exc:
        return "ALERT" in (exc.reason or "")  # it answered in TLS, refusing us
    except OSError:
        return False


def _answers_http(host: str, port: int, timeout: float) -> bool:
    """Whether a member that hung up on a TLS handshake speaks plain HTTP
    (a version request, to word the error)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"GET /version HTTP/1.0\r\n\r\n")
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def _speaks_tls(status: int, message: str) -> bool:
    """Go's answer to plain HTTP on a TLS port."""
    return status == 400 and "HTTPS server" in message


def _lines(response: http.client.HTTPResponse, deadline: float) -> Iterator[bytes]:
    while time.monotonic() < deadline:
        line = response.readline()
        if not line:
            return
        if line.strip():
            yield line
