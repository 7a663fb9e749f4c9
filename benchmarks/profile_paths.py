"""Where the time goes: the measurements behind RESULTS.md's profile section.

    python -m benchmarks.profile_paths embedded [--seconds S] [--top N]
    python -m benchmarks.profile_paths durable [--threads N] [--seconds S]
    python -m benchmarks.profile_paths audit
    python -m benchmarks.profile_paths audit-encrypt

- `embedded`: cProfile over `KeyLedger.encrypt` (32 B, relaxed, 1 thread),
  the hottest functions by own time and by cumulative time, per call. cProfile
  inflates Python-call-heavy code; the shares are what to compare (a
  sampling profiler, `py-spy record --native`, gives the C side too).
- `durable`: `KeyLedger.encrypt` from N threads (default 64) in `durable`
  mode, with each group commit timed: commits, mean batch, the leader's
  time per commit and per item (the work that runs serially inside the
  write transaction), and the share of wall time the writer was busy.
- `audit`: CPU time per record of `Store.submit` batches of 1,000 realistic
  records with the audit tables off, on, and on without each kind of
  index row, each in its own process (the variants patch
  `keyledger.projections.indexes`): what each index costs an append.
- `audit-encrypt`: the same question for one-record commits, through
  `KeyLedger.encrypt` (32 B, relaxed, 1 thread): alternating slices over
  stores with the audit tables off, on, on without the index rows, and on
  with the Merkle tree computed but none of its nodes stored (the last two
  patch `indexes` and `merkle` for their own slices only). Then the bound
  on deferring the audit rows to batches (an index built behind the log):
  the audit-off call plus the per-record cost of batches of 1,000 (`audit`).

Not part of `python -m benchmarks`; never run as a unit test.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import keyledger

CONTEXT = {"purpose": "bench", "tenant": "acme"}


def embedded(seconds: float, top: int) -> None:
    with tempfile.TemporaryDirectory() as home, keyledger.open(home, create=True, durability="relaxed") as kms:
        key_id = kms.create_key(description="profile").key_metadata.key_id
        plaintext = os.urandom(32)
        for _ in range(1000):
            kms.encrypt(key_id, plaintext, encryption_context=CONTEXT)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 2:
            kms.encrypt(key_id, plaintext, encryption_context=CONTEXT)
            n += 1
        plain_us = (time.perf_counter() - start) / n * 1e6
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(n):
            kms.encrypt(key_id, plaintext, encryption_context=CONTEXT)
        profile.disable()
    print(f"Encrypt 32 B, relaxed, 1 thread: {plain_us:.1f} us per call unprofiled ({n:,} calls)")
    stats = pstats.Stats(profile)
    for order in ("tottime", "cumulative"):
        print(f"\n-- by {order}, us per Encrypt under cProfile")
        stats.sort_stats(order)
        width = 0
        rows = []
        for func in stats.fcn_list[:top]:  # type: ignore[attr-defined]
            _cc, calls, tt, ct, _callers = stats.stats[func]  # type: ignore[attr-defined]
            name = f"{os.path.relpath(func[0]) if func[0].startswith('/') else func[0]}:{func[1]}({func[2]})"
            rows.append((tt / n * 1e6, ct / n * 1e6, calls / n, name))
            width = max(width, len(name))
        for tt, ct, calls, name in rows:
            print(f"  own {tt:7.1f}  cum {ct:7.1f}  calls {calls:5.1f}  {name}")


def durable(threads: int, seconds: float) -> None:
    from keyledger.store import core as store

    sizes: list[int] = []
    spans: list[float] = []
    original = store.Store._run

    def timed(self: Any, batch: list[Any]) -> None:
        start = time.perf_counter()
        try:
            original(self, batch)
        finally:
            spans.append(time.perf_counter() - start)
            sizes.append(len(batch))

    store.Store._run = timed  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as home, keyledger.open(home, create=True, durability="durable") as kms:
            key_id = kms.create_key(description="profile").key_metadata.key_id
            plaintext = os.urandom(32)
            sizes.clear()
            spans.clear()
            counts = [0] * threads
            deadline = time.perf_counter() + seconds

            def loop(i: int) -> None:
                n = 0
                while time.perf_counter() < deadline:
                    kms.encrypt(key_id, plaintext, encryption_context=CONTEXT)
                    n += 1
                counts[i] = n

            pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
            start = time.perf_counter()
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            wall = time.perf_counter() - start
    finally:
        store.Store._run = original  # type: ignore[method-assign]
    print(f"durable Encrypt 32 B, {threads} threads: {sum(counts) / wall:,.0f} ops/s; {len(sizes):,} commits, "
          f"mean batch {statistics.mean(sizes):.1f}; the leader spends {statistics.mean(spans) * 1e3:.2f} ms per "
          f"commit, {sum(spans) / sum(sizes) * 1e6:.0f} us per item (serial, inside the write transaction, the "
          f"synced commit included); the writer is busy {sum(spans) / wall:.0%} of the wall time")


_AUDIT_VARIANTS = {
    "off": "audit tables off",
    "on": "audit tables on (Merkle tree + every index)",
    "no-digest": "on, without the idx_digest rows",
    "no-key": "on, without the idx_key rows",
    "no-shared": "on, without the idx_principal and idx_operation rows",
}


def _audit_variant(variant: str, batches: int = 30, grow: int = 20) -> float:
    """CPU microseconds per record of a 1,000-record Store.submit, after `grow` batches."""
    from keyledger.projections import indexes
    from keyledger.store import Store

    from benchmarks.audit_bench import KEYS, _appender

    if variant == "no-digest":
        indexes.digests_of = lambda e: ()  # type: ignore[assignment]
    elif variant == "no-key":
        rows = indexes.event_rows
        indexes.event_rows = lambda e, seq: [r for r in rows(e, seq) if not r.startswith(b"K")]  # type: ignore
    elif variant == "no-shared":
        indexes.prefixes = lambda principal, operation: []  # type: ignore[assignment]
    key_ids = [str(uuid.uuid4()) for _ in range(KEYS)]
    with tempfile.TemporaryDirectory() as path:
        s = Store(path, durability="relaxed", audit_tables=variant != "off")
        try:
            once = _appender(s, key_ids)
            for _ in range(grow):
                once()
            cpu = []
            for _ in range(batches):
                c = time.process_time()
                once()
                cpu.append(time.process_time() - c)
        finally:
            s.close()
    return statistics.median(cpu) / 1000 * 1e6


def audit() -> None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = {}
    for variant in _AUDIT_VARIANTS:
        out = subprocess.run([sys.executable, "-m", "benchmarks.profile_paths", "_audit-variant", variant],
                             cwd=here, capture_output=True, text=True, check=True)
        found[variant] = float(out.stdout.strip())
    base = found["off"]
    print("Store.submit, batches of 1,000 records, relaxed; CPU time per record (median of 30 batches):")
    for variant, label in _AUDIT_VARIANTS.items():
        us = found[variant]
        print(f"  {us:5.1f} us  {label}" + (f"  (+{us - base:.1f} us over off)" if variant != "off" else ""))
    full = found["on"]
    for variant, what in (("no-digest", "idx_digest"), ("no-key", "idx_key"),
                          ("no-shared", "idx_principal + idx_operation")):
        print(f"  {what}: {full - found[variant]:.1f} us per record, "
              f"{(full - found[variant]) / (full - base):.0%} of the audit cost")


_ENCRYPT_VARIANTS = {
    "off": "audit tables off",
    "on": "audit tables on (Merkle tree + every index)",
    "merkle": "on, without the index rows (the Merkle nodes only)",
    "computed": "on, the Merkle tree computed, nothing stored",
}


def audit_encrypt(slices: int = 40, per_slice: int = 300) -> None:
    from keyledger.projections import indexes, merkle
    from keyledger.secret import Secret
    from keyledger.store import Store

    real = (indexes.prefixes, indexes.event_rows, merkle.push)

    def patch(variant: str) -> None:
        indexes.prefixes, indexes.event_rows, merkle.push = real  # type: ignore[misc]
        if variant in ("merkle", "computed"):
            indexes.prefixes = lambda principal, operation: ()  # type: ignore[assignment]
            indexes.event_rows = lambda e, seq: []  # type: ignore[assignment]
        if variant == "computed":
            merkle.push = lambda frontier, size, leaf: (real[2](frontier, size, leaf)[0], [])  # type: ignore

    with tempfile.TemporaryDirectory() as root:
        ledgers = {}
        for variant in _ENCRYPT_VARIANTS:
            kms = keyledger.KeyLedger(Store(os.path.join(root, variant), durability="relaxed",
                                            audit_tables=variant != "off"), Secret(os.urandom(32)),
                                      region=keyledger.DEFAULT_REGION, account=keyledger.DEFAULT_ACCOUNT)
            ledgers[variant] = (kms, kms.create_key(description="profile").key_metadata.key_id)
        plaintext = os.urandom(32)

        def run(variant: str, n: int) -> float:
            kms, key_id = ledgers[variant]
            patch(variant)
            start = time.perf_counter()
            for _ in range(n):
                kms.encrypt(key_id, plaintext, encryption_context=CONTEXT)
            return time.perf_counter() - start

        try:
            for variant in ledgers:
                run(variant, 3000)
            times: dict[str, list[float]] = {v: [] for v in ledgers}
            for i in range(slices):
                for variant in (list(ledgers) if i % 2 else list(reversed(ledgers))):
                    times[variant].append(run(variant, per_slice))
        finally:
            patch("on")
            for kms, _ in ledgers.values():
                kms.close()
    us = {v: statistics.median(t) / per_slice * 1e6 for v, t in times.items()}
    print(f"Encrypt 32 B, relaxed, 1 thread, one record per commit; median of {slices} alternating slices "
          f"of {per_slice} calls:")
    for variant, label in _ENCRYPT_VARIANTS.items():
        print(f"  {us[variant]:6.1f} us  {us['off'] / us[variant]:.3f}x of off  {label}")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    batch = {v: float(subprocess.run([sys.executable, "-m", "benchmarks.profile_paths", "_audit-variant", v],
                                     cwd=here, capture_output=True, text=True, check=True).stdout)
             for v in ("off", "on")}
    deferred = us["off"] + batch["on"] - batch["off"]
    print(f"  the audit rows of batches of 1,000: +{batch['on'] - batch['off']:.1f} us CPU per record, so an "
          f"index built behind the log would cost at least {deferred:.1f} us per Encrypt: "
          f"{us['off'] / deferred:.3f}x of off")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_paths", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("embedded")
    e.add_argument("--seconds", type=float, default=6.0)
    e.add_argument("--top", type=int, default=30)
    d = sub.add_parser("durable")
    d.add_argument("--threads", type=int, default=64)
    d.add_argument("--seconds", type=float, default=5.0)
    sub.add_parser("audit")
    sub.add_parser("audit-encrypt")
    v = sub.add_parser("_audit-variant")
    v.add_argument("variant", choices=tuple(_AUDIT_VARIANTS))
    args = p.parse_args(argv)
    if args.what == "embedded":
        embedded(args.seconds, args.top)
    elif args.what == "durable":
        durable(args.threads, args.seconds)
    elif args.what == "audit":
        audit()
    elif args.what == "audit-encrypt":
        audit_encrypt()
    else:
        print(f"{_audit_variant(args.variant):.3f}")


if __name__ == "__main__":
    main()
