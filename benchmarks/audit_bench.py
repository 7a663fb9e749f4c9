"""What the audit trail costs, and how fast it is read (issue 3's benchmark).

`run(quick)` returns {"group": "audit", "results": [...]}, one entry per
measurement, shaped like the harness's results:

- `audit.append.raw.ratio`: append throughput with the Merkle tree and the
  audit indexes on, as a ratio to the same store with `audit_tables=False`.
  Realistic Encrypt / Decrypt / GenerateDataKey records against 50 keys,
  appended by `Store.submit` in batches of 1,000 (what group commit makes of
  a busy server), `relaxed`. Paired slices, alternating which store goes
  first, so load and the logs' growth hit both alike; the ratio is the
  median of the per-pair ratios.
- `audit.append.encrypt.ratio`: the same ratio through the service's
  `Encrypt` (32 B, one thread, relaxed), where crypto and authorization
  dilute the tree's share.
- `audit.verify`: `keyledger.audit.verify` (hash chain, Merkle root recomputed
  from the record bytes, one stored checkpoint) over 1,000,000 records
  (quick: 10,000), in records/s. Its same-log baselines: `audit.chain`, the
  hash chain with decoding and no Merkle tree (`projections.replay.verified`,
  the first step of `replay --check`), and `audit.scan`, reading the records
  only; `ratios` holds verify / each.
- `audit.log.key_recent`: a filtered trail query, one key's 1,000 most
  recent records (`projections.query`, newest first, through `idx_key`) in
  that log, in ms (median of repeated runs). Its baselines, in the same
  snapshot: `audit.log.key_recent.unindexed`, the same query with
  `use_indexes=False` (walks the log newest first until 1,000 match), and
  `audit.log.read_answer`, reading and decoding exactly the 1,000 records it
  returns by seq (the floor: the cost of the answer alone). `ratios` holds
  unindexed / indexed (how many times faster the index makes it) and
  answer / indexed (1.0 would be an index walk that costs nothing).

The log is built with big `Store.submit` batches (benchmarks.cases.build_log,
50 keys). Each part runs on its own: one that raises becomes an entry with
"error" and the others still run. Clock: time.perf_counter only. Never run
as a unit test.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import keyledger
from benchmarks.cases import build_log
from keyledger import audit
from keyledger import events as ev
from keyledger.secret import Secret
from keyledger.service import KeyLedger
from keyledger.store import Store
from keyledger.projections import replay
from keyledger.projections.query import Filter, query

KEYS = 50
PRINCIPALS = [f"arn:aws:iam::111122223333:role/app-{i}" for i in range(4)]
CONTEXTS = [{"purpose": "orders", "tenant": f"t{i:03d}"} for i in range(97)]
BATCH = 1_000
QUERY_LIMIT = 1_000
SIZES = {"full": {"log": 1_000_000, "pairs": 30, "encrypt_pairs": 20, "encrypt_slice": 300, "queries": 30,
                  "scans": 3, "thread_pairs": 10, "per_thread": 40},
         "quick": {"log": 10_000, "pairs": 6, "encrypt_pairs": 4, "encrypt_slice": 100, "queries": 10,
                   "scans": 1, "thread_pairs": 2, "per_thread": 10}}
THREADS = 32


def _appender(store: Store, key_ids: list[str]) -> Callable[[], float]:
    """One timed submit of BATCH realistic records; returns its seconds."""
    counter = [0]

    def once() -> float:
        first = counter[0]
        counter[0] += BATCH
        now = time.time_ns() // 1000

        def work(view: Any) -> None:
            for j in range(first, first + BATCH):
                key_id, context, kind = key_ids[j % KEYS], CONTEXTS[j % len(CONTEXTS)], j % 20
                digest = os.urandom(32)
                if kind == 0:
                    event: ev.Event = ev.DataKeyGenerated(key_id, 1, context, digest, 32, True)
                    operation = "GenerateDataKey"
                elif kind <= 8:
                    event, operation = ev.Decrypted(key_id, 1, context, digest), "Decrypt"
                else:
                    event, operation = ev.Encrypted(key_id, 1, context, digest), "Encrypt"
                view.append([event], operation=operation, principal=PRINCIPALS[j % len(PRINCIPALS)],
                            request_id=str(uuid.uuid4()), time=now + j - first)

        start = time.perf_counter()
        store.submit(work)
        return time.perf_counter() - start
    return once


def _paired(a: Callable[[], float], b: Callable[[], float], pairs: int) -> tuple[list[float], list[float]]:
    """Seconds of a and b, timed back to back, alternating which goes first."""
    ta, tb = [], []
    a(), b()  # warm-up
    for i in range(pairs):
        if i % 2 == 0:
            ta.append(a())
            tb.append(b())
        else:
            tb.append(b())
            ta.append(a())
    return ta, tb


def _ratio_entry(id_: str, label: str, audit_s: list[float], plain_s: list[float], per_slice: int,
                 unit: str, params: dict[str, Any]) -> dict[str, Any]:
    ratios = [p / a for a, p in zip(audit_s, plain_s)]  # audit rate / plain rate
    value = statistics.median(ratios)
    return {"id": id_, "group": "audit", "label": label, "unit": "ratio", "value": value,
            "runs": ratios, "spread": (max(ratios) - min(ratios)) / value if len(ratios) > 1 and value else 0.0,
            "ratio_quartiles": statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios,
            f"audit_{unit}": per_slice / statistics.median(audit_s),
            f"plain_{unit}": per_slice / statistics.median(plain_s), "params": params,
            "ratios": {"without_audit": {"baseline": "the same store with audit_tables=False", "ratio": value}}}


def append_raw(root: str, pairs: int) -> dict[str, Any]:
    key_ids = [str(uuid.uuid4()) for _ in range(KEYS)]
    with tempfile.TemporaryDirectory(dir=root) as a_dir, tempfile.TemporaryDirectory(dir=root) as p_dir:
        with_tree = Store(a_dir, durability="relaxed")
        without = Store(p_dir, durability="relaxed", audit_tables=False)
        try:
            ta, tp = _paired(_appender(with_tree, key_ids), _appender(without, key_ids), pairs)
        finally:
            with_tree.close()
            without.close()
    return _ratio_entry("audit.append.raw.ratio", "append with Merkle tree + indexes / without (Store.submit, "
                        f"batches of {BATCH:,})", ta, tp, BATCH, "events_per_s",
                        {"batch": BATCH, "pairs": pairs, "keys": KEYS, "durability": "relaxed"})


def append_encrypt(root: str, pairs: int, per_slice: int) -> dict[str, Any]:
    def encrypting(store: Store) -> tuple[KeyLedger, Callable[[], float]]:
        kms = KeyLedger(store, Secret(os.urandom(32)), region=keyledger.DEFAULT_REGION, account=keyledger.DEFAULT_ACCOUNT)
        key_id = kms.create_key(description="bench").key_metadata.key_id
        plaintext = os.urandom(32)

        def once() -> float:
            start = time.perf_counter()
            for _ in range(per_slice):
                kms.encrypt(key_id, plaintext, encryption_context=CONTEXTS[0])
            return time.perf_counter() - start
        return kms, once

    with tempfile.TemporaryDirectory(dir=root) as a_dir, tempfile.TemporaryDirectory(dir=root) as p_dir:
        a_kms, a = encrypting(Store(a_dir, durability="relaxed"))
        p_kms, p = encrypting(Store(p_dir, durability="relaxed", audit_tables=False))
        try:
            ta, tp = _paired(a, p, pairs)
        finally:
            a_kms.close()
            p_kms.close()
    return _ratio_entry("audit.append.encrypt.ratio", "Encrypt 32 B with Merkle tree + indexes / without "
                        "(1 thread, relaxed)", ta, tp, per_slice, "ops_per_s",
                        {"size": 32, "threads": 1, "calls_per_slice": per_slice, "pairs": pairs,
                         "durability": "relaxed"})


def append_encrypt_threads(root: str, pairs: int, per_thread: int, threads: int = THREADS,
                           durability: str = "durable") -> dict[str, Any]:
    """The same ratio under load: `threads` threads encrypting at once, so
    group commit shares each transaction (and its dirtied audit pages)."""
    import threading

    def encrypting(store: Store) -> tuple[KeyLedger, Callable[[], float]]:
        kms = KeyLedger(store, Secret(os.urandom(32)), region=keyledger.DEFAULT_REGION, account=keyledger.DEFAULT_ACCOUNT)
        key_id = kms.create_key(description="bench").key_metadata.key_id
        plaintext = os.urandom(32)

        def worker() -> None:
            for _ in range(per_thread):
                kms.encrypt(key_id, plaintext, encryption_context=CONTEXTS[0])

        def once() -> float:
            pool = [threading.Thread(target=worker) for _ in range(threads)]
            start = time.perf_counter()
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            return time.perf_counter() - start
        return kms, once

    with tempfile.TemporaryDirectory(dir=root) as a_dir, tempfile.TemporaryDirectory(dir=root) as p_dir:
        a_kms, a = encrypting(Store(a_dir, durability=durability))
        p_kms, p = encrypting(Store(p_dir, durability=durability, audit_tables=False))
        try:
            ta, tp = _paired(a, p, pairs)
        finally:
            a_kms.close()
            p_kms.close()
    return _ratio_entry("audit.append.encrypt_threads.ratio", f"Encrypt 32 B with Merkle tree + indexes / without "
                        f"({threads} threads, {durability})", ta, tp, threads * per_thread, "ops_per_s",
                        {"size": 32, "threads": threads, "calls_per_slice": threads * per_thread, "pairs": pairs,
                         "durability": durability})


def _median_seconds(fn: Callable[[], int], repeats: int) -> tuple[float, list[float], int]:
    """(median seconds, every run's seconds, what fn returned last)."""
    times, n = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, n


def _spread(runs: list[float]) -> float:
    mid = statistics.median(runs) if runs else 0.0
    return (max(runs) - min(runs)) / mid if len(runs) > 1 and mid else 0.0


def verify_and_query(root: str, records: int, queries: int, scans: int = 1) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(dir=root) as home, keyledger.open(home, create=True, durability="relaxed") as kms:
        start = time.perf_counter()
        n = build_log(kms, records, keys=KEYS, batch=10_000)
        build_s = time.perf_counter() - start
        kms.checkpoint()  # verify also checks it (signing re-verified every record: not timed)
        with kms.store.snapshot() as snap:
            def scan() -> int:
                return sum(1 for _ in snap.raw_records())

            def chain() -> int:
                report = replay.Report()
                count = sum(1 for _ in replay.verified(snap.raw_records(), report))
                if report.chain_error is not None:
                    raise AssertionError(f"chain verification failed: {report.chain_error}")
                return count

            def verify() -> int:
                report = audit.verify(snap)
                if not report.ok or report.records != n:
                    raise AssertionError(f"verify failed on the benchmark log: {report.lines()}")
                return report.records

            scan_s, scan_runs, _ = _median_seconds(scan, scans)
            chain_s, chain_runs, _ = _median_seconds(chain, scans)
            verify_s, verify_runs, _ = _median_seconds(verify, scans)
            key_id = next(r.event.key_id for r in query(snap, Filter(operation="Encrypt"), limit=1))
            wanted = Filter(key_id=key_id)
            answer = [r.seq for r in query(snap, wanted, limit=QUERY_LIMIT, newest_first=True)]

            def indexed() -> int:
                return sum(1 for _ in query(snap, wanted, limit=QUERY_LIMIT, newest_first=True))

            def unindexed() -> int:
                return sum(1 for _ in query(snap, wanted, limit=QUERY_LIMIT, newest_first=True, use_indexes=False))

            def read_answer() -> int:
                return sum(1 for seq in answer if ev.decode(snap.raw_record(seq).body).seq == seq)

            indexed()  # warm
            q_s, q_runs, found = _median_seconds(indexed, queries)
            u_s, u_runs, u_found = _median_seconds(unindexed, max(1, queries // 10))
            a_s, a_runs, a_found = _median_seconds(read_answer, queries)
            if not found == u_found == a_found == len(answer):
                raise AssertionError(f"indexed query found {found}, unindexed {u_found}, answer {len(answer)}")
            walked = snap.head().seq - answer[-1] if answer else 0  # records the unindexed walk reads
        file_bytes = os.path.getsize(kms.store.file_path())
    params = {"records": n, "keys": KEYS}
    qparams = {**params, "limit": QUERY_LIMIT, "found": found}

    def rate(id_: str, label: str, seconds: float, runs: list[float], **more: Any) -> dict[str, Any]:
        per_s = [n / t for t in runs]
        return {"id": id_, "group": "audit", "label": label, "unit": "records/s", "value": n / seconds,
                "runs": per_s, "spread": _spread(per_s), "seconds": sum(runs), "count": n * len(runs),
                "params": params, **more}

    def ms(id_: str, label: str, seconds: float, runs: list[float], **more: Any) -> dict[str, Any]:
        return {"id": id_, "group": "audit", "label": label, "unit": "ms", "value": seconds * 1000,
                "runs": [t * 1000 for t in runs], "spread": _spread(runs), "seconds": sum(runs),
                "count": found * len(runs), "params": qparams, **more}

    return [
        rate("audit.scan", "log scan (read records only), same log", scan_s, scan_runs),
        rate("audit.chain", "hash chain + decode, no Merkle tree (replay's verify step), same log",
             chain_s, chain_runs),
        rate("audit.verify", "audit verify (chain + Merkle root + checkpoint)", verify_s, verify_runs,
             ratios={"chain": {"baseline": "audit.chain", "ratio": chain_s / verify_s},
                     "scan": {"baseline": "audit.scan", "ratio": scan_s / verify_s}},
             extra={"build_seconds": build_s, "build_records_per_s": n / build_s,
                    "file_bytes_per_record": file_bytes / n, "checkpoints": 1}),
        ms("audit.log.key_recent.unindexed", f"the same query without indexes (walks {walked:,} records "
           "newest first)", u_s, u_runs, extra={"records_read": walked}),
        ms("audit.log.read_answer", f"read + decode the {found:,} answer records by seq (the floor)", a_s, a_runs),
        ms("audit.log.key_recent", f"audit log --key-id K --limit {QUERY_LIMIT:,} (newest first)", q_s, q_runs,
           ratios={"unindexed": {"baseline": "audit.log.key_recent.unindexed", "ratio": u_s / q_s},
                   "answer": {"baseline": "audit.log.read_answer", "ratio": a_s / q_s}}),
    ]


def _failed(id_: str, label: str, exc: BaseException) -> dict[str, Any]:
    traceback.print_exc()
    return {"id": id_, "group": "audit", "label": label, "params": {},
            "error": f"{type(exc).__name__}: {exc}"}


def run(quick: bool, tmpdir: str | None = None,
        progress: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
    size = SIZES["quick" if quick else "full"]
    results: list[dict[str, Any]] = []

    def done(*entries: dict[str, Any]) -> None:
        for e in entries:
            results.append(e)
            progress(e)

    parts: list[tuple[str, str, Callable[[str], Any]]] = [
        ("audit.append.raw.ratio", "append with Merkle tree + indexes / without",
         lambda root: [append_raw(root, size["pairs"])]),
        ("audit.append.encrypt.ratio", "Encrypt with Merkle tree + indexes / without",
         lambda root: [append_encrypt(root, size["encrypt_pairs"], size["encrypt_slice"])]),
        ("audit.append.encrypt_threads.ratio", f"Encrypt with Merkle tree + indexes / without, {THREADS} threads",
         lambda root: [append_encrypt_threads(root, size["thread_pairs"], size["per_thread"])]),
        ("audit.verify", f"audit verify and audit log over {size['log']:,} records",
         lambda root: verify_and_query(root, size["log"], size["queries"], size["scans"])),
    ]
    with tempfile.TemporaryDirectory(prefix="kl-audit-bench-", dir=tmpdir) as root:
        for id_, label, part in parts:
            try:
                done(*part(root))
            except Exception as exc:  # recorded in the results; the caller decides
                done(_failed(id_, label, exc))
    return {"group": "audit", "results": results, "settings": {**size, "batch": BATCH, "keys": KEYS}}


if __name__ == "__main__":  # python -m benchmarks.audit_bench [--quick]
    import json
    import sys

    out = run("--quick" in sys.argv)
    for entry in out["results"]:
        if "error" in entry:
            print(f"{entry['id']:32} FAILED: {entry['error']}")
            continue
        extra = {k: v for k, v in entry.items()
                 if k.endswith("_per_s") or k in ("ratio_quartiles", "extra", "ratios")}
        print(f"{entry['id']:32} {entry['value']:>14,.3f} {entry['unit']:10} {json.dumps(extra, default=str)}")
