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
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA = 1
_LIBRARIES = ("keyledger", "cryptography", "lmdb", "msgspec", "boto3", "botocore", "moto")


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


def _value_cells(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return ["skipped", ""]
    if "error" in r:
        return ["FAILED", ""]
    spread = f"±{r['spread'] * 50:.0f}%" if len(r.get("runs", [])) > 1 else ""
    return [fmt_rate(r["value"]), spread]


def _ratio_cells(r: dict[str, Any], columns: list[str]) -> list[str]:
    ratios = r.get("ratios", {})
    return [fmt_ratio(ratios[c]["ratio"]) if c in ratios else "" for c in columns]


Section = tuple[str, list[str], list[list[str]], list[str]]  # title, headers, rows, notes


def sections(doc: dict[str, Any]) -> list[Section]:
    results = doc["results"]
    out: list[Section] = []
    ops_cols = ["aes_gcm", "lmdb_put", "lmdb_put_sync", "moto"]
    rows = []
    for r in results:
        if r["group"] in ("aes", "lmdb", "moto", "embedded"):
            kind = "keyledger" if r["group"] == "embedded" else "baseline"
            label = r["label"].removeprefix("keyledger ")
            rows.append([kind, label, str(r["threads"]), *_value_cells(r), *_ratio_cells(r, ops_cols)])
    if rows:
        headers = ["", "case", "threads", "ops/s", "spread", *(RATIOS[c][0] for c in ops_cols)]
        notes = [f"{r['id']}: {r['skipped'] if 'skipped' in r else r['error']}"
                 for r in results if r["group"] != "replay" and ("skipped" in r or "error" in r)]
        out.append(("Encrypt and Decrypt", headers, rows, notes))
    replay = [r for r in results if r["group"] == "replay"]
    if replay:
        rows = [[r["label"], *_value_cells(r), *_ratio_cells(r, ["scan"])] for r in replay]
        events = next((_param(r, "events") for r in replay), None)
        title = f"Replay over {events:,} records" if events else "Replay"
        notes = []
        extra = next((r.get("extra") for r in replay if r.get("extra")), None)
        if extra:
            notes.append(f"log size: {extra['value_bytes_per_record']:.0f} stored bytes per record "
                         f"(prev_hash + hash + canonical record); {extra['file_bytes_per_record']:.0f} "
                         "bytes of LMDB file per record (B-tree pages, projections and free pages included)")
        notes += [f"{r['id']}: {r['error']}" for r in replay if "error" in r]
        out.append((title, ["step", "events/s", "spread", RATIOS["scan"][0]], rows, notes))
    return out


def _align(headers: list[str], rows: list[list[str]]) -> list[int]:
    return [max(len(x) for x in col) for col in zip(headers, *rows)]


def render_table(doc: dict[str, Any]) -> str:
    """The plain-text table printed at the end of a run."""
    lines = []
    s = doc["settings"]
    lines.append(f"keyledger benchmarks ({doc['mode']} run): median of {s['repeats']} x {s['duration']} s "
                 f"after {s['warmup']} s warm-up; ratio = keyledger / baseline (> 1: keyledger faster)")
    for title, headers, rows, notes in sections(doc):
        widths = _align(headers, rows)
        lines += ["", title]
        for row in [headers, *rows]:
            cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells).rstrip())
        lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _size(n: int | None) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n else "?"


def _runs(n: int) -> str:
    return "1 run" if n == 1 else f"{n} runs"


def render_markdown(doc: dict[str, Any]) -> str:
    """RESULTS.md, from a results.json document alone."""
    m, s = doc["machine"], doc["settings"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    commit = (m.get("git_commit") or "?")[:12] + (" (uncommitted changes)" if m.get("git_dirty") else "")
    load = " at start, ".join(" / ".join(map(str, m.get(k) or ["?"]))
                              for k in ("load_average_start", "load_average_end")) + " at end"
    out = [
        "# keyledger benchmark results",
        "",
        f"Measured on {m['date']} by `python -m benchmarks` ({doc['mode']} run). This file is generated from "
        "`benchmarks/results.json`; regenerate it with `python -m benchmarks --write-md`.",
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
        _md_row(["Load average (1, 5, 15 min)", load]),
        _md_row(["Commit", commit]),
        "",
        "## Method",
        "",
        f"- Every throughput case runs {s['warmup']} s of warm-up, then {_runs(s['repeats'])} of "
        f"{s['duration']} s; the table shows the median, and the spread is half the range of the runs "
        "as a share of the median.",
        f"- keyledger: `ledger.open(home, durability=...)` on a fresh ledger per case, one key, "
        f"encryption context {json.dumps(s['context'])}. With {s['threads']} threads, every thread calls "
        "the same `KeyLedger` and group commit batches their writes. Every call appends its record "
        "(hash chain, projections) before it returns; `durable` syncs each commit, `relaxed` syncs "
        "every 0.2 s.",
        "- AES-GCM: cryptography's `AESGCM` (one key object, a random nonce per encryption, an AAD as "
        "long as keyledger's), 1 thread: the cost of the cipher alone.",
        f"- LMDB put/txn: a bare LMDB environment, one appended {s.get('record_value_bytes', '?')}-byte "
        "value (the size of one stored Encrypt record) per write transaction, 1 thread, without and "
        "with a synced commit: the cost of one write per request.",
        "- moto: moto's in-process KMS through a boto3 client under `mock_aws`, the same calls, sizes "
        "and context.",
        f"- Replay: a log of about {s['replay_events']:,} records (Encrypt, Decrypt and GenerateDataKey "
        "requests over 8 keys with aliases, some with automatic rotation, 40 on-demand rotations), "
        f"built in large batches through `Store.submit`, then read {_runs(s['replay_repeats'])} per step "
        "from a warm page cache (scan, verify and check each open their own read snapshot).",
        "- Ratios are keyledger's throughput over the baseline's, from the same run: 0.5x is half as "
        "fast as the baseline, 10x ten times faster.",
    ]
    for title, headers, rows, notes in sections(doc):
        out += ["", f"## {title}", "", _md_row(headers),
                "| " + " | ".join(["---"] * 2 + ["---:"] * (len(headers) - 2)) + " |"
                if title.startswith("Encrypt") else
                "| " + " | ".join(["---"] + ["---:"] * (len(headers) - 1)) + " |"]
        out += [_md_row(row) for row in rows]
        if notes:
            out.append("")
            out += [f"- {n}" for n in notes]
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
