"""keyledger's HTTP endpoint against moto's server mode, over loopback.

    python -m benchmarks.server_bench [--quick] [--json FILE]

`run(...)` is what the harness calls: it starts `keyledger serve` (SigV4,
a user with an IAM policy, the given durability) and `moto_server` as
subprocesses on 127.0.0.1, then drives both with the same client code, in
the same run, and returns one result per (server, client, operation,
concurrency): requests/s (median of the repeats) and p50 / p99 latency over
every request timed. keyledger's results carry ratios to moto's
(`ratios.moto`: requests/s keyledger / moto, > 1 means keyledger is faster;
`extra.p50_speedup` / `extra.p99_speedup`: moto's latency / keyledger's).

Two clients, each at 1, 16 and 64 concurrent requests:

- `boto3`: one boto3 client per thread, what an application sees (the
  client's own CPU cost included, which on a small machine caps it);
- `replay`: a lightweight load generator that signs each request once and
  replays the bytes over keep-alive connections from one asyncio loop, what
  the server itself can take. It is bounded by time and by request count
  and refuses any host but the loopback.

Encrypt sends 256 random bytes with an encryption context; Decrypt cycles
over ciphertexts made beforehand. The clients, keyledger and moto share the
machine's cores, as they do in the rest of the harness.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGION = "us-east-1"
CONTEXT = {"purpose": "benchmark"}
PLAINTEXT_BYTES = 256
CIPHERTEXTS = 64
LOOPBACK = ("127.0.0.1", "::1", "localhost")
OPS = ("encrypt", "decrypt")
CLIENTS = ("boto3", "replay")
CONCURRENCY = (1, 16, 64)
ALL_KMS = json.dumps({"Version": "2012-10-17",
                      "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})


@dataclass(frozen=True)
class Settings:
    warmup: float  # seconds, thrown away, before each cell
    duration: float  # seconds per repeat
    repeats: int  # requests/s is the median of the repeats; latencies pool them all
    max_requests: int  # per repeat: the load stops at this count even before `duration`


FULL = Settings(warmup=0.5, duration=2.0, repeats=3, max_requests=200_000)
QUICK = Settings(warmup=0.1, duration=0.3, repeats=1, max_requests=20_000)


# -- the servers ------------------------------------------------------------------

@dataclass
class Endpoint:
    name: str  # "keyledger" | "moto"
    host: str
    port: int
    access_key_id: str
    secret_access_key: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(host: str, port: int, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout} s")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def keyledger_server(root: str, durability: str) -> Iterator[Endpoint]:
    import ledger
    from server import credentials as creds

    home = Path(tempfile.mkdtemp(dir=root, prefix="kl-serve-"))
    try:
        with ledger.open(home) as kms:
            arn = kms.create_user("bench").arn
            kms.put_principal_policy(arn, "kms-all", ALL_KMS)
            entry = creds.new_access_key(arn, "bench")
            kms.record_access_key(arn, entry.access_key_id)
        creds.append(home / creds.DEFAULT_FILE, entry)
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--home", str(home), "--port", str(port),
             "--durability", durability, "--access-log", os.devnull, "--sweep-interval", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_listening("127.0.0.1", port, proc)
            yield Endpoint("keyledger", "127.0.0.1", port, entry.access_key_id, entry.secret_access_key)
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def moto_server() -> Iterator[Endpoint]:
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = _free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening("127.0.0.1", port, proc)
        yield Endpoint("moto", "127.0.0.1", port, "testing", "testing")
    finally:
        _stop(proc)


def _client(endpoint: Endpoint) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("kms", endpoint_url=endpoint.url, region_name=REGION,
                        aws_access_key_id=endpoint.access_key_id,
                        aws_secret_access_key=endpoint.secret_access_key,
                        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=2,
                                      connect_timeout=10, read_timeout=60))


@dataclass
class Fixture:
    """A key and ciphertexts on one server, for both clients."""

    key_arn: str
    plaintext: bytes
    blobs: list[bytes]


def prepare(endpoint: Endpoint) -> Fixture:
    client = _client(endpoint)
    meta = client.create_key(Description="server benchmark")["KeyMetadata"]
    plaintext = os.urandom(PLAINTEXT_BYTES)
    blobs = [client.encrypt(KeyId=meta["Arn"], Plaintext=plaintext, EncryptionContext=CONTEXT)["CiphertextBlob"]
             for _ in range(CIPHERTEXTS)]
    if client.decrypt(CiphertextBlob=blobs[0], EncryptionContext=CONTEXT)["Plaintext"] != plaintext:
        raise AssertionError(f"{endpoint.name} did not decrypt its own ciphertext")
    return Fixture(meta["Arn"], plaintext, blobs)


# -- one timed run ------------------------------------------------------------------

@dataclass
class Run:
    count: int
    errors: int
    seconds: float
    latencies: list[float]  # seconds, one per request

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def _boto3_run(endpoint: Endpoint, fx: Fixture, op: str, concurrency: int, seconds: float,
               max_requests: int) -> Run:
    clients = [_client(endpoint) for _ in range(concurrency)]
    per_thread = max(1, max_requests // concurrency)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    barrier = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def work(i: int) -> None:
        client, lat = clients[i], latencies[i]
        blobs = fx.blobs[i % len(fx.blobs):] + fx.blobs[:i % len(fx.blobs)]
        n = 0
        barrier.wait()
        clock = time.perf_counter
        while n < per_thread and clock() < deadline[0]:
            t0 = clock()
            try:
                if op == "encrypt":
                    client.encrypt(KeyId=fx.key_arn, Plaintext=fx.plaintext, EncryptionContext=CONTEXT)
                else:
                    client.decrypt(CiphertextBlob=blobs[n % len(blobs)], EncryptionContext=CONTEXT)
            except Exception:  # noqa: BLE001 - counted; the run goes on
                errors[i] += 1
            lat.append(clock() - t0)
            n += 1

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = [x for lat in latencies for x in lat]
    return Run(len(flat) - sum(errors), sum(errors), elapsed, flat)


def _signed_requests(endpoint: Endpoint, fx: Fixture, op: str) -> list[bytes]:
    """Whole HTTP/1.1 requests, SigV4-signed now (valid for 15 minutes)."""
    import base64

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    if op == "encrypt":
        bodies = [{"KeyId": fx.key_arn, "Plaintext": base64.b64encode(fx.plaintext).decode(),
                   "EncryptionContext": CONTEXT}]
    else:
        bodies = [{"CiphertextBlob": base64.b64encode(b).decode(), "EncryptionContext": CONTEXT} for b in fx.blobs]
    signer = SigV4Auth(Credentials(endpoint.access_key_id, endpoint.secret_access_key), "kms", REGION)
    out = []
    for body in bodies:
        data = json.dumps(body).encode()
        req = AWSRequest(method="POST", url=endpoint.url + "/", data=data, headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"TrentService.{op.capitalize()}"})
        signer.add_auth(req)
        head = "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
        out.append((f"POST / HTTP/1.1\r\nHost: {endpoint.host}:{endpoint.port}\r\n{head}"
                    f"Content-Length: {len(data)}\r\n\r\n").encode() + data)
    return out


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the connection stays open) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    length, keep = None, version == "HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            keep = value == "keep-alive" if version != "HTTP/1.1" else value != "close"
    if length is None:
        await reader.read()
        return int(status), False
    await reader.readexactly(length)
    return int(status), keep


async def _replay_async(endpoint: Endpoint, requests: list[bytes], concurrency: int, seconds: float,
                        max_requests: int) -> Run:
    if endpoint.host not in LOOPBACK:
        raise ValueError("the load generator only targets the loopback interface")
    latencies: list[float] = []
    errors = [0]
    budget = [max_requests]
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds

    async def connection(i: int) -> None:
        reader = writer = None
        k = i
        while budget[0] > 0 and clock() < deadline:
            budget[0] -= 1
            if writer is None:
                reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
            payload = requests[k % len(requests)]
            k += concurrency
            t0 = clock()
            try:
                writer.write(payload)
                status, keep = await _read_response(reader)  # type: ignore[arg-type]
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status, keep = 0, False
            latencies.append(clock() - t0)
            if status != 200:
                errors[0] += 1
            if not keep:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection(i) for i in range(concurrency)))
    elapsed = clock() - start
    return Run(len(latencies) - errors[0], errors[0], elapsed, latencies)


def _replay_run(endpoint: Endpoint, fx: Fixture, op: str, concurrency: int, seconds: float,
                max_requests: int) -> Run:
    requests = _signed_requests(endpoint, fx, op)
    try:
        import uvloop
        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(_replay_async(endpoint, requests, concurrency, seconds, max_requests))


_DRIVERS = {"boto3": _boto3_run, "replay": _replay_run}


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measure(endpoint: Endpoint, fx: Fixture, client: str, op: str, concurrency: int,
            settings: Settings) -> dict[str, Any]:
    """One result entry (the harness's results.json entry shape)."""
    drive = _DRIVERS[client]
    if settings.warmup:
        drive(endpoint, fx, op, concurrency, settings.warmup, settings.max_requests)
    runs = [drive(endpoint, fx, op, concurrency, settings.duration, settings.max_requests)
            for _ in range(settings.repeats)]
    rates = [r.rate for r in runs]
    latencies = sorted(x for r in runs for x in r.latencies)
    value = statistics.median(rates)
    group = "server" if endpoint.name == "keyledger" else "server-moto"
    return {
        "id": f"{group}.{client}.{op}.c{concurrency}", "group": group,
        "label": f"{endpoint.name} HTTP {op.capitalize()} ({client} client)", "threads": concurrency,
        "params": {"server": endpoint.name, "client": client, "op": op, "concurrency": concurrency,
                   "plaintext_bytes": PLAINTEXT_BYTES},
        "optional": endpoint.name == "moto", "unit": "requests/s", "value": value, "runs": rates,
        "spread": (max(rates) - min(rates)) / value if len(rates) > 1 and value else 0.0,
        "count": sum(r.count for r in runs), "seconds": sum(r.seconds for r in runs),
        "extra": {"p50_ms": _percentile(latencies, 0.50) * 1000, "p99_ms": _percentile(latencies, 0.99) * 1000,
                  "errors": sum(r.errors for r in runs)},
    }


def attach_ratios(results: list[dict[str, Any]]) -> None:
    """keyledger / moto for requests/s (`ratios.moto`), and moto / keyledger
    for latency (`extra.p50_speedup`, `extra.p99_speedup`): > 1 is keyledger
    ahead in all three."""
    by_id = {r["id"]: r for r in results}
    for r in results:
        if r["group"] != "server":
            continue
        base = by_id.get(r["id"].replace("server.", "server-moto.", 1))
        ok = base is not None and base["value"] > 0 and r["value"] > 0
        r["ratios"] = {"moto": {"baseline": base["id"] if base else None,
                                "ratio": r["value"] / base["value"] if ok else None}}
        if ok:
            for p in ("p50", "p99"):
                mine = r["extra"][f"{p}_ms"]
                r["extra"][f"{p}_speedup"] = base["extra"][f"{p}_ms"] / mine if mine else None


def run(*, quick: bool = False, settings: Settings | None = None, tmpdir: str | None = None,
        durability: str = "durable", clients: tuple[str, ...] = CLIENTS, ops: tuple[str, ...] = OPS,
        concurrency: tuple[int, ...] = CONCURRENCY,
        progress: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Every (server, client, op, concurrency) result, keyledger's with its
    ratios to moto. moto missing or failing leaves keyledger's results
    without ratios (its entries then carry "error")."""
    settings = settings or (QUICK if quick else FULL)
    results: list[dict[str, Any]] = []
    root = tempfile.mkdtemp(dir=tmpdir, prefix="kl-server-bench-")
    try:
        with contextlib.ExitStack() as stack:
            endpoints = [stack.enter_context(keyledger_server(root, durability))]
            try:
                endpoints.append(stack.enter_context(moto_server()))
            except Exception as exc:  # noqa: BLE001 - the baseline is optional
                results.append({"id": "server-moto", "group": "server-moto", "label": "moto_server",
                                "threads": 0, "params": {}, "optional": True,
                                "error": f"{type(exc).__name__}: {exc}"})
            fixtures = {e.name: prepare(e) for e in endpoints}
            for client in clients:
                for op in ops:
                    for n in concurrency:
                        for endpoint in endpoints:  # same client code, same run, back to back
                            entry = measure(endpoint, fixtures[endpoint.name], client, op, n, settings)
                            entry["params"]["durability"] = durability if endpoint.name == "keyledger" else None
                            results.append(entry)
                            if progress:
                                progress(entry)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    attach_ratios(results)
    return results


def render(results: list[dict[str, Any]]) -> str:
    rows = [("client", "op", "conc", "keyledger req/s", "moto req/s", "ratio", "kl p50 ms", "kl p99 ms",
             "moto p50 ms", "moto p99 ms")]
    by_id = {r["id"]: r for r in results}
    for r in results:
        if r["group"] != "server":
            continue
        p, base = r["params"], by_id.get(r["ratios"]["moto"]["baseline"] or "")
        ratio = r["ratios"]["moto"]["ratio"]
        rows.append((p["client"], p["op"], str(p["concurrency"]), f"{r['value']:,.0f}",
                     f"{base['value']:,.0f}" if base else "-", f"{ratio:.2f}x" if ratio else "-",
                     f"{r['extra']['p50_ms']:.2f}", f"{r['extra']['p99_ms']:.2f}",
                     f"{base['extra']['p50_ms']:.2f}" if base else "-",
                     f"{base['extra']['p99_ms']:.2f}" if base else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.server_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    p.add_argument("--durability", choices=("durable", "relaxed"), default="durable")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--tmpdir", help="where the server's ledger goes (durable numbers depend on its disk)")
    args = p.parse_args(argv)

    def show(entry: dict[str, Any]) -> None:
        print(f"  {entry['id']:<36} {entry['value']:>10,.0f} req/s  p50 {entry['extra']['p50_ms']:.2f} ms  "
              f"p99 {entry['extra']['p99_ms']:.2f} ms  errors {entry['extra']['errors']}", file=sys.stderr)

    results = run(quick=args.quick, tmpdir=args.tmpdir, durability=args.durability, progress=show)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 1 if any("error" in r and not r.get("optional") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
