"""Profile `keyledger serve` under the replay load generator (issue 13).

    python -m benchmarks.server_profile [--seconds 8] [--concurrency 64]
        [--durability relaxed] [--op encrypt] [--out /tmp/server.txt] [--native]

Starts `keyledger serve` as `benchmarks.server_bench` does (SigV4, a user
with an IAM policy, the access log to /dev/null), drives it with the same
replay client for `--seconds` at `--concurrency` connections, and records
the server process with `py-spy record --gil --format raw` meanwhile. The
collapsed stacks go to `--out`; a summary of the shares (by thread, by
function inclusive, by function self) is printed. Only the loopback is
targeted; the load stops by itself.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import server_bench as sb


def _py_spy() -> str:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else (shutil.which("py-spy") or "py-spy")


def summarize(raw: Path, top: int = 40) -> str:
    """Shares of the sampled stacks: inclusive and self, by function."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        seen = set()
        for f in frames[1:]:
            name = f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else f
            if name not in seen:
                inclusive[name] += n
                seen.add(name)
        last = frames[-1]
        own[last.split(" (")[0] + " " + (last.split(" (")[1].rstrip(")") if " (" in last else "")] += n
    out = [f"samples: {total}"]
    out.append("-- threads --")
    out += [f"{c / total:6.1%}  {t}" for t, c in threads.most_common(10)]
    out.append("-- inclusive --")
    out += [f"{c / total:6.1%}  {f}" for f, c in inclusive.most_common(top)]
    out.append("-- self (line) --")
    out += [f"{c / total:6.1%}  {f}" for f, c in own.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.server_profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--durability", choices=("durable", "relaxed"), default="relaxed")
    p.add_argument("--op", choices=sb.OPS, default="encrypt")
    p.add_argument("--out", type=Path, default=Path("/tmp/keyledger-server-profile.txt"))
    p.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    p.add_argument("--no-gil", action="store_true", help="sample every thread, not only the GIL holder")
    p.add_argument("--idle", action="store_true", help="py-spy --idle (waiting threads too: wall time)")
    p.add_argument("--rate", type=int, default=250, help="samples per second")
    args = p.parse_args(argv)
    root = tempfile.mkdtemp(prefix="kl-server-profile-")
    try:
        with sb.keyledger_server(root, args.durability) as mine:
            fx = sb.prepare(mine)
            requests = sb._signed_requests(mine, fx, args.op)
            sb._replay_requests(mine, requests, args.concurrency, 1.0, 1_000_000)  # warm up
            command = [_py_spy(), "record", "--pid", str(mine.pid), "--format", "raw", "--rate", str(args.rate),
                       "--duration", str(int(args.seconds)), "--output", str(args.out)]
            if not args.no_gil:
                command.append("--gil")
            if args.idle:
                command.append("--idle")
            if args.native:
                command.append("--native")
            else:  # --native needs to pause the process; sampling without stopping it disturbs it less
                command.append("--nonblocking")
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.5)
            result: list[sb.Run] = []
            t = threading.Thread(target=lambda: result.append(
                sb._replay_requests(mine, requests, args.concurrency, args.seconds, 10_000_000)))
            t.start()
            t.join()
            _, err = spy.communicate(timeout=60)
            run = result[0]
            print(f"{run.rate:,.0f} req/s, {run.errors} errors, {run.count:,} requests", file=sys.stderr)
            if spy.returncode != 0:
                print(err.decode(errors="replace"), file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(summarize(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
