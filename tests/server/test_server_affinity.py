"""`keyledger serve --cpus`: the server keeps its threads on one CPU by
default (server/affinity.py), on the CPUs it is given, or where the kernel
puts them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

import keyledger
from keyledger.server import affinity
from serverkit import REGION, Process

linux_only = pytest.mark.skipif(not affinity.supported() or not os.path.isdir("/proc/self/task"),
                                reason="CPU affinity is Linux's")

STAT = """cpu  300 0 300 5000 10 0 0 0 0 0
cpu0 100 0 100 2500 5 0 0 0 0 0
cpu1 200 0 200 2500 5 0 0 0 0 0
intr 12345
"""


def _stat(busy: dict[int, int], idle: int = 1000) -> str:
    lines = [f"cpu{n} {b} 0 0 {idle} 7 0 0 0 0 0" for n, b in sorted(busy.items())]
    return "cpu  0 0 0 0 0 0 0 0 0 0\n" + "\n".join(lines) + "\nctxt 99\n"


def test_parse_accepts_the_words_and_taskset_lists() -> None:
    assert affinity.parse("one") == "one"
    assert affinity.parse(" ALL ") == "all"
    assert affinity.parse("3") == frozenset({3})
    assert affinity.parse("0,2-4") == frozenset({0, 2, 3, 4})
    assert affinity.parse("5-5, 1") == frozenset({1, 5})


@pytest.mark.parametrize("spec", ["", "two", "-1", "1-", "4-2", "0,,1", "1.5", "0x1", "0-999999999999", "65536"])
def test_parse_refuses_anything_else(spec: str) -> None:
    with pytest.raises(ValueError):
        affinity.parse(spec)


def test_busy_ticks_leave_out_idle_and_iowait_and_the_total_line() -> None:
    assert affinity.busy_ticks(STAT) == {0: 200, 1: 400}


def test_least_busy_takes_the_cpu_that_did_least_between_the_samples() -> None:
    before = _stat({0: 100, 1: 100, 2: 100})
    after = _stat({0: 180, 1: 130, 2: 150})
    assert affinity.least_busy(before, after, frozenset({0, 1, 2}), salt=0) == 1
    assert affinity.least_busy(before, after, frozenset({0, 2}), salt=0) == 2  # only the allowed ones


def test_a_cpu_missing_from_a_sample_counts_as_busy() -> None:
    before = _stat({0: 100, 1: 100})
    after = _stat({0: 500})
    assert affinity.least_busy(before, after, frozenset({0, 1}), salt=1) == 0


@given(st.lists(st.integers(0, 50), min_size=1, max_size=8), st.integers(0, 10_000))
def test_ties_spread_by_salt_and_the_choice_is_always_a_least_busy_allowed_cpu(loads: list[int], salt: int) -> None:
    cpus = frozenset(range(len(loads)))
    before = _stat({n: 1000 for n in cpus})
    after = _stat({n: 1000 + load for n, load in enumerate(loads)})
    chosen = affinity.least_busy(before, after, cpus, salt)
    assert loads[chosen] == min(loads)
    tied = sorted(n for n in cpus if loads[n] == min(loads))
    assert chosen == tied[salt % len(tied)]  # servers started together (different pids) spread over the ties


@linux_only
def test_choose_all_leaves_placement_to_the_kernel_and_a_list_must_be_allowed() -> None:
    assert affinity.choose("all") is None
    allowed = frozenset(os.sched_getaffinity(0))
    assert affinity.choose(frozenset({min(allowed)})) == {min(allowed)}
    with pytest.raises(ValueError, match="may not run on CPU 4096"):
        affinity.choose(frozenset({4096}))
    one = affinity.choose("one")
    if len(allowed) == 1:
        assert one is None  # already on one CPU
    else:
        assert one is not None and len(one) == 1 and one <= allowed


@linux_only
def test_apply_places_every_thread_of_another_process_and_those_it_starts_later() -> None:
    cpu = max(os.sched_getaffinity(0))
    script = ("import threading, sys, time\n"
              "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
              "print('up', flush=True); sys.stdin.readline()\n"
              "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
              "print('again', flush=True); sys.stdin.readline()\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "up\n"
        affinity.apply(frozenset({cpu}), child.pid)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline() == "again\n"
        cpus = _threads_cpus(child.pid)
        assert len(cpus) == 3 and set(cpus) == {str(cpu)}
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(30) == 0
    finally:
        child.kill()


def _threads_cpus(pid: int) -> list[str]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            out += [line.split(":", 1)[1].strip() for line in f if line.startswith("Cpus_allowed_list")]
    return out


def _serve(home: Path, *options: str) -> Process:
    """A served ledger that has answered a request (so it is past start-up and stops cleanly)."""
    keyledger.open(home, create=True).close()
    server = Process("--home", str(home), "--auth", "none", "--access-log", "off", *options)
    boto3.client("kms", endpoint_url=server.url, region_name=REGION, aws_access_key_id="anything",
                 aws_secret_access_key="anything").create_key()
    return server


@linux_only
def test_serve_keeps_every_thread_on_one_cpu_by_default(tmp_path: Path) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    server = _serve(tmp_path / "ledger", "--durability", "relaxed")  # relaxed: a sync thread too
    try:
        cpus = _threads_cpus(server.proc.pid)
        [listening] = [e for e in server.events() if e["event"] == "listening"]
    finally:
        assert server.stop() == 0
    assert len(cpus) >= 3  # the event loop, the writer and the relaxed sync thread at least
    if len(allowed) == 1:
        assert listening["cpus"] == allowed
    else:
        assert len(listening["cpus"]) == 1 and listening["cpus"][0] in allowed
    assert set(cpus) == {",".join(map(str, listening["cpus"]))}  # every thread, started before or after


@linux_only
def test_serve_cpus_all_and_a_list(tmp_path: Path) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    server = _serve(tmp_path / "a", "--cpus", "all")
    try:
        [listening] = [e for e in server.events() if e["event"] == "listening"]
    finally:
        assert server.stop() == 0
    assert listening["cpus"] == allowed
    last = allowed[-1]
    server = _serve(tmp_path / "b", "--cpus", str(last))
    try:
        cpus = _threads_cpus(server.proc.pid)
        [listening] = [e for e in server.events() if e["event"] == "listening"]
    finally:
        assert server.stop() == 0
    assert listening["cpus"] == [last] and set(cpus) == {str(last)}


def test_serve_refuses_a_cpu_it_may_not_use_or_a_bad_spec(tmp_path: Path) -> None:
    keyledger.open(tmp_path / "ledger", create=True).close()
    for spec, said in (("4096", "may not run on CPU 4096" if affinity.supported() else "not supported"),
                       ("some", "is not 'one', 'all' or a CPU list")):
        done = subprocess.run([sys.executable, "-m", "keyledger.server", "serve", "--home", str(tmp_path / "ledger"),
                               "--auth", "none", "--port", "0", "--cpus", spec],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "--cpus" in done.stderr and said in done.stderr, done.stderr
