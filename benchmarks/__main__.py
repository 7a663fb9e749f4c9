"""`python -m benchmarks`: measure keyledger against its baselines.

    python -m benchmarks              full run (about 10 minutes): writes
                                      benchmarks/results.json and RESULTS.md
    python -m benchmarks --quick      smoke run for CI (under a minute):
                                      writes a temporary file (or --out)
    python -m benchmarks --write-md   render RESULTS.md from results.json

Groups (--only): aes, lmdb, moto, embedded, replay (issue 2: the core),
audit (issue 3: benchmarks/audit_bench.py), authz (issue 4:
benchmarks/authz_bench.py), server (issue 5: benchmarks/server_bench.py,
keyledger serve and moto_server on 127.0.0.1), asym (issue 11:
benchmarks/asym_bench.py, Sign/Verify/GenerateMac/VerifyMac vs bare
cryptography and moto), envelope (issue 14: benchmarks/envelope_bench.py,
encrypt-file/decrypt-file MB/s vs the AWS Encryption SDK alone).

Only an unmodified full run writes benchmarks/results.json and RESULTS.md;
a quick, partial (--only) or resized (--threads, --replay-events) run goes to
--out or a temporary file, so a smoke run never replaces measured numbers.
The exit status is 1 if a case that is not optional (moto) failed; a
benchmark goal missed (authorization under 0.8x) is reported, not a failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import cases, harness, report
from benchmarks import groups as module_groups

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"
THREADS = 32
REPLAY_EVENTS = {"full": 1_000_000, "quick": 10_000}
REPLAY_REPEATS = {"full": 3, "quick": 1}
GROUPS = ("aes", "lmdb", "floor", "moto", "embedded", "replay", "audit", "authz", "server", "asym", "envelope")
GROUPS += ("ssm",)  # issue 14: benchmarks/ssm_bench.py (the parameter store)
GROUPS += ("cluster",)  # issue 15: benchmarks/cluster_bench.py (nodes on etcd; skipped without etcd)
MODULE_GROUPS = tuple(module_groups.RUNNERS)  # measured by their own modules, after the rest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: short runs, 10,000 replay events; never writes benchmarks/results.json")
    p.add_argument("--out", type=Path, help="results JSON to write (or, with --write-md, to read)")
    p.add_argument("--write-md", action="store_true",
                   help="render the Markdown from results.json (or --out) and exit without measuring")
    p.add_argument("--md", type=Path, help=f"Markdown to write (default {RESULTS_MD.relative_to(HERE.parent)})")
    p.add_argument("--only", help=f"comma-separated groups to run: {', '.join(GROUPS)}")
    p.add_argument("--threads", type=int, default=THREADS, help="threads of the many-thread cases (default 32)")
    p.add_argument("--replay-events", type=int, help="records in the replay log (default 1,000,000; quick 10,000)")
    p.add_argument("--tmpdir", help="where the temporary ledgers go (default: the system temp directory); "
                                    "durable numbers depend on its disk")
    args = p.parse_args(argv)
    if args.only:
        args.only = {g.strip() for g in args.only.split(",") if g.strip()}
        unknown = args.only - set(GROUPS)
        if unknown:
            p.error(f"unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    if args.threads < 2:
        p.error("--threads must be at least 2 (the single-thread cases always run)")
    if args.replay_events is not None and args.replay_events < 100:
        p.error("--replay-events must be at least 100")
    return args


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def write_md(args: argparse.Namespace) -> int:
    source = args.out or RESULTS_JSON
    target = args.md or RESULTS_MD
    try:
        doc = report.load_json(source)
    except (OSError, ValueError) as exc:
        print(f"cannot read {source}: {exc}", file=sys.stderr)
        return 2
    if doc.get("mode") != "full" and _same(target, RESULTS_MD):
        print(f"{source} holds a {doc.get('mode')} run; {RESULTS_MD.name} holds full runs only "
              "(give --md PATH to render it elsewhere)", file=sys.stderr)
        return 2
    report.write_atomic(target, report.render_markdown(doc))
    print(f"wrote {target}")
    return 0


def _outcome(entry: dict[str, Any]) -> str:
    if "skipped" in entry:
        return f"skipped: {entry['skipped']}"
    if "error" in entry and "value" not in entry:
        return f"FAILED: {entry['error']}"
    unit, value = entry["unit"], entry["value"]
    text = f"{report.fmt_ratio(value)}" if unit == "ratio" else f"{report.fmt_rate(value)} {unit}"
    extra = entry.get("extra", {})
    if "p50_ms" in extra:
        text += f", p50 {extra['p50_ms']:.2f} ms, p99 {extra['p99_ms']:.2f} ms"
    ratios = [f"{k} {v:.2f}" for k, v in extra.items() if k.startswith("vs_") and isinstance(v, float)]
    if ratios:  # a module group's own ratios (asym: vs_bare, vs_moto; envelope: vs_esdk)
        text += f" ({', '.join(ratios)})"
    if "error" in entry:
        text += f" (FAILED: {entry['error']})"
    return text


def _progress(i: int, total: int, entry: dict[str, Any]) -> None:
    threads = entry["threads"]
    if entry["group"] in ("server", "server-moto"):
        where = f"{threads} concurrent" if threads else ""
    elif entry["group"] in ("aes", "lmdb", "floor", "moto", "embedded"):
        where = f"{threads} thread{'s' if threads > 1 else ''}"
    else:
        where = ""
    counter = f"[{i:>2}/{total}]" if total else f"[{entry['group']}]"
    print(f"{counter} {entry['label']}{', ' + where if where else ''}: {_outcome(entry)}",
          file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_md:
        return write_md(args)
    mode = "quick" if args.quick else "full"
    standard = mode == "full" and not args.only and args.threads == THREADS and args.replay_events is None
    if args.out is not None:
        out = args.out
    elif standard:
        out = RESULTS_JSON
    else:
        out = Path(tempfile.gettempdir()) / f"keyledger-bench-{mode}-{os.getpid()}.json"
    if not standard and (_same(out, RESULTS_JSON) or (args.md and _same(args.md, RESULTS_MD))):
        print(f"{RESULTS_JSON.name} and {RESULTS_MD.name} hold unmodified full runs only; "
              "give another --out / --md", file=sys.stderr)
        return 2
    plan = harness.QUICK if args.quick else harness.FULL
    groups = args.only or set(GROUPS)
    replay_events = args.replay_events or REPLAY_EVENTS[mode]
    tmp_parent = args.tmpdir or tempfile.gettempdir()

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="keyledger-bench-", dir=tmp_parent) as root:
        machine = report.machine_info(tmp_parent)
        value_bytes = cases.record_value_bytes(root)
        todo = [c for c in cases.throughput_cases(root, threads=args.threads, value_bytes=value_bytes)
                if c.group in groups]
        estimate = sum(plan.case_seconds() for c in todo if not c.skip)
        later = [g for g in MODULE_GROUPS if g in groups]
        print(f"{mode} run: {len(todo)} throughput cases (about {estimate / 60:.1f} min of measuring)"
              + (f", then replay over {replay_events:,} records" if "replay" in groups else "")
              + (f", then {', '.join(later)}" if later else ""),
              file=sys.stderr, flush=True)
        started = time.perf_counter()
        group_seconds: dict[str, float] = {}
        for i, case in enumerate(todo, 1):
            t0 = time.perf_counter()
            entry = harness.run_case(case, plan)
            results.append(entry)
            group_seconds[case.group] = group_seconds.get(case.group, 0.0) + time.perf_counter() - t0
            _progress(i, len(todo), entry)
        if "replay" in groups:
            t0 = time.perf_counter()
            results += cases.replay_results(root, replay_events, repeats=REPLAY_REPEATS[mode],
                                            progress=lambda e: _progress(0, 0, e))
            group_seconds["replay"] = time.perf_counter() - t0
        module_settings: dict[str, Any] = {}
        for name in later:
            found, module_settings[name], group_seconds[name] = module_groups.run_group(
                name, quick=args.quick, tmpdir=root, progress=lambda e: _progress(0, 0, e))
            results += found
        elapsed = time.perf_counter() - started
    machine["load_average_end"] = report.load_average()
    doc = {
        "schema": report.SCHEMA,
        "mode": mode,
        "machine": machine,
        "settings": {"warmup": plan.warmup, "duration": plan.duration, "repeats": plan.repeats,
                     "threads": args.threads, "sizes": list(cases.SIZES), "context": cases.CONTEXT,
                     "record_value_bytes": value_bytes, "replay_events": replay_events,
                     "replay_repeats": REPLAY_REPEATS[mode], "groups": sorted(groups),
                     **module_settings},
        "elapsed_seconds": elapsed,
        "group_seconds": group_seconds,
        "results": results,
    }
    report.attach_ratios(doc)
    report.write_json(doc, out)
    print(report.render_table(doc))
    print(f"\nwrote {out}", file=sys.stderr)
    if standard or args.md:
        md = args.md or RESULTS_MD
        report.write_atomic(md, report.render_markdown(doc))
        print(f"wrote {md}", file=sys.stderr)
    failed = [r["id"] for r in results if "error" in r and not r.get("optional")]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
