"""Same-run A/B of two `keyledger serve` builds (issue 13, server work).

    python -m benchmarks.server_ab --a PYTHONPATH_A --b PYTHONPATH_B
        [--rounds 6] [--seconds 2] [--concurrency 1,64] [--durability relaxed]

Starts one server per build (each a `python -m keyledger.server serve` with
its own PYTHONPATH, so two checkouts can be compared, and its own extra
environment variables; an empty path is the installed keyledger), both as `benchmarks.server_bench` starts them, then
drives them with its replay client in interleaved runs (A, B, B, A, ...)
so both see the same load from whatever else runs on the machine. Reports,
per concurrency, the median of each build's requests/s and of the server
process's CPU time per request (user + system, from /proc), and B / A for
both: CPU per request is the steadier figure on a shared machine. Only the
loopback is targeted; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator

from benchmarks import server_bench as sb

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


@contextlib.contextmanager
def _environment(changes: dict[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _server(root: str, durability: str, path: str, env: list[str], args: list[str]) -> Iterator[sb.Endpoint]:
    changes: dict[str, str | None] = {"PYTHONPATH": path}
    for item in env:
        name, _, value = item.partition("=")
        changes[name] = value
    serving = sb.keyledger_server(root, durability, args)
    with _environment(changes):  # what the server process starts with
        endpoint = serving.__enter__()
    try:
        yield endpoint
    finally:
        serving.__exit__(None, None, None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.server_ab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", default="", help="PYTHONPATH of build A (empty: the installed keyledger)")
    p.add_argument("--b", default="", help="PYTHONPATH of build B")
    p.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for server A (repeatable)")
    p.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for server B (repeatable)")
    p.add_argument("--a-arg", action="append", default=[], metavar="ARG",
                   help="an extra `serve` argument for server A (repeatable; e.g. --a-arg=--cpus --a-arg=all)")
    p.add_argument("--b-arg", action="append", default=[], metavar="ARG",
                   help="an extra `serve` argument for server B (repeatable)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--concurrency", default="1,64")
    p.add_argument("--durability", choices=("durable", "relaxed"), default="relaxed")
    p.add_argument("--op", choices=sb.OPS, default="encrypt")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    root = tempfile.mkdtemp(prefix="kl-server-ab-")
    try:
        with _server(root, args.durability, args.a, args.a_env, args.a_arg) as a, \
                _server(root, args.durability, args.b, args.b_env, args.b_arg) as b:
            servers = {"A": a, "B": b}
            requests = {k: sb._signed_requests(e, sb.prepare(e), args.op) for k, e in servers.items()}
            rates: dict[tuple[str, int], list[float]] = {}
            cpu: dict[tuple[str, int], list[float]] = {}
            for n in levels:
                for k, e in servers.items():  # warm up
                    sb._replay_requests(e, requests[k], n, 0.5, 1_000_000)
                for r in range(args.rounds):
                    for k in ("A", "B") if r % 2 == 0 else ("B", "A"):
                        e = servers[k]
                        before = _cpu_seconds(e.pid)
                        run = sb._replay_requests(e, requests[k], n, args.seconds, 10_000_000)
                        used = _cpu_seconds(e.pid) - before
                        if run.errors:
                            raise RuntimeError(f"{k}: {run.errors} requests failed")
                        rates.setdefault((k, n), []).append(run.rate)
                        cpu.setdefault((k, n), []).append(used / run.count * 1e6 if run.count else 0.0)
            for n in levels:
                ra, rb = (statistics.median(rates[(k, n)]) for k in ("A", "B"))
                ca, cb = (statistics.median(cpu[(k, n)]) for k in ("A", "B"))
                print(f"c{n:<3} req/s A {ra:8,.0f}  B {rb:8,.0f}  B/A {rb / ra:5.3f}   "
                      f"server CPU us/req A {ca:6.1f}  B {cb:6.1f}  B/A {cb / ca:5.3f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
