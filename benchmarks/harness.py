"""Timing: how every number in results.json is measured.

A throughput case is an operation factory: `make_op(thread_index)` returns a
zero-argument callable that performs one operation. `measure_throughput`
runs it for a warm-up, then `repeats` times for `duration` seconds each,
with 1 or many threads, and keeps the median ops/s (plus every run, so the
spread shows how noisy the machine was). A one-shot measurement (replay)
goes through `measure_once`, also as the median of repeats.

Clocks: `time.perf_counter` only. On one thread, operations run in batches
sized during the warm-up so that reading the clock costs nothing next to
sub-microsecond operations; on many threads each thread checks a shared
deadline after every operation and the elapsed time runs until the last
thread has finished its last operation, which is counted.
"""

from __future__ import annotations

import statistics
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Op = Callable[[], Any]
OpFactory = Callable[[int], Op]

#: target wall time of one single-thread batch between two clock reads
_BATCH_SECONDS = 0.002
_MAX_BATCH = 4096


@dataclass(frozen=True)
class Plan:
    """How long to measure each case."""

    warmup: float  # seconds run first and thrown away
    duration: float  # seconds per repeat
    repeats: int  # the median of this many repeats is the result

    def case_seconds(self) -> float:
        return self.warmup + self.duration * self.repeats


FULL = Plan(warmup=0.5, duration=1.5, repeats=5)
QUICK = Plan(warmup=0.05, duration=0.15, repeats=1)


@dataclass
class Measurement:
    """The median of `runs` (each in `unit`), and what was counted."""

    value: float
    runs: list[float]
    unit: str
    count: int = 0  # operations (or events) counted over all repeats
    seconds: float = 0.0  # measured wall time over all repeats
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def spread(self) -> float:
        """(max - min) / median over the repeats: 0 for a single run."""
        if len(self.runs) < 2 or self.value == 0:
            return 0.0
        return (max(self.runs) - min(self.runs)) / self.value


def _batch_size(op: Op, seconds: float) -> int:
    """Warm up for `seconds` and return how many calls fill one batch."""
    calls, start = 0, time.perf_counter()
    deadline = start + seconds
    batch, now = 1, start
    while True:
        before = now
        for _ in range(batch):
            op()
        calls += batch
        now = time.perf_counter()
        if now >= deadline:
            break
        if now - before < _BATCH_SECONDS:  # slow operations stay in small batches
            batch = min(batch * 2, _MAX_BATCH)
    per_call = (now - start) / calls
    return max(1, min(_MAX_BATCH, int(_BATCH_SECONDS / per_call) if per_call > 0 else _MAX_BATCH))


def _run_single(op: Op, seconds: float, batch: int) -> tuple[int, float]:
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            op()
        calls += batch
        now = time.perf_counter()
        if now >= deadline:
            return calls, now - start


def _run_threads(ops: list[Op], seconds: float) -> tuple[int, float]:
    """Run every op on its own thread until a shared deadline."""
    counts = [0] * len(ops)
    errors: list[BaseException] = []
    gate = threading.Barrier(len(ops) + 1)
    clock: dict[str, float] = {}

    def loop(i: int, op: Op) -> None:
        gate.wait()
        deadline = clock["deadline"]
        n = 0
        try:
            while True:
                op()
                n += 1
                if time.perf_counter() >= deadline:
                    break
        except BaseException as exc:  # reported to the caller below, not swallowed
            errors.append(exc)
        counts[i] = n

    threads = [threading.Thread(target=loop, args=(i, op), name=f"bench-{i}", daemon=True)
               for i, op in enumerate(ops)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    clock["deadline"] = start + seconds
    gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def measure_throughput(make_op: OpFactory, *, threads: int, plan: Plan) -> Measurement:
    """Median ops/s of `make_op`'s operations over `plan.repeats` runs."""
    runs, total, seconds = [], 0, 0.0
    if threads == 1:
        op = make_op(0)
        batch = _batch_size(op, plan.warmup)
        for _ in range(plan.repeats):
            n, s = _run_single(op, plan.duration, batch)
            runs.append(n / s)
            total, seconds = total + n, seconds + s
    else:
        ops = [make_op(i) for i in range(threads)]
        if plan.warmup > 0:
            _run_threads(ops, plan.warmup)
        for _ in range(plan.repeats):
            n, s = _run_threads(ops, plan.duration)
            runs.append(n / s)
            total, seconds = total + n, seconds + s
    return Measurement(statistics.median(runs), runs, "ops/s", total, seconds)


def measure_once(fn: Callable[[], int], *, repeats: int) -> Measurement:
    """Median items/s of `fn`, which does its work once and returns how many
    items (events) it handled."""
    runs, total, seconds = [], 0, 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        s = time.perf_counter() - start
        runs.append(n / s)
        total, seconds = total + n, seconds + s
    return Measurement(statistics.median(runs), runs, "events/s", total, seconds)


def result(id: str, group: str, label: str, *, threads: int = 1, params: dict[str, Any] | None = None,
           optional: bool = False, measurement: Measurement | None = None, error: str | None = None,
           skipped: str | None = None) -> dict[str, Any]:
    """One entry of results.json's "results" list."""
    out: dict[str, Any] = {"id": id, "group": group, "label": label, "threads": threads,
                           "params": dict(params or {}), "optional": optional}
    if measurement is not None:
        out.update(unit=measurement.unit, value=measurement.value, runs=measurement.runs,
                   spread=measurement.spread, count=measurement.count, seconds=measurement.seconds,
                   **({"extra": measurement.extra} if measurement.extra else {}))
    if error is not None:
        out["error"] = error
    if skipped is not None:
        out["skipped"] = skipped
    return out


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_case(case: Any, plan: Plan) -> dict[str, Any]:
    """Measure one throughput case (see benchmarks.cases.Case). A case that
    fails becomes an entry with its "error" (and a traceback on stderr) so
    one broken case does not hide the others' numbers; the caller decides
    whether the run failed."""
    common = dict(threads=case.threads, params=case.params, optional=case.optional)
    if case.skip:
        return result(case.id, case.group, case.label, skipped=case.skip, **common)
    try:
        with case.setup() as make_op:
            m = measure_throughput(make_op, threads=case.threads, plan=plan)
    except Exception as exc:  # recorded in the results and reflected in the exit status
        traceback.print_exc()
        return result(case.id, case.group, case.label, error=describe_error(exc), **common)
    return result(case.id, case.group, case.label, measurement=m, **common)
