"""Which CPUs a `keyledger serve` process runs on (`serve --cpus`).

A server's Python runs under one interpreter lock. The event loop, the
writer thread that commits, and the timers take turns holding it, so the
process never runs more than about one CPU's worth of Python. Left to the
kernel, those threads spread over the CPUs, and each hand-off of the lock
then wakes a thread on another CPU and moves the lock's and the objects'
cache lines there. On the benchmark machine that cost a request about half
as much CPU again, 205 us against 135 us at 64 clients
(benchmarks/PROFILE.md, round 13). So by default the server keeps every
one of its threads on one CPU.

The spec (`--cpus`):

- `one` (the default): one CPU of those the process may use, the least
  busy over a short sample of /proc/stat. Ties go to a CPU chosen by the
  process id, so servers started together spread out.
- `all`: leave placement to the kernel (the affinity the process started
  with).
- a list, as taskset writes it (`2`, `0,2`, `4-7`): exactly those CPUs.

Decisions are pure functions of their inputs (`parse`, `least_busy`);
only `choose` reads /proc and only `apply` changes anything.
"""

from __future__ import annotations

import os
import time

SPECS = ("one", "all")
SAMPLE_SECONDS = 0.05
MAX_CPU = (1 << 16) - 1  # far above Linux's largest CPU count (NR_CPUS), and a list stays small


def parse(spec: str) -> str | frozenset[int]:
    """`one`, `all`, or the CPUs of a list such as `0,2-3`.

    Raises ValueError for anything else (an empty list, a reversed or
    negative range, a CPU number past MAX_CPU, a word)."""
    text = spec.strip().lower()
    if text in SPECS:
        return text
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"{spec!r} is not 'one', 'all' or a CPU list such as 0,2-3")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise ValueError(f"the CPU range {part.strip()!r} runs backwards")
        if high > MAX_CPU:
            raise ValueError(f"no CPU is numbered above {MAX_CPU} (in {spec!r})")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def busy_ticks(stat: str) -> dict[int, int]:
    """Each CPU's non-idle time so far, in clock ticks, from /proc/stat's
    `cpuN` lines (user nice system idle iowait irq softirq steal ...)."""
    busy: dict[int, int] = {}
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            fields = [int(f) for f in rest.split()]
            busy[int(name[3:])] = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy


def least_busy(before: str, after: str, allowed: frozenset[int], salt: int) -> int:
    """The allowed CPU that was busy least between two /proc/stat samples;
    among equals, the one `salt` (a process id) picks. A CPU missing from
    either sample counts as fully busy."""
    start, end = busy_ticks(before), busy_ticks(after)
    ordered = sorted(allowed)

    def load(cpu: int) -> int:
        if cpu not in start or cpu not in end:
            return 1 << 62
        return end[cpu] - start[cpu]

    lightest = min(load(cpu) for cpu in ordered)
    candidates = [cpu for cpu in ordered if load(cpu) == lightest]
    return candidates[salt % len(candidates)]


def supported() -> bool:
    return hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def choose(spec: str | frozenset[int]) -> frozenset[int] | None:
    """The CPUs to keep this process on, or None to leave it where it is
    (`all`, a platform without affinity, or a process already on one CPU).

    Raises ValueError for CPUs this process may not use, or a list on a
    platform without CPU affinity."""
    if not supported():
        if isinstance(spec, frozenset):
            raise ValueError("CPU affinity is not supported on this platform")
        return None
    allowed = frozenset(os.sched_getaffinity(0))
    if spec == "all":
        return None
    if isinstance(spec, frozenset):
        outside = sorted(spec - allowed)
        if outside:
            raise ValueError(f"this process may not run on CPU {', '.join(map(str, outside))} "
                             f"(it may use {_listed(allowed)})")
        return spec
    if len(allowed) == 1:
        return None
    try:
        with open("/proc/stat") as f:
            before = f.read()
        time.sleep(SAMPLE_SECONDS)
        with open("/proc/stat") as f:
            after = f.read()
    except OSError:
        return frozenset({min(allowed)})
    return frozenset({least_busy(before, after, allowed, os.getpid())})


def apply(cpus: frozenset[int], pid: int | None = None) -> None:
    """Keep every thread of this process (or of process `pid`), and every
    thread it starts later (they inherit it), on `cpus`."""
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{pid or 'self'}/task")]
    except OSError:
        threads = [pid or 0]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


def current() -> list[int] | None:
    """The CPUs this process may run on now (None: the platform does not say)."""
    return sorted(os.sched_getaffinity(0)) if supported() else None


def _listed(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))
