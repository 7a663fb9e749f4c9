"""What a run reports: the machine, the ratios, the table and RESULTS.md.

results.json is the source of truth: a document with "machine", "settings"
and "results" (one entry per case, see `harness.result`). Ratios are derived
from it (`attach_ratios`) and stored alongside, and both the printed table
and the Markdown are rendered from the document alone, so RESULTS.md can be
regenerated from any results.json (`python -m benchmarks --write-md`).

A ratio is keyledger's throughput divided by its baseline's, measured in the
same run: 0.5x is half as fast as the baseline, 10x ten times faster.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA = 1
PROFILE_MD = Path(__file__).resolve().parent / "PROFILE.md"  # appended to RESULTS.md as written
_LIBRARIES = ("keyledger", "cryptography", "lmdb", "msgspec", "boto3", "botocore", "moto", "uvicorn",
              "httptools", "uvloop", "werkzeug")


# -- machine ------------------------------------------------------------------

def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _filesystem(path: str) -> str | None:
    """The type of the filesystem holding `path` (from /proc/mounts)."""
    best, kind = "", None
    real = os.path.realpath(path)
    for line in _read("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) >= 3 and (real == parts[1] or real.startswith(parts[1].rstrip("/") + "/")) \
                and len(parts[1]) >= len(best):
            best, kind = parts[1], parts[2]
    return kind


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        import lmdb
        found["LMDB (C)"] = ".".join(map(str, lmdb.version()))
    except ImportError:
        pass
    try:
        from cryptography.hazmat.backends.openssl.backend import backend
        found["OpenSSL"] = backend.openssl_version_text().removeprefix("OpenSSL ")
    except ImportError:
        pass
    return found


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(tmpdir: str) -> dict[str, Any]:
    affinity = getattr(os, "sched_getaffinity", None)
    commit = _git("rev-parse", "HEAD")
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity else os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "libraries": _versions(),
        "tmpdir": tmpdir,
        "tmpdir_filesystem": _filesystem(tmpdir),
        "git_commit": commit,
        "git_dirty": bool(_git("status", "--porcelain")) if commit else None,
        "load_average_start": load_average(),
    }


# -- ratios -------------------------------------------------------------------

def _param(r: dict[str, Any], name: str) -> Any:
    return r.get("params", {}).get(name)


#: ratio column -> (header, the id of a result's baseline or None)
RATIOS: dict[str, tuple[str, Callable[[dict[str, Any]], str | None]]] = {
    "aes_gcm": ("vs AES-GCM",
                lambda r: f"aes.{_param(r, 'op')}.{_param(r, 'size')}" if r["group"] == "embedded" else None),
    "lmdb_put": ("vs LMDB put/txn",
                 lambda r: "lmdb.put.nosync" if r["group"] == "embedded" else None),
    "lmdb_put_sync": ("vs LMDB put/txn synced",
                      lambda r: "lmdb.put.sync" if r["group"] == "embedded" else None),
    "floor": ("vs floor",
              lambda r: f"floor.{_param(r, 'op')}.{_param(r, 'size')}"
              if r["group"] == "embedded" and _param(r, "size") == 32 else None),
    "moto": ("vs moto",
             lambda r: f"moto.{_param(r, 'op')}.{_param(r, 'size')}.t{r['threads']}"
             if r["group"] == "embedded" else None),
    "scan": ("vs log scan",
             lambda r: "replay.scan" if r["id"] in ("replay.verify", "replay.check") else None),
}


def _ok(r: dict[str, Any] | None) -> bool:
    return r is not None and "value" in r and r["value"] > 0


def attach_ratios(doc: dict[str, Any]) -> None:
    """Set each result's "ratios": column -> {"baseline": id, "ratio": x}."""
    by_id = {r["id"]: r for r in doc["results"]}
    for r in doc["results"]:
        ratios = {}
        for column, (_, baseline_of) in RATIOS.items():
            base_id = baseline_of(r)
            if base_id is None:
                continue
            base = by_id.get(base_id)
            ratio = r["value"] / base["value"] if _ok(r) and _ok(base) else None
            ratios[column] = {"baseline": base_id, "ratio": ratio}
        if ratios:
            r["ratios"] = ratios


# -- rendering ------------------------------------------------------------------

def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 10:
        return f"{x:,.0f}x"
    return f"{x:.2g}x"


def fmt_rate(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def fmt_ms(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def fmt_goal(x: float | None) -> str:
    """A ratio compared with a goal: three decimals, so 0.795x never reads as 0.8x."""
    return "-" if x is None else f"{x:.3f}x"


def fmt_seconds(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s"


def _iqr(r: dict[str, Any]) -> str:
    """The middle half of a paired ratio's per-pair ratios (robust to one slow slice)."""
    q = r.get("ratio_quartiles") or []
    return f"IQR {q[0]:.2f}-{q[-1]:.2f}x" if len(q) == 3 else ""


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _measured(r: dict[str, Any] | None) -> bool:
    return r is not None and "value" in r


def _value_cells(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return ["skipped", ""]
    if not _measured(r):
        return ["FAILED", ""]
    spread = f"±{r['spread'] * 50:.0f}%" if len(r.get("runs", [])) > 1 else ""
    value = fmt_ms(r["value"]) if r.get("unit") == "ms" else fmt_rate(r["value"])
    return [value + (" (FAILED)" if "error" in r else ""), spread]


def _ratio_cells(r: dict[str, Any], columns: list[str]) -> list[str]:
    ratios = r.get("ratios", {})
    return [fmt_ratio(ratios[c]["ratio"]) if c in ratios else "" for c in columns]


@dataclass
class Section:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)  # errors, skips, sizes
    readings: list[str] = field(default_factory=list)  # what the numbers say, in words
    left: int = 1  # how many leading columns are text (left-aligned)


def _problems(results: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in results:
        if "skipped" in r:
            out.append(f"{r['id']}: skipped: {r['skipped']}")
        elif "error" in r:
            out.append(f"{r['id']}: {'FAILED (optional baseline)' if r.get('optional') else 'FAILED'}: "
                       f"{r['error']}")
    return out


def _span(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return fmt_ratio(lo) if fmt_ratio(lo) == fmt_ratio(hi) else f"{fmt_ratio(lo)} to {fmt_ratio(hi)}"


def _ratio(r: dict[str, Any] | None, column: str) -> float | None:
    return ((r or {}).get("ratios", {}).get(column) or {}).get("ratio")


OPS_GROUPS = ("aes", "lmdb", "floor", "moto", "embedded")


def _ops_section(doc: dict[str, Any]) -> Section | None:
    results = [r for r in doc["results"] if r["group"] in OPS_GROUPS]
    if not results:
        return None
    cols = ["aes_gcm", "lmdb_put", "lmdb_put_sync", "floor", "moto"]
    rows = []
    for r in results:
        kind = "keyledger" if r["group"] == "embedded" else "baseline"
        rows.append([kind, r["label"].removeprefix("keyledger "), str(r["threads"]), *_value_cells(r),
                     *_ratio_cells(r, cols)])
    headers = ["", "case", "threads", "ops/s", "spread", *(RATIOS[c][0] for c in cols)]
    mine = [r for r in results if r["group"] == "embedded" and _measured(r)]
    readings = [
        "ops/s: calls per second through `KeyLedger.encrypt` / `decrypt` (median of the runs). Each ratio "
        "divides it by a baseline measured in the same run; > 1x means keyledger is faster. Issue 2 asks for "
        "these ratios and sets no target.",
    ]
    for mode in ("relaxed", "durable"):
        rs = [r for r in mine if _param(r, "mode") == mode]
        if not rs:
            continue
        one = [_ratio(r, "moto") for r in rs if r["threads"] == 1]
        many = [_ratio(r, "moto") for r in rs if r["threads"] > 1]
        lo, hi = min(r["value"] for r in rs), max(r["value"] for r in rs)
        readings.append(
            f"{mode}: {fmt_rate(lo)} to {fmt_rate(hi)} ops/s; against moto's in-process KMS (the same calls "
            f"through boto3 under `mock_aws`) that is {_span(one)} on 1 thread and {_span(many)} on "
            f"{doc['settings']['threads']} threads: what application code sees, not a like-for-like comparison "
            "(moto sits behind a whole boto3 client: validation, JSON, signing, parsing).")
    floor = [(r, _ratio(r, "floor")) for r in mine if _ratio(r, "floor") is not None]
    if floor:
        readings.append(
            f"vs floor ({_span([x for _, x in floor])}): the like-for-like embedded yardstick, the floor pipeline "
            "(benchmarks/floor.py) doing only what a request cannot avoid: per-message key, AES-GCM, one "
            "record, the hash chain, one LMDB put per transaction, no sync.")
    aes = [_ratio(r, "aes_gcm") for r in mine]
    if aes:
        readings.append(
            f"vs AES-GCM ({_span(aes)}): the bare cipher on the same bytes is the floor of the cryptography "
            "alone; keyledger also derives a per-message key, validates the request, authorizes the caller and "
            "appends a hash-chained, Merkle-tree'd, indexed record before it returns, so a small fraction is "
            "expected.")
    durable_many = [_ratio(r, "lmdb_put_sync") for r in mine
                    if _param(r, "mode") == "durable" and r["threads"] > 1]
    durable_one = [_ratio(r, "lmdb_put_sync") for r in mine
                   if _param(r, "mode") == "durable" and r["threads"] == 1]
    if durable_one or durable_many:
        readings.append(
            f"vs LMDB put/txn synced: one synced write transaction per call is the floor of a durable request. "
            f"durable keyledger reaches {_span(durable_one)} of it on 1 thread and {_span(durable_many)} with "
            f"{doc['settings']['threads']} threads, where group commit lets concurrent calls share one sync "
            "(above 1x: more durable requests per second than one sync each would allow).")
    return Section("Encrypt and Decrypt, embedded (issue 2)", headers, rows, _problems(results), readings, left=2)


def _replay_section(doc: dict[str, Any]) -> Section | None:
    replay = [r for r in doc["results"] if r["group"] == "replay"]
    if not replay:
        return None
    rows = [[r["label"], *_value_cells(r), *_ratio_cells(r, ["scan"])] for r in replay]
    events = next((_param(r, "events") for r in replay), None)
    title = f"Replay over {events:,} records (issue 2)" if events else "Replay (issue 2)"
    notes = []
    extra = next((r.get("extra") for r in replay if r.get("extra")), None)
    if extra:
        notes.append(f"log size: {extra['value_bytes_per_record']:.0f} stored bytes per record "
                     f"(prev_hash + hash + canonical record); {extra['file_bytes_per_record']:.0f} "
                     "bytes of LMDB file per record (B-tree pages, projections, audit indexes, Merkle nodes "
                     "and free pages included)")
    notes += _problems(replay)
    by = {r["id"]: r for r in replay}
    readings = ["events/s: records handled per second. The scan only reads the stored records; verify adds "
                "the SHA-256 hash chain and decoding; check adds folding every projection and comparing it "
                "with the live tables. vs log scan: the share of the raw read speed each step keeps."]
    check = by.get("replay.check")
    if _measured(check) and events:
        readings.append(f"A full `keyledger replay --check` of this {events:,}-record log takes about "
                        f"{fmt_seconds(events / check['value'])} ({fmt_rate(check['value'])} events/s); issue 2 asks "
                        "for this number and sets no target.")
    return Section(title, ["step", "events/s", "spread", RATIOS["scan"][0]], rows, notes, readings)


def _audit_section(doc: dict[str, Any]) -> Section | None:
    results = [r for r in doc["results"] if r["group"] == "audit"]
    if not results:
        return None
    by = {r["id"]: r for r in results}
    rows: list[list[str]] = []
    readings: list[str] = []
    small = 0.8
    for id_, what, unit in (("audit.append.raw.ratio", "append, Store.submit batches of 1,000", "events_per_s"),
                            ("audit.append.encrypt.ratio", "Encrypt 32 B, 1 thread, relaxed", "ops_per_s"),
                            ("audit.append.encrypt_threads.ratio", "Encrypt 32 B, 32 threads, durable",
                             "ops_per_s")):
        r = by.get(id_)
        if r is None:
            continue
        if not _measured(r):
            rows.append([what, "FAILED", "", "", ""])
            continue
        mine, base, x = r[f"audit_{unit}"], r[f"plain_{unit}"], r["value"]
        u = unit.replace("_per_s", "/s")
        rows.append([what, f"{fmt_rate(mine)} {u}", f"{fmt_rate(base)} {u} without the tree and indexes",
                     fmt_goal(x), _iqr(r)])
        verdict = ("small by this report's yardstick (>= 0.8x, the bar issue 4 sets for authorization)"
                   if x >= small else
                   "NOT small by this report's yardstick (>= 0.8x, the bar issue 4 sets for authorization)")
        readings.append(
            f"{what}: with the Merkle tree and the audit indexes on, keyledger runs at {fmt_goal(x)} the speed of "
            f"the same store without them (median of {len(r['runs'])} paired slices, {_iqr(r)}): each "
            f"{'record' if unit == 'events_per_s' else 'call'} takes {_pct(1 / x - 1)} more time. Issue 3 asks "
            f"that the overhead stay small and gives no number; this is {verdict}.")
    v, chain, scan = by.get("audit.verify"), by.get("audit.chain"), by.get("audit.scan")
    for r, what in ((scan, "log scan, same log (reads records only)"),
                    (chain, "hash chain + decode, same log (no Merkle tree)")):
        if r is not None:
            rows.append([what, f"{_value_cells(r)[0]} records/s" if _measured(r) else "FAILED", "baseline",
                         "", _value_cells(r)[1]])
    if v is not None:
        n = _param(v, "records")
        if _measured(v):
            rows.append([f"audit verify over {n:,} records", f"{fmt_rate(v['value'])} records/s",
                         "hash chain + decode alone", fmt_ratio(_ratio(v, "chain")), _value_cells(v)[1]])
            readings.append(
                f"audit verify (hash chain, Merkle root recomputed from the record bytes, the stored checkpoint) "
                f"checks {n:,} records in {fmt_seconds(n / v['value'])}, {fmt_rate(v['value'])} records/s: "
                f"{fmt_ratio(_ratio(v, 'chain'))} the speed of the hash chain with decoding alone, so the Merkle "
                f"tree adds {_pct(1 / _ratio(v, 'chain') - 1) if _ratio(v, 'chain') else '?'} to the check. "
                "Issue 3 asks for this number and sets no target.")
        else:
            rows.append([f"audit verify over {n or '?'} records", "FAILED", "", "", ""])
    q, un, ans = by.get("audit.log.key_recent"), by.get("audit.log.key_recent.unindexed"), \
        by.get("audit.log.read_answer")
    if q is not None:
        n = _param(q, "records")
        if _measured(q):
            found = _param(q, "found")
            speedup, answer = _ratio(q, "unindexed"), _ratio(q, "answer")
            walked = (un or {}).get("extra", {}).get("records_read")
            rows.append([f"audit log --key-id K --limit {_param(q, 'limit'):,}, newest first, {n:,}-record log",
                         f"{fmt_ms(q['value'])} ms",
                         f"{fmt_ms(un['value'])} ms without the index" if _measured(un) else "-",
                         f"{fmt_ratio(speedup)} faster" if speedup else "-", _value_cells(q)[1]])
            if _measured(ans):
                rows.append([f"read + decode those {found:,} records by seq", f"{fmt_ms(ans['value'])} ms",
                             "the answer alone (floor)", "", _value_cells(ans)[1]])
            readings.append(
                f"audit log for one key's {found:,} most recent records in a {n:,}-record log takes "
                f"{fmt_ms(q['value'])} ms, {fmt_ratio(speedup)} faster than the same query without the index"
                + (f" (which reads {walked:,} records)" if walked else "")
                + (f", and {1 / answer:.1f}x the time of just reading and decoding its {found:,} answer records: "
                   "the cost follows the answer, not the log, as issue 3 asks." if answer else "."))
        else:
            rows.append([f"audit log --key-id K over {n or '?'} records", "FAILED", "", "", ""])
    headers = ["measurement", "keyledger", "same-run baseline", "ratio", "spread"]
    readings.append("spread: for a paired ratio, the middle half (interquartile range) of its per-pair ratios; "
                    "for a rate or a time, half the range of the runs as a share of the median.")
    return Section("Audit trail (issue 3)", headers, rows, _problems(results), readings, left=3)


def _authz_section(doc: dict[str, Any]) -> Section | None:
    results = [r for r in doc["results"] if r["group"] == "authz"]
    if not results:
        return None
    rows, readings = [], []
    for r in results:
        if not _measured(r):
            rows.append([r["label"], "FAILED", "", "", "", ""])
            continue
        goal = r.get("goal", 0.8)
        met = "met" if r["value"] >= goal else "NOT met"
        rows.append(["Encrypt 32 B, realistic key policy (5 statements, 2 conditions) + 1 IAM policy",
                     f"{fmt_rate(r['realistic_ops_per_s'])} ops/s",
                     f"{fmt_rate(r['default_ops_per_s'])} ops/s, default key policy + the same IAM policy",
                     fmt_goal(r["value"]), f">= {goal:g}x: {met}", _iqr(r)])
        us = r.get("evaluator_us_per_decision", {})
        readings.append(
            f"Encrypt (1 thread, relaxed) by a user allowed by a realistic console-style key policy runs at "
            f"{fmt_goal(r['value'])} the speed of the same call under AWS's default key policy (median of "
            f"{len(r['runs'])} paired slices, {_iqr(r)}). Issue 4's goal is at least {goal:g}x: {met}."
            + (f" The policy evaluator alone decides in {us['realistic']:.1f} us vs {us['default']:.1f} us; "
               f"the difference is {_pct(r['evaluator_extra_share'])} of one Encrypt." if us else ""))
        if "profile" in r:
            top = r["profile"][:3]
            readings.append("Goal missed: the hottest authorization functions per Encrypt: " + "; ".join(
                f"{p['function']} {p['cumtime_us_per_encrypt']:.1f} us" for p in top) + " (results.json has more).")
    headers = ["measurement", "keyledger", "same-run baseline", "ratio", "goal", "spread"]
    return Section("Authorization (issue 4)", headers, rows, _problems(results), readings, left=3)


def _server_sections(doc: dict[str, Any]) -> list[Section]:
    results = [r for r in doc["results"] if r["group"] in ("server", "server-moto")]
    if not results:
        return []
    by = {r["id"]: r for r in results}
    mine = [r for r in results if r["group"] == "server" and "client" in r.get("params", {})]
    out: list[Section] = []
    passes: list[tuple[str, str]] = []
    for r in mine:
        key = (_param(r, "durability"), _param(r, "client"))
        if key not in passes:
            passes.append(key)
    headers = ["op", "concurrent", "keyledger req/s", "moto req/s", "ratio", "kl p50 ms", "moto p50 ms",
               "p50 ratio", "kl p99 ms", "moto p99 ms", "p99 ratio", "failed kl / moto"]
    what = {"boto3": "boto3 clients, one per thread: what an application sees",
            "replay": "replay load generator (pre-signed requests over keep-alive connections, one event loop): "
                      "what the server itself takes"}
    for durability, client in passes:
        rows, ratios, p99s = [], [], []
        for r in mine:
            if (_param(r, "durability"), _param(r, "client")) != (durability, client):
                continue
            base = by.get(((r.get("ratios") or {}).get("moto") or {}).get("baseline")
                          or f"server-moto.{client}.{_param(r, 'op')}.c{_param(r, 'concurrency')}")

            def lat(e: dict[str, Any] | None, p: str) -> str:
                return f"{e['extra'][p + '_ms']:.2f}" if _measured(e) else "-"
            ex = r.get("extra", {})
            rows.append([
                _param(r, "op").capitalize(), str(_param(r, "concurrency")),
                (_value_cells(r)[0] if _measured(r) else "FAILED"),
                (fmt_rate(base["value"]) if _measured(base) else ("FAILED" if base else "-")),
                fmt_ratio(_ratio(r, "moto")),
                lat(r, "p50"), lat(base, "p50"), fmt_ratio(ex.get("p50_speedup")),
                lat(r, "p99"), lat(base, "p99"), fmt_ratio(ex.get("p99_speedup")),
                f"{ex.get('errors', '-')} / {(base or {}).get('extra', {}).get('errors', '-')}"])
            ratios.append(_ratio(r, "moto"))
            if _measured(r) and _measured(base):
                p99s.append((_param(r, "op"), _param(r, "concurrency"), ex["p99_ms"], base["extra"]["p99_ms"]))
        readings = [
            f"{what[client]}; keyledger `serve --durability {durability}`"
            + (" (every commit synced, the default)" if durability == "durable" else " (synced periodically)")
            + (f". keyledger serves {_span(ratios)} the requests per second of moto_server"
               + ((" (moto measured back to back with keyledger in this pass)"
                   if any(".relaxed." in (((r.get("ratios") or {}).get("moto") or {}).get("baseline") or "")
                          for r in mine) else
                   " (moto measured with the same client in the durable pass of this run)")
                  if durability != "durable" else "")
               if any(x is not None for x in ratios) else
               ". No moto_server numbers to compare with in this run (see the note)")
            + ". Issue 5 asks for these ratios and sets no target."]
        if durability != "durable":
            pairs = []
            for r in mine:
                if (_param(r, "durability"), _param(r, "client")) != (durability, client) or not _measured(r):
                    continue
                d = by.get(r["id"].replace(f"server.{durability}.", "server.durable.", 1))
                if _measured(d) and d["value"]:
                    pairs.append((_param(r, "concurrency"), r["value"] / d["value"]))
            if pairs:
                readings.append(
                    f"{durability} over durable (same client, op and concurrency, this run): " + "; ".join(
                        f"{_span([x for c, x in pairs if c == n])} at {n}" for n in sorted({c for c, _ in pairs}))
                    + " concurrent. Where the two are close, the limit is the CPU the server shares with the "
                      "load generator, not the sync per commit.")
        if client == "boto3":
            readings.append("A boto3 call costs its client more CPU than keyledger's server spends answering it, and "
                            "the client threads share the cores with the servers: with boto3 the clients are "
                            "keyledger's bottleneck, so these ratios understate the servers' difference (the replay "
                            "client below measures the servers).")
        if p99s:
            op, n, kl, mo = max(p99s, key=lambda t: (t[1], t[0]))
            readings.append(f"At {n} concurrent clients ({op.capitalize()}), 99% of requests finish within "
                            f"{kl:.1f} ms on keyledger vs {mo:.1f} ms on moto_server.")
        out.append(Section(f"HTTP server over loopback, {client} client, keyledger {durability} (issue 5)",
                           headers, rows, [], readings, left=1))
    if out:
        out[-1].notes += _problems(results)
        out[0].readings.insert(0, (
            "req/s: successful requests per second (median of the runs); p50 / p99: the latency each successful "
            "request had as its client saw it (failed requests are left out of both and counted in the last "
            "column). ratio: keyledger's req/s over moto_server's (> 1x: keyledger serves "
            "more); p50 / p99 ratio: moto's latency over keyledger's (> 1x: keyledger answers sooner). Both "
            "servers are driven by the same client code, back to back, on 127.0.0.1, and share the machine's "
            "cores with the clients."))
    else:
        out.append(Section("HTTP server over loopback (issue 5)", headers, [], _problems(results), []))
    return out


# -- issue 13's targets ------------------------------------------------------------

TARGET_THREADS = 64


@dataclass
class Target:
    """One row of issue 13's table: a same-run ratio against its goal."""

    figure: str
    goal: float
    at_most: bool = False  # the goal is a ceiling (memory growth), not a floor
    value: float | None = None
    detail: str = ""  # the two numbers the ratio divides
    why: str = ""  # why there is no value (skipped, failed, not run)

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.goal if self.at_most else self.value >= self.goal

    def goal_text(self) -> str:
        return f"{'<=' if self.at_most else '>='} {self.goal:g}x"

    def verdict(self) -> str:
        return {True: "met", False: "NOT met", None: "not measured"}[self.met]


def _rate_text(r: dict[str, Any]) -> str:
    return f"{fmt_rate(r['value'])} {r.get('unit', '')}".strip()


def _pair(doc: dict[str, Any], figure: str, goal: float, top: str, bottom: str) -> Target:
    """top's value / bottom's value, both results of this run."""
    t = Target(figure, goal)
    a, b = _find(doc, top), _find(doc, bottom)
    missing = [(i, x) for i, x in ((top, a), (bottom, b)) if not _ok(x)]
    if missing:
        i, x = missing[0]
        t.why = (f"{i}: not in this run" if x is None else
                 f"{i}: skipped ({x['skipped']})" if "skipped" in x else f"{i}: {x.get('error', 'no value')}")
        return t
    assert a is not None and b is not None
    t.value = a["value"] / b["value"]
    t.detail = f"{_rate_text(a)} / {_rate_text(b)}"
    return t


def _own(doc: dict[str, Any], figure: str, goal: float, id_: str, *, at_most: bool = False,
         detail: Callable[[dict[str, Any]], str] = lambda r: "") -> Target:
    """A result that is itself a same-run ratio (paired slices, memory growth)."""
    t = Target(figure, goal, at_most)
    r = _find(doc, id_)
    if not _ok(r):
        t.why = (f"{id_}: not in this run" if r is None else
                 f"{id_}: skipped ({r['skipped']})" if "skipped" in r else f"{id_}: {r.get('error', 'no value')}")
        return t
    assert r is not None
    t.value, t.detail = r["value"], detail(r)
    return t


def _server_ratio(doc: dict[str, Any], figure: str, goal: float, id_: str, column: str) -> Target:
    t = Target(figure, goal)
    r = _find(doc, id_)
    ratio = (((r or {}).get("ratios") or {}).get(column) or {})
    base = _find(doc, ratio.get("baseline") or "")
    if r is None or not _ok(r) or ratio.get("ratio") is None:
        if r is None:
            t.why = f"{id_}: not in this run"
        elif "skipped" in r:
            t.why = f"{id_}: skipped ({r['skipped']})"
        elif not _ok(r):
            t.why = f"{id_}: {r.get('error', 'no value')}"
        else:
            t.why = f"{ratio.get('baseline') or column}: " + (
                "not in this run" if base is None else
                f"skipped ({base['skipped']})" if "skipped" in base else str(base.get("error", "no value")))
        return t
    t.value = ratio["ratio"]
    t.detail = f"{_rate_text(r)} / {_rate_text(base)}" if _ok(base) else ""
    return t


def targets(doc: dict[str, Any]) -> list[Target]:
    """Every figure of issue 13's table, from this run's results alone."""
    n = TARGET_THREADS
    out = []
    for op in ("encrypt", "decrypt"):
        out.append(_pair(doc, f"embedded {op.capitalize()} 32 B, relaxed, 1 thread / floor pipeline", 0.5,
                         f"embedded.relaxed.{op}.32.t1", f"floor.{op}.32"))
    for op in ("encrypt", "decrypt"):
        out.append(_pair(doc, f"embedded {op.capitalize()} 32 B: durable, {n} threads / durable, 1 thread", 15,
                         f"embedded.durable.{op}.32.t{n}", f"embedded.durable.{op}.32.t1"))
        out.append(_pair(doc, f"embedded {op.capitalize()} 32 B: durable, {n} threads / relaxed, 1 thread", 0.8,
                         f"embedded.durable.{op}.32.t{n}", f"embedded.relaxed.{op}.32.t1"))

    def paired(r: dict[str, Any]) -> str:
        unit = "events_per_s" if "audit_events_per_s" in r else "ops_per_s"
        return (f"{fmt_rate(r[f'audit_{unit}'])} / {fmt_rate(r[f'plain_{unit}'])} {unit.replace('_per_s', '/s')}"
                if f"audit_{unit}" in r else "")
    out.append(_own(doc, "audit tables on / off, Store.submit batches", 0.8, "audit.append.raw.ratio",
                    detail=paired))
    out.append(_own(doc, "audit tables on / off, Encrypt 1 thread", 0.9, "audit.append.encrypt.ratio",
                    detail=paired))
    for durability in ("durable", "relaxed"):
        out.append(_server_ratio(doc, f"server Encrypt, load generator, {n} clients / moto_server ({durability})",
                                 15, f"server.{durability}.replay.encrypt.c{n}", "moto"))
        out.append(_server_ratio(doc, f"server Encrypt, load generator, 1 client / moto_server ({durability})",
                                 5, f"server.{durability}.replay.encrypt.c1", "moto"))
        out.append(_server_ratio(doc, f"server Encrypt / bare uvicorn app, load generator, {n} clients "
                                      f"({durability})", 0.4, f"server.{durability}.replay.encrypt.c{n}", "bare"))
    rss = _find(doc, "server.rss")
    first, total = (_param(rss, "first"), _param(rss, "total")) if rss else (10_000, 200_000)
    scaled = "" if (first, total) == (10_000, 200_000) else " (scaled down in this run)"
    out.append(_own(doc, f"server memory (RssAnon) after {total:,} requests / after {first:,}{scaled}", 1.2,
                    "server.rss", at_most=True,
                    detail=lambda r: (f"{r['extra']['after_total_kb']['RssAnon'] / 1024:.1f} / "
                                      f"{r['extra']['after_first_kb']['RssAnon'] / 1024:.1f} MiB; VmRSS "
                                      f"{fmt_goal(r['extra']['vmrss_ratio'])}") if "extra" in r else ""))
    return out


def _targets_section(doc: dict[str, Any]) -> Section | None:
    rows = []
    for t in targets(doc):
        if t.value is None and t.why.endswith("not in this run") and doc.get("mode") != "full":
            continue  # a partial run (--only): say nothing about what it did not measure
        rows.append([t.figure, fmt_goal(t.value) if t.value is not None else "-", t.goal_text(), t.verdict(),
                     t.detail or t.why])
    if not rows:
        return None
    met = sum(1 for r in rows if r[3] == "met")
    readings = [
        f"{met} of {len(rows)} figures meet issue 13's goal in this run. Every ratio divides two numbers measured "
        "in this same run (never a stored number), so the machine's load hits both sides; see the sections "
        "below for each number's method and spread.",
        "floor pipeline (benchmarks/floor.py): a per-message key by SP 800-108 counter-mode HMAC-SHA256 from a "
        "precomputed HMAC state, AES-GCM with header + canonical context as AAD, one msgspec record of "
        "Encrypt's shape, the SHA-256 chain and one LMDB put per write transaction, no sync: what a request "
        "cannot avoid. The like-for-like HTTP baselines are moto_server and a bare uvicorn app returning a "
        "fixed 200 body, driven by the same load generator in the same pass; embedded-vs-moto (below) is only "
        "what application code sees, since moto sits behind a whole boto3 client.",
    ]
    return Section("Issue 13 targets (performance)", ["figure", "ratio", "goal", "verdict", "this run"], rows,
                   [], readings, left=1)


def _by_id(doc: dict[str, Any], group: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in doc["results"] if r["group"] == group}


def _x(top: dict[str, Any] | None, bottom: dict[str, Any] | None) -> str:
    if not (_measured(top) and _measured(bottom)) or not bottom or not bottom["value"]:
        return ""
    assert top is not None
    return fmt_goal(top["value"] / bottom["value"])


def _asym_section(doc: dict[str, Any]) -> Section | None:
    """Issue 11: Sign/Verify/GenerateMac/VerifyMac (and ML-KEM's Encapsulate/Decapsulate) against bare
    cryptography and moto, same run."""
    found = _by_id(doc, "asym")
    if not found:
        return None
    rows = []
    for op, spec in (("sign", "ecc_nist_p256"), ("verify", "ecc_nist_p256"), ("sign", "rsa_2048"),
                     ("verify", "rsa_2048"), ("generatemac", "hmac_256"), ("verifymac", "hmac_256"),
                     ("encapsulate", "ml_kem_768"), ("decapsulate", "ml_kem_768")):
        kl, bare, moto = (found.get(f"asym.{op}.{spec}.{who}") for who in ("keyledger", "bare", "moto"))
        if kl is None:
            continue
        label = kl["label"].removeprefix("keyledger ")
        rows.append([label, f"{fmt_rate(kl['value'])} ops/s" if _measured(kl) else "FAILED",
                     f"{fmt_rate(bare['value'])} ops/s" if _measured(bare) else "",
                     _x(kl, bare), f"{fmt_rate(moto['value'])} ops/s" if _measured(moto) else "skipped",
                     _x(kl, moto)])
    readings = ["Embedded, relaxed, 1 thread, 32-byte messages. The bare `cryptography` operation is the floor: "
                "keyledger adds the authorization, the record (hash chain, Merkle tree, indexes) and the "
                "unwrapped-material cache lookup to each call, which dominates where the primitive itself costs "
                "~1-2 us (HMAC). moto sits behind a boto3 client: what application code sees."]
    headers = ["operation", "keyledger", "bare cryptography", "vs bare", "moto (in-process)", "vs moto"]
    return Section("Asymmetric and HMAC keys (issue 11)", headers, rows, _problems(list(found.values())),
                   readings, left=1)


def _envelope_section(doc: dict[str, Any]) -> Section | None:
    """Issue 14: encrypt-file/decrypt-file MB/s against the ESDK alone with a raw key."""
    found = _by_id(doc, "envelope")
    if not found:
        return None
    rows = []
    for op in ("encrypt_file", "decrypt_file"):
        kl, esdk = found.get(f"envelope.{op}.keyledger"), found.get(f"envelope.{op}.esdk")
        if kl is None:
            continue
        ratio = kl["value"] / esdk["value"] if _measured(kl) and _measured(esdk) and esdk else None
        verdict = "" if ratio is None else ("met" if ratio >= 0.9 else "NOT met")
        rows.append([kl["label"], f"{kl['value']:.0f} MB/s" if _measured(kl) else "FAILED",
                     f"{esdk['value']:.0f} MB/s" if _measured(esdk) else "", fmt_goal(ratio), f">= 0.9x: {verdict}"])
    readings = ["The same file, suite, frame length and fsync on both sides; the ESDK alone uses a raw-key "
                "master key (no KMS). The ledger's share is one GenerateDataKey or Decrypt record per file."]
    headers = ["case", "keyledger", "ESDK alone", "ratio", "goal"]
    return Section("Envelope-encrypted files (issue 14)", headers, rows, _problems(list(found.values())),
                   readings, left=1)


def _ssm_section(doc: dict[str, Any]) -> Section | None:
    """Issue 14: GetParameter WithDecryption, embedded vs moto's SSM in process."""
    found = _by_id(doc, "ssm")
    if not found:
        return None
    moto = found.get("ssm.get_parameter_with_decryption.moto")
    rows = []
    for mode in ("relaxed", "durable"):
        kl = found.get(f"ssm.get_parameter_with_decryption.{mode}")
        if kl is not None:
            rows.append([kl["label"], f"{fmt_rate(kl['value'])} ops/s" if _measured(kl) else "FAILED",
                         f"{fmt_rate(moto['value'])} ops/s" if _measured(moto) else "skipped", _x(kl, moto)])
    readings = ["moto's SSM does no cryptography and keeps no log; keyledger decrypts the SecureString through "
                "its own Decrypt and records the GetParameter and the Decrypt (durable: both synced)."]
    headers = ["case", "keyledger", "moto SSM (in-process)", "ratio"]
    return Section("Parameter store (issue 14)", headers, rows, _problems(list(found.values())), readings, left=1)


def _cluster_section(doc: dict[str, Any]) -> Section | None:
    """Issue 15: cluster throughput and p99 against one durable server, and failover time."""
    found = _by_id(doc, "cluster")
    if not found:
        return None
    rows = []
    for conc in (1, 16):
        single = found.get(f"cluster.single.encrypt.c{conc}")
        for setup in ("single", "n1", "n3"):
            r = found.get(f"cluster.{setup}.encrypt.c{conc}")
            if r is None:
                continue
            p99 = r.get("extra", {}).get("p99_ms")
            rows.append([r["label"], str(conc), f"{fmt_rate(r['value'])} req/s" if _measured(r) else "FAILED",
                         "" if p99 is None else fmt_ms(p99), "" if setup == "single" else _x(r, single)])
    failover = found.get("cluster.failover")
    notes = _problems(list(found.values()))
    readings = ["Durable Encrypt of 256 B through boto3 over loopback; 3 etcd members, the nodes and the clients "
                "share the same 2 cores, so the cluster cannot be faster here: the ratio is its cost."]
    if _measured(failover):
        assert failover is not None
        readings.append(f"Failover (etcd leader SIGKILLed -> next acknowledged Encrypt, 3 nodes, etcd defaults): "
                        f"{failover['value']:.2f} s (median of {len(failover.get('runs', []))}; runs "
                        + ", ".join(f"{x:.2f}" for x in failover.get("runs", [])) + " s).")
    readings.append(
        "On paper, how far the design goes: every append is one etcd transaction serialized on the head key, "
        "about 1-3 ms per commit on SSD over a LAN, so roughly 300-1,000 batches/s; each batch is a whole group "
        "commit of up to 1 MiB (about 2,000 Encrypt records), so etcd's write bandwidth (tens of MB/s, roughly "
        "20-50k records/s) is the practical ceiling, with the tail compacted every few minutes to stay inside "
        "etcd's storage quota (2 GiB default, 8 GiB at most). Every node stores the whole log, about 1 KB per "
        "request (an estimate): 86 GB a day per node at 1,000 requests/s. Beyond that: first a single writer "
        "holding an etcd lease with the other nodes forwarding to it (no head conflicts, which are what make 3 "
        "nodes slower than 1 here), then a log built for the job (BookKeeper ledgers, Kafka/Redpanda "
        "partitions) with etcd kept for metadata, then sharding by key id: one chain per shard and a checkpoint "
        "over the shard heads.")
    headers = ["setup", "clients", "throughput", "p99 ms", "vs one server"]
    return Section("Cluster on etcd (issue 15)", headers, rows, notes, readings, left=1)


def sections(doc: dict[str, Any]) -> list[Section]:
    out = [_targets_section(doc), _ops_section(doc), _replay_section(doc), _audit_section(doc), _authz_section(doc),
           *_server_sections(doc), _asym_section(doc), _envelope_section(doc), _ssm_section(doc),
           _cluster_section(doc)]
    return [s for s in out if s is not None]


def _align(headers: list[str], rows: list[list[str]]) -> list[int]:
    return [max(len(x) for x in col) for col in zip(headers, *rows)]


def _wrap(text: str, width: int = 100, indent: str = "  ") -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=indent + "- ", subsequent_indent=indent + "  ")


def render_table(doc: dict[str, Any]) -> str:
    """The plain-text table printed at the end of a run."""
    lines = []
    s = doc["settings"]
    lines.append(f"keyledger benchmarks ({doc['mode']} run): embedded cases are the median of {s['repeats']} x "
                 f"{s['duration']} s after {s['warmup']} s warm-up; ratio = keyledger / baseline "
                 "(> 1: keyledger faster)")
    for sec in sections(doc):
        widths = _align(sec.headers, sec.rows)
        lines += ["", sec.title]
        for row in [sec.headers, *sec.rows]:
            cells = [c.ljust(w) if i < sec.left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells).rstrip())
        lines += [f"  note: {n}" for n in sec.notes]
        for reading in sec.readings:
            lines += _wrap(reading)
    if "elapsed_seconds" in doc:
        lines += ["", f"run time: {_duration(doc['elapsed_seconds'])} ({_group_times(doc)})"]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _group_times(doc: dict[str, Any]) -> str:
    return ", ".join(f"{g} {_duration(t)}" for g, t in doc.get("group_seconds", {}).items())


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _size(n: int | None) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n else "?"


def _runs(n: int) -> str:
    return "1 run" if n == 1 else f"{n} runs"


def _find(doc: dict[str, Any], id_: str) -> dict[str, Any] | None:
    return next((r for r in doc["results"] if r["id"] == id_), None)


def issue_summary(doc: dict[str, Any]) -> list[str]:
    """Markdown bullets: for each issue, the numbers its benchmark section asks for."""
    out: list[str] = []
    res = doc["results"]
    t = doc["settings"]["threads"]
    mine = [r for r in res if r["group"] == "embedded" and _measured(r)]
    if mine:
        parts = []
        for mode in ("relaxed", "durable"):
            for n in (1, t):
                rs = [r for r in mine if _param(r, "mode") == mode and r["threads"] == n]
                if rs:
                    parts.append(f"{mode} {n} thread{'s' if n > 1 else ''}: "
                                 f"{fmt_rate(min(r['value'] for r in rs))} to {fmt_rate(max(r['value'] for r in rs))} "
                                 f"ops/s ({_span([_ratio(r, 'moto') for r in rs])} moto, what application "
                                 "code sees)")
        out.append("**Issue 2 (core).** Embedded Encrypt and Decrypt, 32 B and 4 KB: " + "; ".join(parts) + ".")
    check, scan = _find(doc, "replay.check"), _find(doc, "replay.scan")
    if _measured(check):
        events = _param(check, "events")
        out.append(f"**Issue 2 (replay).** `replay --check` over {events:,} records: "
                   f"{fmt_rate(check['value'])} events/s ({fmt_seconds(events / check['value'])}), "
                   f"{fmt_ratio(_ratio(check, 'scan'))} the raw scan"
                   + (f" ({fmt_rate(scan['value'])} events/s)." if _measured(scan) else "."))
    raw, enc = _find(doc, "audit.append.raw.ratio"), _find(doc, "audit.append.encrypt.ratio")
    loaded = _find(doc, "audit.append.encrypt_threads.ratio")
    v, q = _find(doc, "audit.verify"), _find(doc, "audit.log.key_recent")
    if any(x is not None for x in (raw, enc, v, q)):
        parts = []
        if _measured(raw):
            parts.append(f"append with the Merkle tree and indexes {fmt_goal(raw['value'])} of the append without "
                         f"them (store level), {fmt_goal(enc['value']) if _measured(enc) else '?'} through Encrypt "
                         "(overhead \"should stay small\": "
                         + ("small" if min(raw["value"], enc["value"] if _measured(enc) else 1) >= 0.8 else
                            "not small by the 0.8x yardstick") + ")"
                         + (f", {fmt_goal(loaded['value'])} through Encrypt with 32 threads (durable), where "
                            "group commit shares each transaction's audit pages" if _measured(loaded) else ""))
        if _measured(v):
            parts.append(f"`audit verify` over {_param(v, 'records'):,} records: {fmt_rate(v['value'])} records/s "
                         f"({fmt_ratio(_ratio(v, 'chain'))} the hash chain alone)")
        if _measured(q):
            parts.append(f"`audit log` for one key's {_param(q, 'limit'):,} most recent records in a "
                         f"{_param(q, 'records'):,}-record log: {fmt_ms(q['value'])} ms "
                         f"({fmt_ratio(_ratio(q, 'unindexed'))} faster than without the index)")
        failed = [x["id"] for x in (raw, enc, loaded, v, q) if x is not None and not _measured(x)]
        out.append("**Issue 3 (audit).** " + "; ".join(parts) + "."
                   + (f" FAILED: {', '.join(failed)}." if failed else ""))
    a = _find(doc, "authz.encrypt.ratio")
    if a is not None:
        out.append("**Issue 4 (authorization).** " + (
            f"Encrypt with a realistic key policy (5 statements, 2 conditions) + IAM policy: "
            f"{fmt_goal(a['value'])} of the same call under the default policy "
            f"({fmt_rate(a['realistic_ops_per_s'])} vs {fmt_rate(a['default_ops_per_s'])} ops/s); goal >= "
            f"{a.get('goal', 0.8):g}x: {'met' if a['value'] >= a.get('goal', 0.8) else 'NOT met'}."
            if _measured(a) else f"FAILED: {a.get('error')}"))
    srv = [r for r in res if r["group"] == "server" and "client" in r.get("params", {})]
    if srv:
        parts = []
        for client in ("boto3", "replay"):
            for durability in ("durable", "relaxed"):
                rs = [r for r in srv if _param(r, "client") == client and _param(r, "durability") == durability]
                if not rs:
                    continue
                per = []
                for n in sorted({_param(r, "concurrency") for r in rs}):
                    cell = [r for r in rs if _param(r, "concurrency") == n and _measured(r)]
                    if cell:
                        vs = [_ratio(r, "moto") for r in cell]
                        per.append(f"{n}: {fmt_rate(min(r['value'] for r in cell))}-"
                                   f"{fmt_rate(max(r['value'] for r in cell))} req/s"
                                   + (f", {_span(vs)} moto" if any(x is not None for x in vs) else "")
                                   + f", p99 up to {max(r['extra']['p99_ms'] for r in cell):.1f} ms")
                parts.append(f"{client} client, keyledger {durability} (by concurrent clients: {'; '.join(per)})")
        failed = [r["id"] for r in res if r["group"] == "server" and "error" in r]
        out.append("**Issue 5 (server, Encrypt and Decrypt over loopback).** " + "; ".join(parts) + "."
                   + (f" FAILED: {', '.join(failed)}." if failed else "") + " Full table below.")
    elif any(r["group"] == "server" for r in res):
        out.append("**Issue 5 (server).** " + "; ".join(_problems([r for r in res if r["group"] == "server"])))
    measured = [t for t in targets(doc) if t.value is not None]
    if measured:
        out.append(f"**Issue 13 (performance).** {sum(1 for t in measured if t.met)} of {len(measured)} measured "
                   "targets met: " + "; ".join(f"{t.figure} {fmt_goal(t.value)} (goal {t.goal_text()})"
                                               for t in measured) + ".")
    return out


def _method(doc: dict[str, Any]) -> list[str]:
    s = doc["settings"]
    out = [
        f"- Every embedded throughput case runs {s['warmup']} s of warm-up, then {_runs(s['repeats'])} of "
        f"{s['duration']} s; the table shows the median, and the spread is half the range of the runs "
        "as a share of the median.",
        f"- keyledger embedded: `ledger.open(home, durability=...)` on a fresh ledger per case, one key, "
        f"encryption context {json.dumps(s['context'])}. With {s['threads']} threads, every thread calls "
        "the same `KeyLedger` and group commit batches their writes. Every call appends its record "
        "(hash chain, Merkle tree, audit indexes, projections) before it returns; `durable` syncs each commit, "
        "`relaxed` syncs every 0.2 s.",
        "- AES-GCM: cryptography's `AESGCM` (one key object, a random nonce per encryption, an AAD as "
        "long as keyledger's), 1 thread: the cost of the cipher alone.",
        f"- LMDB put/txn: a bare LMDB environment, one appended {s.get('record_value_bytes', '?')}-byte "
        "value (the size of one stored Encrypt record) per write transaction, 1 thread, without and "
        "with a synced commit: the cost of one write per request.",
        "- moto: moto's in-process KMS through a boto3 client under `mock_aws`, the same calls, sizes "
        "and context: what application code sees, not a like-for-like comparison.",
        "- Floor pipeline (`benchmarks/floor.py`, issue 13's embedded yardstick): per call a message key by "
        "SP 800-108 counter-mode HMAC-SHA256 from a precomputed HMAC state, AES-GCM with the 51-byte header "
        "and the canonical context as AAD, one msgspec record of Encrypt's shape, the SHA-256 chain, one LMDB "
        "write transaction with one put(append=True), no sync; 32 B, 1 thread.",
        f"- Replay: a log of about {s['replay_events']:,} records (Encrypt, Decrypt and GenerateDataKey "
        "requests over 8 keys with aliases, some with automatic rotation, 40 on-demand rotations), "
        f"built in large batches through `Store.submit`, then read {_runs(s['replay_repeats'])} per step "
        "from a warm page cache (scan, verify and check each open their own read snapshot).",
    ]
    a = s.get("audit")
    if a:
        out.append(
            f"- Audit (`benchmarks/audit_bench.py`): append overhead as the median of {a['pairs']} paired, "
            f"alternating slices of {a['batch']:,} realistic records per `Store.submit` into two relaxed stores, "
            "one with the Merkle tree and audit indexes and one without (`audit_tables=False`); the same through "
            f"`Encrypt` ({a['encrypt_pairs']} pairs of {a['encrypt_slice']} calls). `audit verify` and the query "
            f"run on a separate log of {a['log']:,} records over {a['keys']} keys with one signed checkpoint "
            f"(verify, chain and scan: {_runs(a['scans'])} each, median; the indexed query {_runs(a['queries'])}, "
            "the unindexed one a tenth as many).")
    z = s.get("authz")
    if z:
        out.append(
            f"- Authorization (`benchmarks/authz_bench.py`): two relaxed ledgers, a user with one IAM policy; "
            f"Encrypt of {z.get('size', 32)} B on one thread, {z.get('pairs')} paired slices of "
            f"{z.get('slice_seconds')} s alternating which ledger goes first; the ratio is the median of the "
            "per-pair ratios.")
    v = s.get("server")
    if v:
        passes = "; ".join(f"keyledger `{p['durability']}` with the {' and '.join(p['clients'])} client"
                           f"{'s' if len(p['clients']) > 1 else ''}" + (" and moto alongside" if p["moto"] else "")
                           for p in v["passes"])
        out.append(
            f"- Server (`benchmarks/server_bench.py`): `python -m keyledger.server serve --host {v['host']}` "
            f"(SigV4, a user with an IAM policy allowing kms:*, access log to /dev/null, no sweep, and its default "
            f"`--cpus one`: all its threads on one CPU) and `moto_server -H {v['host']}` as subprocesses, each held "
            f"on one CPU like keyledger (the harness places moto_server and the bare app, which left to the kernel "
            f"run slower: round 13 in PROFILE.md); Encrypt of {v['plaintext_bytes']} B with an encryption context "
            f"and Decrypt of "
            f"ciphertexts made beforehand, at {', '.join(map(str, v['concurrency']))} concurrent clients. Each cell:"
            f" {v['warmup']} s warm-up, then {_runs(v['repeats'])} of {v['duration']} s (at most "
            f"{v['max_requests']:,} requests each); req/s is the median run, p50 / p99 pool every timed request. "
            f"Passes: {passes}."
            + (" The bare uvicorn app (`benchmarks/bare_app.py`: the same uvicorn stack answering a fixed 200 "
               "body the size of an Encrypt response) is driven by the replay client with the same Encrypt "
               "requests right after keyledger's Encrypt cell, at each concurrency." if any(
                   p.get("bare") for p in v["passes"]) else "")
            + (f" Memory: a fresh relaxed `serve`, Encrypt and Decrypt alternating (distinct signed requests, 16 "
               f"connections); RssAnon read from /proc after {v['rss_requests'][0]:,} and after "
               f"{v['rss_requests'][1]:,} requests." if v.get("rss_requests") else ""))
    out.append("- Ratios are keyledger's number over the baseline's, from the same run: 0.5x is half as "
               "fast as the baseline, 10x ten times faster (for the query and latencies: how many times faster).")
    return out


def render_markdown(doc: dict[str, Any]) -> str:
    """RESULTS.md, from a results.json document alone."""
    m = doc["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    commit = (m.get("git_commit") or "?")[:12] + (" (uncommitted changes)" if m.get("git_dirty") else "")
    load = " at start, ".join(" / ".join(map(str, m.get(k) or ["?"]))
                              for k in ("load_average_start", "load_average_end")) + " at end"
    out = [
        "# keyledger benchmark results",
        "",
        f"Measured on {m['date']} by `python -m benchmarks` ({doc['mode']} run"
        + (f", {_duration(doc['elapsed_seconds'])}: {_group_times(doc)}" if "elapsed_seconds" in doc else "")
        + "). This file is generated from `benchmarks/results.json`; regenerate it with "
        "`python -m benchmarks --write-md`.",
    ]
    out += [
        "",
        "## Summary: what each issue asks for",
        "",
        *[f"- {b}" for b in issue_summary(doc)],
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        _md_row(["CPU", f"{m['cpu_model']} ({m['logical_cpus']} logical CPUs, {m['usable_cpus']} usable)"]),
        _md_row(["Memory", _size(m.get("memory_bytes"))]),
        _md_row(["OS", m["platform"]]),
        _md_row(["Python", m["python"]]),
        _md_row(["Libraries", libs]),
        _md_row(["Ledger directory", f"{m['tmpdir']} ({m.get('tmpdir_filesystem') or '?'})"]),
        _md_row(["Load average (1, 5, 15 min)", load + (
            " (the end value includes this run's own server group: servers, clients and moto are busy "
            "processes on the same cores)" if any(r["group"] == "server" for r in doc["results"]) else "")]),
        _md_row(["Commit", commit]),
        "",
        "## Method",
        "",
        *_method(doc),
    ]
    for sec in sections(doc):
        out += ["", f"## {sec.title}", "", _md_row(sec.headers),
                "| " + " | ".join(["---"] * sec.left + ["---:"] * (len(sec.headers) - sec.left)) + " |"]
        out += [_md_row(row) for row in sec.rows]
        if sec.readings:
            out += ["", "Reading:", ""]
            out += [f"- {r}" for r in sec.readings]
        if sec.notes:
            out += ["", *[f"- {n}" for n in sec.notes]]
    profile = _read(str(PROFILE_MD))
    if profile.strip():  # hand-written findings (benchmarks/PROFILE.md), kept across regenerations
        out += ["", profile.strip()]
    return "\n".join(out) + "\n"


# -- files --------------------------------------------------------------------

def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(doc: dict[str, Any], path: Path) -> None:
    write_atomic(path, json.dumps(doc, indent=2) + "\n")


def load_json(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a keyledger benchmark results file of schema {SCHEMA}")
    return doc
