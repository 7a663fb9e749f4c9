"""SIGKILL at random moments: nothing acknowledged is ever lost.

A child process opens the ledger in `durable` mode and appends from several
threads (Encrypt, CreateKey, RotateKeyOnDemand). Only after a call has
returned does it write an acknowledgement line to a side file. The parent
kills it with SIGKILL at a random moment, reopens the ledger and checks that
every acknowledged request is in the log, the chain verifies up to the
stored head, everything earlier rounds saw is still there, `replay.check`
passes, acknowledged ciphertexts still decrypt, and the ledger keeps
working. Several rounds reuse one ledger, so later rounds append to a log
that has already survived kills.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import keyledger
from keyledger import events as ev
from keyledger.projections import replay
from chainkit import chain_hashes as verify_chain

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 8

CHILD = r"""
import base64, hashlib, os, random, sys, threading
import keyledger
from keyledger.errors import LimitExceededException

home, ack_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
kms = keyledger.open(home, create=True, durability="durable")
fd = os.open(ack_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

def ack(*fields):
    # one write(2) per line, only after the call returned
    os.write(fd, (" ".join(fields) + "\n").encode())

def b64(data):
    return base64.b64encode(data).decode()

keys = [e.key_id for e in kms.list_keys(limit=1000).keys]
first = kms.create_key(description="crash round").key_metadata.key_id
ack("key", first)
keys.append(first)
lock = threading.Lock()
print("ready", flush=True)

def worker(n):
    rnd = random.Random(seed * 100 + n)
    while True:
        with lock:
            key_id = rnd.choice(keys)
        roll = rnd.random()
        if roll < 0.75:
            plaintext = rnd.randbytes(rnd.randint(1, 1024))
            context = {"thread": str(n)}
            blob = kms.encrypt(key_id, plaintext, encryption_context=context).ciphertext_blob
            ack("enc", hashlib.sha256(blob).hexdigest(), b64(blob), b64(plaintext), str(n))
        elif roll < 0.9:
            new = kms.create_key().key_metadata.key_id
            with lock:
                keys.append(new)
            ack("key", new)
        else:
            try:
                kms.rotate_key_on_demand(key_id)
            except LimitExceededException:
                continue
            ack("rot", key_id)

threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""

# Crash injection at one exact point: the first open of a new ledger dies
# while it writes its n-th 32-byte secret file (1: root.key, 2: checkpoint.key).
CHILD_DIES_WRITING_A_KEY_FILE = r"""
import os, signal, sys
nth, writes, real_write = int(sys.argv[2]), [], os.write
def write(fd, data):
    if len(data) == 32:
        writes.append(fd)
        if len(writes) == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_write(fd, data)
os.write = write
import keyledger
keyledger.open(sys.argv[1], create=True, durability="durable")
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def acknowledged(path: Path) -> list[list[str]]:
    """Complete ack lines only: a line the kill cut short was never an ack."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return [line.split(" ") for line in complete.splitlines()]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def run_and_kill(home: Path, acks: Path, rnd: random.Random, early: bool) -> None:
    """Start the child and SIGKILL it: `early` anywhere in its start-up
    (opening, first CreateKey), else while its threads are appending."""
    seed = rnd.randrange(1 << 30)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(acks), str(seed)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        if early:
            time.sleep(rnd.uniform(0.0, 0.6))
        else:
            ready, _, _ = select.select([child.stdout], [], [], 60)
            assert ready and child.stdout.readline() == b"ready\n", "the child did not start"
            already = len(acknowledged(acks))
            # kill while appends are in flight: after a first new ack, at a random moment
            wait_for(lambda: len(acknowledged(acks)) > already or child.poll() is not None, 60,
                     "the child's first acknowledgement")
            time.sleep(rnd.uniform(0.0, 1.5))
        assert child.poll() is None, "the child died on its own"
    except AssertionError as exc:
        child.kill()
        raise AssertionError(f"{exc}: {child.communicate()[1].decode()[-2000:]}") from None
    child.kill()  # SIGKILL
    child.communicate()
    assert child.returncode == -signal.SIGKILL


def test_sigkill_loses_no_acknowledged_request(tmp_path):
    seed = int.from_bytes(os.urandom(4), "big")
    rnd = random.Random(seed)
    home, acks = tmp_path / "ledger", tmp_path / "acks"
    survived: list[bytes] = []  # record hashes seen after the previous round
    late_rounds, total_encrypts = 0, 0
    for round_ in range(ROUNDS):
        early = rnd.random() < 0.25
        late_rounds += not early
        run_and_kill(home, acks, rnd, early)
        where = f"(seed {seed}, round {round_})"
        kms = keyledger.open(home, create=True, durability="durable")  # may finish an init cut short
        try:
            with kms.store.snapshot() as snap:
                hashes = verify_chain(snap)
                report = replay.check(snap)
                assert report.ok, (where, report.chain_error, report.differences)
                records = list(snap.records())
            # the log only ever grows: earlier rounds' records are all still there
            assert hashes[: len(survived)] == survived, f"earlier records changed {where}"
            survived = hashes

            digests = {r.event.ciphertext_digest.hex() for r in records if isinstance(r.event, ev.Encrypted)}
            created = {r.event.key_id for r in records if isinstance(r.event, ev.KeyCreated)}
            on_demand = Counter(r.event.key_id for r in records
                                if isinstance(r.event, ev.KeyRotated) and r.event.rotation_type == "ON_DEMAND")
            lines = acknowledged(acks)
            rotations_acked = Counter(fields[1] for fields in lines if fields[0] == "rot")
            encrypts = [fields for fields in lines if fields[0] == "enc"]
            total_encrypts = len(encrypts)
            for fields in lines:
                if fields[0] == "enc":
                    assert fields[1] in digests, f"acknowledged Encrypt {fields[1]} is missing {where}"
                elif fields[0] == "key":
                    assert fields[1] in created, f"acknowledged CreateKey {fields[1]} is missing {where}"
            for key_id, count in rotations_acked.items():
                assert on_demand[key_id] >= count, f"acknowledged rotations of {key_id} are missing {where}"

            # acknowledged ciphertexts still decrypt (the KEK rows committed with them)
            for _, digest, blob, plaintext, thread in rnd.sample(encrypts, min(8, len(encrypts))):
                blob = base64.b64decode(blob)
                assert hashlib.sha256(blob).hexdigest() == digest
                got = kms.decrypt(blob, encryption_context={"thread": thread}).plaintext
                assert got == base64.b64decode(plaintext)

            # and the ledger keeps working
            key_id = kms.create_key().key_metadata.key_id
            blob = kms.encrypt(key_id, b"after the crash").ciphertext_blob
            assert kms.decrypt(blob).plaintext == b"after the crash"
            with kms.store.snapshot() as snap:
                survived = verify_chain(snap)
                assert replay.check(snap).ok
        finally:
            kms.close()
    assert total_encrypts >= late_rounds  # every late kill came after at least one new ack


@pytest.mark.parametrize("nth", [1, 2], ids=["root.key", "checkpoint.key"])
def test_sigkill_while_writing_a_key_file(tmp_path, nth):
    """A first open killed while it writes the root key (or the checkpoint
    signing key) must not leave a ledger that can never open again (an
    empty or short key file)."""
    home = tmp_path / "ledger"
    child = subprocess.run([sys.executable, "-c", CHILD_DIES_WRITING_A_KEY_FILE, str(home), str(nth)],
                           capture_output=True, env=_env(), timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    with keyledger.open(home, create=True, durability="durable") as kms:  # init, run again
        key_id = kms.create_key().key_metadata.key_id
        blob = kms.encrypt(key_id, b"still usable").ciphertext_blob
    with keyledger.open(home, durability="durable") as kms:
        assert kms.decrypt(blob).plaintext == b"still usable"
        with kms.store.snapshot() as snap:
            verify_chain(snap)
            assert replay.check(snap).ok
