"""Where threads run, and what it costs (benchmarks/PROFILE.md, round 13).

    python -m benchmarks.placement embedded [--rounds 3] [--seconds 2]
    python -m benchmarks.placement server-threads [--clients 1,64] [--durability relaxed]
        [--server-cpus all|one] [--client-cpu N] [--seconds 3]

- `embedded`: `KeyLedger.encrypt` (32 B) from 1 relaxed thread, 64 relaxed
  threads and 64 durable threads, each on a fresh ledger, with this process
  on all its CPUs and then held on one (its threads inherit the placement),
  alternating in the same minutes. Prints each case's runs and medians.
- `server-threads`: a `keyledger serve` (`--cpus all` or `one`) under the
  replay client, and per request each of the server's threads' user and
  system CPU time and voluntary / involuntary context switches, read from
  /proc/<pid>/task before and after each run. `--client-cpu` holds the
  load generator on one CPU.

Linux only (CPU affinity, /proc). Not part of `python -m benchmarks`; never
run as a unit test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from benchmarks import cases, harness
from benchmarks import server_bench as sb

_TICK = os.sysconf("SC_CLK_TCK")


def _encrypt_rate(root: str, durability: str, threads: int, seconds: float) -> float:
    """Encrypt calls per second (32 B) from `threads` threads on a fresh
    ledger, as the harness measures its embedded cases, with one run."""
    with cases._embedded(root, durability, "encrypt", 32) as make:
        return harness.measure_throughput(make, threads=threads,
                                          plan=harness.Plan(warmup=0.5, duration=seconds, repeats=1)).value


def embedded(rounds: int, seconds: float) -> None:
    every = os.sched_getaffinity(0)
    one = {min(every)}
    runs = (("relaxed", 1), ("relaxed", 64), ("durable", 64))
    rates: dict[tuple[str, str, int], list[float]] = {}
    root = tempfile.mkdtemp(prefix="kl-placement-")
    try:
        for r in range(rounds):
            for placement in ("all", "one") if r % 2 == 0 else ("one", "all"):
                os.sched_setaffinity(0, every if placement == "all" else one)
                for durability, threads in runs:  # threads started now inherit the placement
                    rates.setdefault((placement, durability, threads), []).append(
                        _encrypt_rate(root, durability, threads, seconds))
    finally:
        os.sched_setaffinity(0, every)
    for durability, threads in runs:
        line = [f"{durability}, {threads} thread{'s' if threads > 1 else ''}:"]
        for placement in ("all", "one"):
            runs = rates[(placement, durability, threads)]
            line.append(f"{'all CPUs' if placement == 'all' else 'one CPU'} {statistics.median(runs):,.0f} ops/s "
                        f"({' / '.join(f'{x:,.0f}' for x in runs)})")
        print("  ".join(line))


def _threads(pid: int) -> dict[int, tuple[int, int, int, int]]:
    """Each thread's (utime, stime, voluntary, involuntary switches)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except FileNotFoundError:  # ended meanwhile
            continue
        out[int(tid)] = (int(fields[11]), int(fields[12]), int(status["voluntary_ctxt_switches"]),
                         int(status["nonvoluntary_ctxt_switches"]))
    return out


def server_threads(clients: list[int], durability: str, server_cpus: str, client_cpu: int | None,
                   seconds: float) -> None:
    root = tempfile.mkdtemp(prefix="kl-placement-")
    with sb.keyledger_server(root, durability, ["--cpus", server_cpus]) as endpoint:
        if client_cpu is not None:  # only now: the server must not inherit it
            os.sched_setaffinity(0, {client_cpu})
        requests = sb._signed_requests(endpoint, sb.prepare(endpoint), "encrypt")
        for n in clients:
            sb._replay_requests(endpoint, requests, n, 0.5, 10_000_000)
            before = _threads(endpoint.pid)
            run = sb._replay_requests(endpoint, requests, n, seconds, 10_000_000)
            after = _threads(endpoint.pid)
            print(f"{n} client{'s' if n > 1 else ''}: {run.rate:,.0f} requests/s, {run.errors} failed")
            for tid, (user, system, voluntary, involuntary) in sorted(after.items()):
                if tid not in before:
                    continue
                u0, s0, v0, i0 = before[tid]
                if user - u0 + system - s0 == 0:
                    continue
                per = 1e6 / _TICK / max(run.count, 1)
                print(f"  thread {tid}: user {(user - u0) * per:.1f} us, sys {(system - s0) * per:.1f} us, "
                      f"switches {(voluntary - v0) / max(run.count, 1):.2f} voluntary, "
                      f"{(involuntary - i0) / max(run.count, 1):.2f} involuntary per request")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.placement", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("embedded")
    e.add_argument("--rounds", type=int, default=3)
    e.add_argument("--seconds", type=float, default=2.0)
    s = sub.add_parser("server-threads")
    s.add_argument("--clients", default="1,64")
    s.add_argument("--durability", choices=("durable", "relaxed"), default="relaxed")
    s.add_argument("--server-cpus", choices=("all", "one"), default="all")
    s.add_argument("--client-cpu", type=int, default=None)
    s.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args(argv)
    if args.what == "embedded":
        embedded(args.rounds, args.seconds)
    else:
        server_threads([int(c) for c in args.clients.split(",")], args.durability, args.server_cpus,
                       args.client_cpu, args.seconds)


if __name__ == "__main__":
    main()
