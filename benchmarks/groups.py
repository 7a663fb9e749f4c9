"""The groups measured by their own modules: `audit` (audit_bench, issue 3),
`authz` (authz_bench, issue 4), `server` (server_bench, issue 5), `asym`
(asym_bench, issue 11) and `envelope` (envelope_bench, issue 14).

Each runner returns (results, settings): entries in results.json's shape
(see `harness.result`), and what was run, for RESULTS.md. A module that
raises becomes one entry with "error" (not optional: a failure of keyledger
fails the run); what the module itself marks optional (moto) never does.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

from benchmarks.harness import describe_error

Progress = Callable[[dict[str, Any]], None]
Runner = Callable[..., tuple[list[dict[str, Any]], dict[str, Any]]]


def _normalize(entry: dict[str, Any], group: str) -> dict[str, Any]:
    """The fields the harness's table and progress lines rely on."""
    entry.setdefault("group", group)
    entry.setdefault("threads", 1)
    entry.setdefault("params", {})
    entry.setdefault("optional", False)
    return entry


def _failure(group: str, label: str, exc: BaseException) -> dict[str, Any]:
    traceback.print_exc()
    return _normalize({"id": group, "label": label, "threads": 0, "error": describe_error(exc)}, group)


def run_audit(*, quick: bool, tmpdir: str, progress: Progress) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from benchmarks import audit_bench

    out = audit_bench.run(quick, tmpdir=tmpdir, progress=lambda e: progress(_normalize(e, "audit")))
    return [_normalize(e, "audit") for e in out["results"]], out.get("settings", {})


def run_authz(*, quick: bool, tmpdir: str, progress: Progress) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from benchmarks import authz_bench

    entry = _normalize(authz_bench.run(quick, tmpdir=tmpdir), "authz")
    progress(entry)
    return [entry], dict(entry.get("params", {}))


def server_missing() -> str | None:
    missing = [name for name in ("boto3", "uvicorn") if find_spec(name) is None]
    return f"{' and '.join(missing)} not installed (pip install -e '.[bench]')" if missing else None


def run_server(*, quick: bool, tmpdir: str, progress: Progress) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Durable (the server's default) with both clients, moto and the bare
    uvicorn app alongside; in a full run also `relaxed` with the replay client
    (what the HTTP stack takes without a sync per commit), with its own moto
    cells measured in the same pass; then the server's memory after many
    requests (issue 13)."""
    from benchmarks import server_bench as sb

    settings = sb.QUICK if quick else sb.FULL
    passes = [{"durability": "durable", "clients": sb.CLIENTS, "moto": True, "bare": True}]
    if not quick:
        passes.append({"durability": "relaxed", "clients": ("replay",), "moto": True, "bare": False})
    rss_first, rss_total = sb.RSS_QUICK if quick else sb.RSS_FULL
    info = {"warmup": settings.warmup, "duration": settings.duration, "repeats": settings.repeats,
            "max_requests": settings.max_requests, "concurrency": list(sb.CONCURRENCY),
            "plaintext_bytes": sb.PLAINTEXT_BYTES, "host": sb.HOST,
            "passes": [{**p, "clients": list(p["clients"])} for p in passes],
            "rss_requests": [rss_first, rss_total]}
    skip = server_missing()
    if skip:
        entry = _normalize({"id": "server", "label": "keyledger serve over loopback", "skipped": skip}, "server")
        progress(entry)
        return [entry], info
    results: list[dict[str, Any]] = []
    for p in passes:
        try:
            results += sb.run(settings=settings, tmpdir=tmpdir, durability=p["durability"],
                              clients=p["clients"], moto=p["moto"], bare=p["bare"],
                              progress=lambda e: progress(_normalize(e, e.get("group", "server"))))
        except Exception as exc:  # keyledger's server did not start or its fixture failed
            entry = _failure("server", f"keyledger serve ({p['durability']})", exc)
            entry["id"] = f"server.{p['durability']}"
            progress(entry)
            results.append(entry)
    try:
        entry = sb.rss_growth(tmpdir=tmpdir, first=rss_first, total=rss_total)
    except Exception as exc:  # keyledger's server failed under the long run
        entry = _failure("server", "keyledger serve memory after many requests", exc)
        entry["id"] = "server.rss"
    progress(_normalize(entry, "server"))
    results.append(entry)
    sb.attach_ratios(results)
    return [_normalize(e, e.get("group", "server")) for e in results], info


def run_asym(*, quick: bool, tmpdir: str, progress: Progress) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from benchmarks import asym_bench

    out = asym_bench.run(quick, tmpdir=tmpdir, progress=lambda e: progress(_normalize(e, "asym")))
    return [_normalize(e, "asym") for e in out["results"]], out.get("settings", {})


def run_envelope(*, quick: bool, tmpdir: str, progress: Progress) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from benchmarks import envelope_bench

    out = envelope_bench.run(quick, tmpdir=tmpdir, progress=lambda e: progress(_normalize(e, "envelope")))
    return [_normalize(e, "envelope") for e in out["results"]], out.get("settings", {})


RUNNERS: dict[str, tuple[str, Runner]] = {
    "audit": ("the audit trail: append overhead, audit verify, a filtered audit log query", run_audit),
    "authz": ("authorization: Encrypt under a realistic key policy vs the default one", run_authz),
    "server": ("keyledger serve vs moto_server over loopback (boto3 and replay clients)", run_server),
    "asym": ("Sign/Verify (ECC_NIST_P256, RSA_2048) and GenerateMac/VerifyMac vs bare cryptography and moto",
             run_asym),
    "envelope": ("encrypt-file / decrypt-file MB/s vs the AWS Encryption SDK alone with a raw key", run_envelope),
}


def run_ssm(*, quick: bool, tmpdir: str, progress: Progress) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from benchmarks import ssm_bench

    out = ssm_bench.run(quick, tmpdir=tmpdir, progress=lambda e: progress(_normalize(e, "ssm")))
    return [_normalize(e, "ssm") for e in out["results"]], out.get("settings", {})


RUNNERS["ssm"] = ("the parameter store: GetParameter WithDecryption, embedded vs moto's SSM in process (issue 14)",
                  run_ssm)


def run_cluster(*, quick: bool, tmpdir: str, progress: Progress) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from benchmarks import cluster_bench

    out = cluster_bench.run(quick, tmpdir=tmpdir, progress=lambda e: progress(_normalize(e, "cluster")))
    return [_normalize(e, "cluster") for e in out["results"]], out.get("settings", {})


RUNNERS["cluster"] = ("a cluster on 3 etcd members: durable Encrypt with 1 and 3 nodes vs one node, failover "
                      "(issue 15)", run_cluster)


def run_group(name: str, *, quick: bool, tmpdir: str,
              progress: Progress) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    """(results, settings, seconds) of one group; an exception of the module
    becomes a failed entry."""
    label, runner = RUNNERS[name]
    start = time.perf_counter()
    try:
        results, settings = runner(quick=quick, tmpdir=tmpdir, progress=progress)
    except Exception as exc:  # recorded; fails the run
        entry = _failure(name, label, exc)
        progress(entry)
        results, settings = [entry], {}
    return results, settings, time.perf_counter() - start
