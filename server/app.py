"""The ASGI application: AWS KMS over HTTP, every request into the ledger.

`POST /` with `X-Amz-Target: TrentService.<Operation>` runs the operation
for the principal its SigV4 signature proves (or the account root under
`auth="none"`); `GET /healthz` says whether the writer is up. Each KMS
request from an authenticated caller becomes exactly one library request
and so at least one record in the log, refusals included: a request refused
here (unknown operation, malformed JSON) is recorded with
`KeyLedger.record_denied`, and the request id of that record is the
response's `x-amzn-RequestId`. Refusals of callers who proved no identity
(no, bad or unknown SigV4 credentials, a body too large to check) are
counted instead and recorded once per interval as one summary per source
address and error code, and an address that keeps failing is throttled
(`server.refusals`). Any unexpected failure is recorded too (a
`RequestDenied` with `KMSInternalException`) and answered with that error
and no details; the details (exception type and stack, never its message,
which might hold request data) go to the server log.

Requests are planned on the event loop and committed in batches by one
writer thread (`server.committer`); a response leaves only once its batch
is durable. Lifespan startup starts the writer, the periodic rotation sweep
and the refusal summaries; shutdown (after the HTTP server has finished the
requests in flight) records the last summaries, commits what is queued and
stops them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
import uuid
from datetime import datetime, timezone
from collections.abc import Sequence
from typing import Any, cast

import msgspec

from keyledger import KeyLedger, operations
from keyledger.errors import KMSError, KMSInternalException
from keyledger.home import ensure_private_file
from keyledger.service import Planned
from keyledger.server import iam, protocol, ssm, sts
from keyledger.server import cluster_routes, forwarded
from keyledger.server.committer import GroupCommitter
from keyledger.server.protocol import RequestTooLargeException, ThrottlingException
from keyledger.server.refusals import RateLimiter, RefusalTally
from keyledger.server.sigv4 import Denied, Verifier, request_region

MAX_BODY = 256 * 1024
ANONYMOUS = "anonymous"
#: how often the counts of unauthenticated refusals become log records
REFUSAL_INTERVAL = 10.0
#: per source address: unauthenticated refusals allowed at once, and regained per second
REFUSAL_BURST = 100.0
REFUSAL_RATE = 10.0
INTERNAL_ERROR = "The request was rejected because an internal exception occurred."
#: the library methods that make an RSA or EC key pair before their write
#: (RSA_4096: up to a second; cryptography releases the GIL meanwhile), so
#: the server plans them in a worker thread and the loop keeps serving
PLANNED_OFF_LOOP = frozenset({"create_key", "get_parameters_for_import", "generate_data_key_pair",
                              "generate_data_key_pair_without_plaintext"})

log = logging.getLogger("keyledger.server")
access_log = logging.getLogger("keyledger.access")
_log_encoder = msgspec.json.Encoder()


def log_event(level: int, event: str, **fields: Any) -> None:
    """One structured (JSON) line on the server log."""
    if log.isEnabledFor(level):
        log.log(level, _log_encoder.encode({"time": _now_iso(), "level": logging.getLevelName(level),
                                            "event": event, **fields}).decode())


def _now_iso() -> str:
    return _iso(time.time_ns())


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text (one tuple: thread-safe)


def _iso(ns: int) -> str:
    """`ns` (time.time_ns()) as the access and server logs write times:
    ISO 8601, UTC, milliseconds (truncated, as `datetime.isoformat` does),
    "Z". The seconds' text is formatted once per second."""
    global _second
    seconds, rest = divmod(ns, 1_000_000_000)
    cached, text = _second
    if cached != seconds:
        text = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (seconds, text)
    return f"{text}.{rest // 1_000_000:03d}Z"


def _headers(scope: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        found = out.get(key)
        if found is None:
            out[key] = [value.decode("latin-1")]
        else:
            found.append(value.decode("latin-1"))
    return out


_CONTENT_TYPE = (b"content-type", protocol.CONTENT_TYPE.encode())


class _Disconnected(Exception):
    pass


class KMSApp:
    """The ASGI app. `auth` is "sigv4" (give `verifier`) or "none"."""

    def __init__(self, kms: KeyLedger, *, auth: str = "sigv4", verifier: Verifier | None = None,
                 sweep_interval: float | None = 3600.0, max_body: int = MAX_BODY,
                 refusal_interval: float = REFUSAL_INTERVAL, refusal_rate: float = REFUSAL_RATE,
                 refusal_burst: float = REFUSAL_BURST, trusted_proxies: Sequence[forwarded.Network] = ()) -> None:
        if auth not in ("sigv4", "none"):
            raise ValueError("auth must be 'sigv4' or 'none'")
        if auth == "sigv4" and verifier is None:
            raise ValueError("auth='sigv4' needs a verifier")
        self.kms = kms
        self.auth = auth
        self.verifier = verifier
        self.sweep_interval = sweep_interval
        self.max_body = max_body
        self.root = f"arn:aws:iam::{kms.account}:root"
        # proxies whose X-Forwarded-For / -Proto name the client (`server.forwarded`); none by default
        self.trusted_proxies = tuple(trusted_proxies)
        self._planned = kms.planned()
        self._callers: dict[tuple[str, str | None, protocol.Origin | None], KeyLedger] = {}
        self.committer = GroupCommitter(kms.store)
        self.node = cluster_routes.node_of(kms)  # a node of a cluster (keyledger serve --cluster), or None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        self.refusal_interval = refusal_interval
        self.refusals = RefusalTally()
        self.limiter = RateLimiter(refusal_rate, refusal_burst)
        self._flusher: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def startup(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.committer.start()
        if self.auth == "none":
            log_event(logging.WARNING, "auth-disabled", principal=self.root,
                      message="AUTHENTICATION IS DISABLED (--auth none): every caller acts as the account "
                              "root. Use this only for local development, never on a shared network.")
        if self.sweep_interval:
            self._sweeper = asyncio.create_task(self._sweep_forever(self.sweep_interval))
        if self.refusal_interval:
            self._flusher = asyncio.create_task(self._flush_forever(self.refusal_interval))

    async def shutdown(self) -> None:
        self._stopping = True
        for task in (self._sweeper, self._flusher):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._sweeper = self._flusher = None
        await self.flush_refusals()  # the last interval's refusals are on record before we stop
        await self.committer.stop()
        log_event(logging.INFO, "stopped", batches=self.committer.batches, requests=self.committer.requests)

    async def sweep(self) -> dict[str, int]:
        """Append the automatic rotations and deletions that fell due, then
        sign a checkpoint of the log (off the event loop: it re-reads the
        records since the last one)."""
        outcome = await self.committer.submit(self._planned.rotate_due())  # type: ignore[arg-type]
        counts: dict[str, int] = Planned.finish(outcome)
        if any(counts.values()):
            log_event(logging.INFO, "rotation-sweep", **counts)
        checkpoint = await asyncio.to_thread(self.kms.checkpoint)
        log_event(logging.INFO, "checkpoint", tree_size=checkpoint.size)
        return counts

    async def flush_refusals(self) -> int:
        """Record the unauthenticated refusals counted since the last flush
        (one event per source address and error code); how many refusals."""
        summaries = self.refusals.drain()
        if not summaries:
            return 0
        try:
            planned = self._plan_call(ANONYMOUS, "record_unauthenticated_refusals", summaries)
            Planned.finish(await self.committer.submit(planned))
        except Exception as exc:  # noqa: BLE001 - kept and tried again at the next flush
            self.refusals.restore(summaries)
            log_event(logging.ERROR, "refusal-summary-failed", error=type(exc).__name__)
            return 0
        total = sum(e.count for e in summaries)
        log_event(logging.INFO, "refusals-recorded", refusals=total, records=len(summaries))
        return total

    async def _flush_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush_refusals()

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed sweep is logged and retried next time
                log_event(logging.ERROR, "rotation-sweep-failed", traceback=traceback.format_exc())
            await asyncio.sleep(interval)

    def _caller(self, principal: str, region: str | None = None,
                origin: protocol.Origin | None = None) -> KeyLedger:
        """The planning ledger acting for `principal` in `region` (the SigV4
        scope's; None: the ledger's default region) on a request from
        `origin` (the client's address, and whether over TLS: aws:SourceIp,
        aws:SecureTransport)."""
        found = self._callers.get((principal, region, origin))
        if found is None:
            if len(self._callers) > 10_000:
                self._callers.clear()
            caller = self._planned.as_caller(principal)
            caller = caller.in_region(region) if region else caller
            found = self._callers[(principal, region, origin)] = \
                caller.from_address(*origin) if origin is not None else caller
        return found

    # -- ASGI ----------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.trusted_proxies:  # the client behind a trusted proxy, before anything reads the address
                forwarded.apply(scope, self.trusted_proxies)
            if scope["path"] == "/" and scope["method"] == "POST":  # the headers are read once, here
                headers = _headers(scope)
                if iam.is_iam(headers):  # IAM's query protocol (before STS, which takes any form POST)
                    await iam.handle(self, scope, receive, send, headers)
                elif sts.is_sts(headers):  # STS GetCallerIdentity, in STS's XML
                    await sts.handle(self, scope, receive, send, headers)
                else:
                    await self._http(scope, receive, send, headers)
            elif scope["path"] == cluster_routes.SNAPSHOT_PATH and self.node is not None:
                await cluster_routes.send_snapshot(self.node, scope, send)  # a peer node copies this ledger
            else:
                await self._http(scope, receive, send, None)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:  # noqa: BLE001
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any,
                    headers: dict[str, list[str]] | None) -> None:
        """A KMS or SSM request (`headers`, parsed, for POST /) or any other
        path: answered in JSON, with its access-log entry."""
        if self.committer.idle_before_start and not self._stopping:  # a server without lifespan
            await self.startup()
        logged = access_log.isEnabledFor(logging.INFO)  # off (or /dev/null): no time taken or formatted
        if logged:
            arrived, started = time.time_ns(), time.perf_counter()
        entry: dict[str, Any] = {"remote": (scope.get("client") or ("", 0))[0], "method": scope["method"],
                                 "path": scope["path"], "proxy": scope.get(forwarded.PROXY)}
        try:
            status, extra, body = await self._route(scope, receive, headers, entry)
        except _Disconnected:
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not reach the client as a traceback
            status, extra, body = await self._internal_error(exc, entry.get("operation") or "Unknown",
                                                              entry.get("principal") or ANONYMOUS, entry)
        if logged:  # before the response: a client never sees an unlogged answer
            entry["status"] = status
            entry["bytes_out"] = len(body)
            entry["ms"] = round((time.perf_counter() - started) * 1000, 3)
            access_log.info(_log_encoder.encode({"time": _iso(arrived),
                                                 **{k: v for k, v in entry.items() if v is not None}}).decode())
        await send({"type": "http.response.start", "status": status,
                    "headers": [_CONTENT_TYPE, (b"content-length", b"%d" % len(body)), *extra]})
        await send({"type": "http.response.body", "body": body})

    async def _route(self, scope: dict[str, Any], receive: Any, headers: dict[str, list[str]] | None,
                     entry: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method in ("GET", "HEAD"):
            # says nothing of the log (its length would tell anyone the traffic)
            ok = self.committer.running and not self._stopping
            state = self.node.state if self.node is not None else "ready"  # a cluster node catching up: not ready
            status = "ok" if ok and state == "ready" else (state if ok else "unavailable")
            return (200 if status == "ok" else 503), [], _log_encoder.encode({"status": status})
        if path != "/" or method != "POST":
            error = protocol.UnknownOperationException(f"No KMS operation at {method} {path[:100]}; "
                                                       "KMS requests are POST / with X-Amz-Target.")
            entry["error"] = error.code
            return (404 if path != "/" else 405), [], protocol.encode_error(error)
        if headers is None:  # POST / always comes with its headers parsed
            headers = _headers(scope)
        target = headers.get("x-amz-target", [None])[0]
        planner = ssm.plan if ssm.is_ssm_target(target) else None  # AmazonSSM.*: the parameter store
        name = ssm.operation_name(target) if planner else protocol.operation_name(target)
        entry["operation"] = name
        address = entry["remote"]
        if self.auth == "sigv4" and self.limiter.throttled(address):
            # refused unheard: no signature checked, the body left to the server to skip
            return self._unauthenticated(ThrottlingException("Rate exceeded"), address, name, entry)
        try:
            principal, planned, refusal = await (planner(self, scope, receive, headers, target, name, entry)
                                                 if planner else self._plan(scope, receive, headers, target, name,
                                                                            entry))
        except _Disconnected:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a bug in decoding: recorded, answered without details
            return await self._internal_error(exc, name, entry.get("principal") or ANONYMOUS, entry)
        entry["principal"] = principal
        if planned is None:  # an unauthenticated refusal: counted, recorded with the next summary
            assert refusal is not None
            self.limiter.charge(address)
            return self._unauthenticated(refusal, address, name, entry,
                                         close=isinstance(refusal, RequestTooLargeException))
        outcome = await self.committer.submit(planned)
        entry["request_id"] = planned.request_id
        extra = [(b"x-amzn-requestid", planned.request_id.encode())]
        try:
            response = Planned.finish(outcome)
        except KMSError as error:
            entry["error"] = error.code
            if error.http_status >= 500:
                log_event(logging.ERROR, "internal-error", request_id=planned.request_id, error=error.code,
                          message=error.message)
            return error.http_status, extra, protocol.encode_error(error)
        except Exception as exc:  # noqa: BLE001 - the work itself broke (a bug or a storage error)
            return await self._internal_error(exc, name, principal, entry)
        if refusal is not None:  # refused here, and the refusal is now on record
            entry["error"] = refusal.code
            if isinstance(refusal, RequestTooLargeException):
                extra.append((b"connection", b"close"))
            return refusal.http_status, extra, protocol.encode_error(refusal)
        return 200, extra, protocol.encode_response(response)

    def _unauthenticated(self, refusal: KMSError, address: str, name: str, entry: dict[str, Any], *,
                         close: bool = False) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Answer a refusal of a caller who proved no identity; it is
        counted, and on record with the next summary (its request id among
        the summary's samples while they last)."""
        request_id = str(uuid.uuid4())
        self.refusals.add(address, refusal.code, refusal.message, operation=name,
                          access_key_id=entry.get("access_key"), request_id=request_id)
        entry.update(principal=ANONYMOUS, request_id=request_id, error=refusal.code)
        extra = [(b"x-amzn-requestid", request_id.encode())]
        if close:
            extra.append((b"connection", b"close"))
        return refusal.http_status, extra, protocol.encode_error(refusal)

    async def _internal_error(self, exc: BaseException, name: str, principal: str,
                              entry: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """An unexpected failure: recorded as a `RequestDenied` with
        `KMSInternalException` (its request id answered), the stack on the
        server log, nothing of it to the client."""
        error = KMSInternalException(INTERNAL_ERROR)
        entry["error"] = error.code
        extra: list[tuple[bytes, bytes]] = []
        request_id = None
        try:
            planned = self._plan_call(principal, "record_denied", name, error)
            Planned.finish(await self.committer.submit(planned))
            request_id = planned.request_id
        except Exception as again:  # noqa: BLE001 - the log cannot take it either: the server log has it
            log_event(logging.ERROR, "internal-error-not-recorded", operation=name,
                      exception=_exception_name(again))
        if request_id is not None:
            entry["request_id"] = request_id
            extra.append((b"x-amzn-requestid", request_id.encode()))
        log_event(logging.ERROR, "internal-error", request_id=request_id, operation=name,
                  exception=_exception_name(exc), stack=_stack(exc))
        return error.http_status, extra, protocol.encode_error(error)

    async def _plan(self, scope: dict[str, Any], receive: Any, headers: dict[str, list[str]],
                    target: str | None, name: str,
                    entry: dict[str, Any]) -> tuple[str, Planned | None, KMSError | None]:
        """(principal, planned request, refusal): the operation; or the
        record of its refusal and the refusal to answer with; or, for a
        caller who proved no identity, no request and the refusal."""
        principal, region = ANONYMOUS, None
        try:
            principal, body, region = await self.authenticate(scope, receive, headers, entry)
            op = protocol.operation_for(target)
            document = protocol.decode_body(body)
            entry["key"] = protocol.key_hint(document)
            kwargs = operations.request_kwargs(op, document)
        except KMSError as refusal:
            if principal == ANONYMOUS:
                return principal, None, refusal
            return principal, self._plan_call(principal, "record_denied", name, refusal, region=region,
                                              origin=protocol.origin_of(scope)), refusal
        if op.method in PLANNED_OFF_LOOP:  # makes a key pair while planning: in a worker thread, not on the loop
            method = getattr(self._caller(principal, region, protocol.origin_of(scope)), op.method)
            return principal, cast(Planned, await asyncio.to_thread(method, **kwargs)), None
        return principal, self._plan_call(principal, op.method, region=region, origin=protocol.origin_of(scope),
                                          **kwargs), None

    async def authenticate(self, scope: dict[str, Any], receive: Any, headers: dict[str, list[str]],
                           entry: dict[str, Any], service_name: str = "kms") -> tuple[str, bytes, str | None]:
        """(principal, body, region): the body, read within the cap, who
        signed it for `service_name` (the account root in --auth none mode),
        and the request's region: its credential scope's (in --auth none mode
        too, unverified), else None for the default. Raises the refusal,
        before which the caller has proved no identity. The access log
        `entry` learns the size, the access key id claimed and the principal."""
        body = await self._read_body(receive, headers)
        entry["bytes_in"] = len(body)
        if self.auth == "none":
            principal, region = self.root, request_region(headers)
        else:
            assert self.verifier is not None
            claimed = Denied(None)
            try:  # the Authorization header parsed once: its verified scope names the region
                principal, region = self.verifier.verify_scoped(
                    scope["method"], scope.get("raw_path", b"/").decode("latin-1"),
                    scope.get("query_string", b"").decode("latin-1"), headers, body, claimed,
                    service_name=service_name)
            finally:
                entry["access_key"] = claimed.access_key_id
            scope[protocol.ACCESS_KEY] = claimed.access_key_id  # verified: the key the record names
            if claimed.token_issued is not None:
                scope[protocol.TOKEN_ISSUED] = claimed.token_issued
        entry["principal"] = principal
        return principal, body, region

    def _plan_call(self, principal: str, method: str, *args: Any, region: str | None = None,
                   origin: protocol.Origin | None = None, **kwargs: Any) -> Planned:
        """The request a library call makes on the planning ledger (its
        methods are typed by the responses that `Planned.finish` gives)."""
        return cast(Planned, getattr(self._caller(principal, region, origin), method)(*args, **kwargs))

    async def _read_body(self, receive: Any, headers: dict[str, list[str]]) -> bytes:
        declared = headers.get("content-length", ["0"])[0]
        if declared.isdigit() and int(declared) > self.max_body:
            raise RequestTooLargeException(f"The request body is larger than {self.max_body} bytes.")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise RequestTooLargeException(f"The request body is larger than {self.max_body} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _exception_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _stack(exc: BaseException) -> str:
    """Where it failed: file, line, function and source line of each frame,
    never the exception's message or any local value."""
    return "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))


def configure_logging(access_log_path: str | None = "-", level: int = logging.INFO) -> None:
    """JSON lines: the server log on stderr, the access log on stderr or a
    file (`None` turns it off)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    access_log.propagate = False
    if access_log_path is None or (access_log_path != "-" and os.path.exists(access_log_path)
                                   and os.path.realpath(access_log_path) == os.devnull):
        # off, or to /dev/null: no record is formatted for nothing
        access_log.handlers[:] = []
        access_log.setLevel(logging.CRITICAL + 1)
        return
    target: logging.Handler = logging.StreamHandler(sys.stderr) if access_log_path == "-" \
        else logging.FileHandler(ensure_private_file(access_log_path))  # 0600 whatever the umask
    target.setFormatter(logging.Formatter("%(message)s"))
    access_log.handlers[:] = [target]
    access_log.setLevel(logging.INFO)
