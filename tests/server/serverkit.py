"""The server tests' kit: a keyledger server on a free loopback port, on a
real ledger, and AWS clients pointed at it.

`Server` runs uvicorn in a background thread (the graceful-shutdown test
starts a real `serve` subprocess instead). Every boto3 client made here
checks each raw response against botocore's KMS output shape: members,
types, epoch-second timestamps, base64 blobs, and the error body form.
(A module of its own, not conftest, so that `from serverkit import ...`
cannot pick up another directory's conftest.)
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials

import keyledger
from keyledger import events as ev
from keyledger.server import credentials as creds
from keyledger.server.app import KMSApp
from keyledger.server.runner import bind, make_server
from keyledger.server.sigv4 import Verifier

REGION = "us-east-1"
ACCOUNT = "111122223333"
ALL_KMS = json.dumps({"Version": "2012-10-17",
                      "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})
_SERVICE_MODEL = botocore.session.get_session().get_service_model("kms")


class Server:
    """keyledger serving on 127.0.0.1:<free port> from a background thread."""

    def __init__(self, home: Path, *, auth: str = "sigv4", clock: Callable[[], datetime] | None = None,
                 sweep_interval: float | None = None, max_body: int | None = None,
                 users: tuple[str, ...] = ("alice", "bob"), **app_options: Any) -> None:
        self.home = home
        self.kms = keyledger.open(home, clock=clock, create=True)
        self.keys_file = home / creds.DEFAULT_FILE
        self.access: dict[str, creds.AccessKeyLine] = {}
        for name in users:
            arn = self.kms.create_user(name).arn
            entry = creds.new_access_key(arn, name)
            self.kms.record_access_key(arn, entry.access_key_id)
            creds.append(self.keys_file, entry)
            self.access[name] = entry
        if "alice" in users:  # alice may do anything in KMS; bob has no policy at all
            self.kms.put_principal_policy(self.access["alice"].principal, "kms-all", ALL_KMS)
        root = creds.new_access_key(f"arn:aws:iam::{ACCOUNT}:root")
        creds.append(self.keys_file, root)
        self.access["root"] = root
        keys = creds.KeySources(creds.Credentials(self.keys_file), creds.HeldKeys(self.kms))  # as `serve` has them
        verifier = Verifier(keys, self.kms.region, sessions=creds.Sessions(self.kms)) if auth == "sigv4" else None
        kwargs: dict[str, Any] = {"max_body": max_body} if max_body else {}
        kwargs.setdefault("refusal_interval", 0)  # tests flush the refusal summaries themselves
        kwargs.update(app_options)
        self.app = KMSApp(self.kms, auth=auth, verifier=verifier, sweep_interval=sweep_interval, **kwargs)
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.uvicorn = make_server(self.app, graceful_timeout=10)
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [self.sock]},
                                       name="keyledger-test-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.uvicorn.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(15)
        self.kms.close()

    def client(self, who: str = "alice", *, retries: int = 1, region: str = REGION, **kwargs: Any) -> Any:
        key = self.access[who]
        options = {"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key,
                   **kwargs}
        client = boto3.client("kms", endpoint_url=self.url, region_name=region,
                              config=Config(retries={"total_max_attempts": retries}), **options)
        client.meta.events.register("after-call.kms", _check_wire_shape)
        return client

    def flush(self) -> int:
        """Record the unauthenticated refusals counted so far (what the
        server's timer does every interval); how many there were."""
        assert self.app.loop is not None
        return asyncio.run_coroutine_threadsafe(self.app.flush_refusals(), self.app.loop).result(10)

    def summary_of(self, request_id: str, start: int = 0) -> ev.Record:
        """The refusal summary that counted an unauthenticated request (flushed first)."""
        self.flush()
        found = [r for r in self.records(start) if isinstance(r.event, ev.UnauthenticatedRequestsRefused)
                 and request_id in r.event.request_ids]
        assert len(found) == 1, found
        return found[0]

    def records(self, start: int = 0) -> list[ev.Record]:
        return list(self.kms.store.records(start))

    def head(self) -> int:
        return self.kms.store.head().seq

    def raw(self, target: str | None, body: bytes | str, *, who: str | None = "alice",
            headers: dict[str, str] | None = None, when: datetime | None = None, region: str = REGION,
            service: str = "kms", method: str = "POST", path: str = "/",
            tamper: Callable[[dict[str, str]], None] | None = None) -> tuple[int, dict[str, str], Any]:
        """A hand-made request, SigV4-signed as `who` (None: unsigned);
        returns (status, headers, parsed JSON body or raw bytes)."""
        data = body.encode() if isinstance(body, str) else body
        hdrs = {"Content-Type": "application/x-amz-json-1.1", **(headers or {})}
        if target is not None:
            hdrs["X-Amz-Target"] = target
        req = AWSRequest(method=method, url=self.url + path, data=data, headers=hdrs)
        if who is not None:
            key = self.access[who]
            signer = SigV4Auth(BotoCredentials(key.access_key_id, key.secret_access_key), service, region)
            if when is not None:
                from unittest import mock
                with mock.patch("botocore.auth.get_current_datetime",
                                lambda: when.astimezone(timezone.utc).replace(tzinfo=None)):
                    signer.add_auth(req)
            else:
                signer.add_auth(req)
        final = dict(req.headers.items())
        if tamper is not None:
            tamper(final)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=data, headers=final)
            resp = conn.getresponse()
            raw = resp.read()
            out_headers = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        if resp.status >= 400:
            _assert_error_body(parsed)
        return resp.status, out_headers, parsed


class Process:
    """`python -m keyledger.server serve ...` on a free port, its log read as it goes."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "keyledger.server", "serve", "--port", "0", *args],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self.listening = threading.Event()
        self.url = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.listening.wait(20):
            self.proc.kill()
            raise AssertionError("the server did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if '"event":"listening"' in line:
                self.url = json.loads(line)["url"]
                self.listening.set()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(30)
        self.reader.join(5)
        return code

    def events(self) -> list[dict[str, Any]]:
        """The server's own log events (the access log lines have no "event")."""
        return [e for e in (json.loads(line) for line in self.lines if line.startswith("{")) if "event" in e]

    def access(self) -> list[dict[str, Any]]:
        return [e for e in (json.loads(line) for line in self.lines if line.startswith("{")) if "event" not in e]


# -- shape checks -------------------------------------------------------------------

def assert_conforms(shape: Any, value: Any, path: str = "$") -> None:
    """`value` (parsed wire JSON) is exactly what botocore's model allows."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), f"{path}: a structure must be an object"
        unknown = set(value) - set(shape.members)
        assert not unknown, f"{path}: members not in the model: {sorted(unknown)}"
        for name in shape.required_members:
            assert name in value, f"{path}: required member {name} missing"
        for name, item in value.items():
            assert item is not None, f"{path}.{name}: null instead of absent"
            assert_conforms(shape.members[name], item, f"{path}.{name}")
    elif kind == "list":
        assert isinstance(value, list), f"{path}: not a list"
        for i, item in enumerate(value):
            assert_conforms(shape.member, item, f"{path}[{i}]")
    elif kind == "map":
        assert isinstance(value, dict), f"{path}: not a map"
        for k, item in value.items():
            assert isinstance(k, str)
            assert_conforms(shape.value, item, f"{path}.{k}")
    elif kind == "string":
        assert isinstance(value, str), f"{path}: not a string"
        if shape.name == "CustomerMasterKeySpec":
            # Deprecated, and its enum stops at SM2; AWS answers it equal to
            # KeySpec for newer specs too (recorded create-key output of an
            # ML_DSA_65 key), and so does keyledger
            shape = service_model().shape_for("KeySpec")
        if shape.enum:
            assert value in shape.enum, f"{path}: {value!r} not in the enum"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{path}: not a boolean"
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: not an integer"
    elif kind == "timestamp":  # the JSON protocol's timestamps are epoch seconds
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{path}: not epoch seconds"
        assert 1e9 < value < 1e11, f"{path}: {value} is not a plausible epoch-seconds time"
    elif kind == "blob":
        assert isinstance(value, str), f"{path}: a blob must be a base64 string"
        base64.b64decode(value, validate=True)
    else:
        raise AssertionError(f"{path}: unexpected shape type {kind}")


def _assert_error_body(parsed: Any) -> None:
    # AWS's body: {"__type", "message"}, or only "__type" for an error without a message
    assert isinstance(parsed, dict) and set(parsed) in ({"__type", "message"}, {"__type"}), parsed
    assert isinstance(parsed["__type"], str) and parsed.get("message", "x") != ""
    assert isinstance(parsed.get("message", ""), str) and "Traceback" not in parsed.get("message", "")


def _check_wire_shape(http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
    body = http_response.content
    if http_response.status_code >= 400:
        _assert_error_body(json.loads(body))
        return
    assert http_response.headers.get("x-amzn-requestid")
    if model.output_shape is None:
        assert body in (b"", b"{}")
        return
    assert_conforms(model.output_shape, json.loads(body))


def service_model() -> Any:
    return _SERVICE_MODEL
