"""A cluster of `keyledger serve --cluster` nodes on 3 etcd members (issue 15),
against one plain durable `keyledger serve`, in the same run, on loopback.

    python -m benchmarks.cluster_bench [--quick] [--json FILE]

Cells (ids `cluster.<setup>.encrypt.c<n>`): durable Encrypt requests/s and
p50/p99 through boto3 clients, `n` concurrent, spread over the nodes:

- `single`: one `keyledger serve` (durable), no etcd: the baseline;
- `n1`: one cluster node (every commit also one etcd transaction);
- `n3`: three cluster nodes (each applies every other node's batches too).

Ratios are to `single` (`ratios.single`, < 1 is the cluster's cost; on a
2-core machine that also runs 3 etcd members and the clients, the cluster
cannot be faster). `cluster.failover`: seconds from SIGKILL of the etcd
leader to the next acknowledged Encrypt (etcd's default heartbeat 100 ms and
election timeout 1 s), median of the repeats.

Skipped (recorded, not failed) when etcd is not installed. Everything
listens on 127.0.0.1 only; every run is bounded by time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
from etcdkit import EtcdCluster, etcd_binary, free_ports  # noqa: E402

ALL_KMS = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})
PLAINTEXT_BYTES = 256


@dataclass(frozen=True)
class Settings:
    duration: float
    repeats: int
    concurrency: tuple[int, ...]
    failovers: int


FULL = Settings(duration=3.0, repeats=2, concurrency=(1, 16), failovers=3)
QUICK = Settings(duration=0.4, repeats=1, concurrency=(4,), failovers=1)


class Nodes:
    """keyledger serve processes (a cluster of `count`, or one plain server)."""

    def __init__(self, root: Path, count: int, cluster: str | None) -> None:
        import keyledger

        self.root, self.procs = root, []
        homes = [root / f"n{i}" for i in range(count)]
        with keyledger.open(homes[0], create=True) as kms:
            alice = kms.create_user("alice").arn
            kms.put_principal_policy(alice, "kms-all", ALL_KMS)
            issued = kms.create_access_key(alice)  # held by the ledger: every node gets it with the snapshot
            self.access = (issued.access_key_id, issued.secret_access_key.reveal().decode())
        for home in homes[1:]:
            home.mkdir(mode=0o700)
            shutil.copy(homes[0] / "root.key", home / "root.key")
            os.chmod(home / "root.key", 0o600)
        self.ports = free_ports(count)
        self.urls = [f"http://127.0.0.1:{p}" for p in self.ports]
        for i, home in enumerate(homes):
            args = [sys.executable, "-m", "keyledger.server", "serve", "--home", str(home), "--port",
                    str(self.ports[i]), "--access-log", "off", "--sweep-interval", "0"]
            if cluster is not None:
                args += ["--cluster", cluster, "--node-name", f"n{i}"]
            log = open(root / f"n{i}.log", "ab")
            self.procs.append(subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL))
            log.close()
            self._wait(i)

    def _wait(self, i: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.ports[i], timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            if self.procs[i].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"node {i} did not become ready: " + (self.root / f"n{i}.log").read_text()[-2000:])

    def client(self, i: int) -> Any:
        import boto3
        from botocore.config import Config
        return boto3.client("kms", endpoint_url=self.urls[i % len(self.urls)], region_name="us-east-1",
                            aws_access_key_id=self.access[0], aws_secret_access_key=self.access[1],
                            config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=30))

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _load(nodes: Nodes, key: str, concurrency: int, seconds: float) -> tuple[int, int, float, list[float]]:
    clients = [nodes.client(i) for i in range(concurrency)]
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    deadline = [0.0]
    barrier = threading.Barrier(concurrency + 1)

    def work(i: int) -> None:
        plaintext = os.urandom(PLAINTEXT_BYTES)
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            t0 = time.perf_counter()
            try:
                clients[i].encrypt(KeyId=key, Plaintext=plaintext)
            except Exception:  # noqa: BLE001 - counted
                errors[i] += 1
                continue
            latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - start
    flat = sorted(x for lat in latencies for x in lat)
    return len(flat), sum(errors), elapsed, flat


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def _measure(nodes: Nodes, setup: str, label: str, settings: Settings) -> list[dict[str, Any]]:
    key = nodes.client(0).create_key(Description="cluster benchmark")["KeyMetadata"]["KeyId"]
    out = []
    for c in settings.concurrency:
        _load(nodes, key, c, min(0.3, settings.duration))  # warm up
        runs = [_load(nodes, key, c, settings.duration) for _ in range(settings.repeats)]
        rates = [count / elapsed for count, _, elapsed, _ in runs]
        lat = sorted(x for *_, flat in runs for x in flat)
        errors = sum(e for _, e, _, _ in runs)
        entry = {"id": f"cluster.{setup}.encrypt.c{c}", "group": "cluster", "label": label, "threads": c,
                 "unit": "requests/s", "value": statistics.median(rates), "runs": rates,
                 "params": {"setup": setup, "op": "encrypt", "concurrency": c, "durability": "durable",
                            "plaintext_bytes": PLAINTEXT_BYTES},
                 "extra": {"p50_ms": _pct(lat, 0.5) * 1000, "p99_ms": _pct(lat, 0.99) * 1000, "errors": errors}}
        if errors:
            entry["error"] = f"{errors} requests failed"
        out.append(entry)
    return out


def _failover(nodes: Nodes, etcd: EtcdCluster, repeats: int) -> dict[str, Any]:
    """Seconds from SIGKILL of etcd's leader to the next acknowledged Encrypt."""
    key = nodes.client(0).create_key(Description="failover")["KeyMetadata"]["KeyId"]
    client = nodes.client(0)
    times = []
    for _ in range(repeats):
        client.encrypt(KeyId=key, Plaintext=b"before")
        leader = etcd.leader()
        if leader is None:
            raise RuntimeError("etcd has no leader")
        killed = time.perf_counter()
        etcd.kill(leader)
        while True:
            try:
                client.encrypt(KeyId=key, Plaintext=b"after")
                break
            except Exception:  # noqa: BLE001 - refused while etcd elects: try again
                if time.perf_counter() - killed > 60:
                    raise
                time.sleep(0.01)
        times.append(time.perf_counter() - killed)
        etcd.restart(leader)
        etcd.wait_ready()
        time.sleep(1.0)  # let the member rejoin before the next kill
    return {"id": "cluster.failover", "group": "cluster", "threads": 1, "unit": "s",
            "label": "failover: etcd leader SIGKILLed -> next acknowledged Encrypt (3 nodes, etcd defaults)",
            "value": statistics.median(times), "runs": times, "params": {"repeats": repeats},
            "lower_is_better": True}


def run(quick: bool = False, *, tmpdir: str | None = None, progress: Any = None) -> dict[str, Any]:
    settings = QUICK if quick else FULL
    info = {"duration": settings.duration, "repeats": settings.repeats, "concurrency": list(settings.concurrency),
            "failovers": settings.failovers, "etcd_members": 3}
    report = progress or (lambda entry: None)
    if etcd_binary() is None:
        entry = {"id": "cluster", "group": "cluster", "label": "keyledger cluster on etcd",
                 "skipped": "etcd is not installed (apt-get install etcd-server)"}
        report(entry)
        return {"results": [entry], "settings": info}
    results: list[dict[str, Any]] = []
    root = Path(tempfile.mkdtemp(prefix="kl-cluster-bench-", dir=tmpdir))
    try:
        single = Nodes(root / "single", 1, None)
        try:
            for e in _measure(single, "single", "one keyledger serve, durable (no etcd)", settings):
                results.append(e)
                report(e)
        finally:
            single.stop()
        for count in (1, 3):
            etcd = EtcdCluster(root / f"etcd{count}", fast=False).start()
            nodes = None
            try:
                nodes = Nodes(root / f"cluster{count}", count, etcd.url("bench"))
                for e in _measure(nodes, f"n{count}", f"cluster of {count} node(s) on 3 etcd members, durable",
                                  settings):
                    results.append(e)
                    report(e)
                if count == 3:
                    e = _failover(nodes, etcd, settings.failovers)
                    results.append(e)
                    report(e)
            finally:
                if nodes is not None:
                    nodes.stop()
                etcd.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = {e["params"]["concurrency"]: e["value"] for e in results if e.get("params", {}).get("setup") == "single"}
    for e in results:
        c = e.get("params", {}).get("concurrency")
        if e.get("params", {}).get("setup", "single") != "single" and base.get(c):
            e["ratios"] = {"single": e["value"] / base[c]}
    return {"results": results, "settings": info}


def render(results: list[dict[str, Any]]) -> str:
    lines = ["| cell | value | p50 ms | p99 ms | vs single |", "|---|---:|---:|---:|---:|"]
    for e in results:
        if "value" not in e:
            lines.append(f"| {e['id']} | {e.get('skipped') or e.get('error')} | | | |")
            continue
        extra = e.get("extra", {})
        ratio = e.get("ratios", {}).get("single")
        lines.append(f"| {e['id']} | {e['value']:.2f} {e['unit']} | {extra.get('p50_ms', 0):.1f} | "
                     f"{extra.get('p99_ms', 0):.1f} | {'' if ratio is None else f'{ratio:.2f}x'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cluster_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    out = run(args.quick, progress=lambda e: print(json.dumps({k: e.get(k) for k in ("id", "value", "unit")}),
                                                   flush=True))
    print(render(out["results"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 1 if any("error" in e for e in out["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
