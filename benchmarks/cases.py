"""The cases: keyledger embedded, and the baselines it is measured against.

Throughput cases (ops/s), each a `Case` whose `setup` is a context manager
yielding an operation factory for `harness.measure_throughput`:

- `embedded.<mode>.<op>.<size>.t<threads>`: `KeyLedger.encrypt` / `decrypt`
  on a fresh ledger in `relaxed` or `durable` mode, 1 thread or N threads
  sharing one KeyLedger (group commit batches them).
- `aes.<op>.<size>`: cryptography's AESGCM on the same plaintext and an AAD
  as long as keyledger's (header + canonical context); one AESGCM object,
  a fresh random nonce per encryption. The floor of the crypto alone.
- `lmdb.put.nosync` / `lmdb.put.sync`: a bare LMDB environment, one
  appended put of a record-sized value per write transaction, without and
  with a synced commit. The floor of one write per request.
- `moto.<op>.<size>.t<threads>`: moto's in-process KMS through a boto3
  client under `mock_aws`, the same calls and encryption context.
- `floor.<op>.32`: the floor pipeline (benchmarks/floor.py): per-message
  SP 800-108 key, AES-GCM, one record of Encrypt's shape, the SHA-256
  chain, one LMDB put per write transaction, no sync. Issue 13's yardstick
  for embedded Encrypt / Decrypt.
- `embedded.durable.<op>.32.t64`: issue 13's many-thread case, added when
  `--threads` is not already 64.

The replay case (`replay_suite`) builds a log of realistic records, then
times a raw scan of it, the chain verification with decoding, and the full
`projections.replay.check`.

This package is the one place outside `ledger/store.py` and `ledger/crypto.py`
that imports `lmdb` and `cryptography.hazmat`: the baselines need the bare
libraries. The imports are local to the baseline cases.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any

import keyledger
from keyledger import crypto
from keyledger import events as ev
from keyledger.projections import replay

from benchmarks.harness import OpFactory, describe_error, measure_once, result

CONTEXT = {"purpose": "bench", "tenant": "acme"}
SIZES = (32, 4096)
OPS = ("encrypt", "decrypt")
MODES = ("relaxed", "durable")
DECRYPT_POOL = 64  # distinct ciphertexts each decrypting thread cycles through
TARGET_THREADS = 64  # issue 13's durable scaling is measured at 64 threads
FLOOR_SIZE = 32  # issue 13's embedded target is Encrypt/Decrypt of 32 B
_MOTO_REGION = "us-east-1"


@dataclass(frozen=True)
class Case:
    id: str
    group: str  # "aes" | "lmdb" | "floor" | "embedded" | "moto"
    label: str
    setup: Callable[[], AbstractContextManager[OpFactory]]
    threads: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    optional: bool = False  # a failure is reported, and does not fail the run
    skip: str | None = None  # why the case cannot run here (not a failure)


def size_label(size: int) -> str:
    return f"{size // 1024} KB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


# -- keyledger embedded -----------------------------------------------------

@contextmanager
def _embedded(root: str, mode: str, op: str, size: int) -> Iterator[OpFactory]:
    with tempfile.TemporaryDirectory(dir=root, prefix=f"kl-{mode}-") as home, \
            keyledger.open(home, create=True, durability=mode) as kms:
        key_id = kms.create_key(description="benchmark").key_metadata.key_id
        plaintext = os.urandom(size)
        if op == "encrypt":
            def make(_: int) -> Callable[[], Any]:
                return lambda: kms.encrypt(key_id, plaintext, encryption_context=CONTEXT)
        else:
            blobs = [kms.encrypt(key_id, plaintext, encryption_context=CONTEXT).ciphertext_blob
                     for _ in range(DECRYPT_POOL)]
            if kms.decrypt(blobs[0], encryption_context=CONTEXT).plaintext != plaintext:
                raise AssertionError("keyledger did not decrypt its own ciphertext")

            def make(i: int) -> Callable[[], Any]:
                start = i % DECRYPT_POOL
                nxt = itertools.cycle(blobs[start:] + blobs[:start]).__next__
                return lambda: kms.decrypt(nxt(), encryption_context=CONTEXT)
        yield make


# -- baselines --------------------------------------------------------------

def _aad_bytes() -> int:
    return crypto.HEADER_BYTES + len(crypto.canonical_context(CONTEXT))


@contextmanager
def _aes_gcm(op: str, size: int) -> Iterator[OpFactory]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(os.urandom(32))
    plaintext, aad = os.urandom(size), os.urandom(_aad_bytes())
    if op == "encrypt":
        def make(_: int) -> Callable[[], Any]:
            return lambda: aead.encrypt(os.urandom(crypto.NONCE_BYTES), plaintext, aad)
    else:
        nonce = os.urandom(crypto.NONCE_BYTES)
        sealed = aead.encrypt(nonce, plaintext, aad)

        def make(_: int) -> Callable[[], Any]:
            return lambda: aead.decrypt(nonce, sealed, aad)
    yield make


@contextmanager
def _lmdb_put(root: str, value_size: int, sync: bool) -> Iterator[OpFactory]:
    import lmdb

    with tempfile.TemporaryDirectory(dir=root, prefix="lmdb-") as path:
        env = lmdb.open(path, map_size=8 << 30, sync=sync, metasync=True)
        try:
            value = os.urandom(value_size)
            seq = itertools.count()

            def make(_: int) -> Callable[[], Any]:
                def put() -> None:
                    with env.begin(write=True) as txn:
                        txn.put(next(seq).to_bytes(8, "big"), value, append=True)
                return put
            yield make
        finally:
            env.close()


@contextmanager
def _floor(root: str, op: str, size: int) -> Iterator[OpFactory]:
    from benchmarks.floor import Floor

    with tempfile.TemporaryDirectory(dir=root, prefix="floor-") as path, Floor(path) as floor:
        plaintext = os.urandom(size)
        if op == "encrypt":
            def make(_: int) -> Callable[[], Any]:
                return lambda: floor.encrypt(plaintext, CONTEXT)
        else:
            blobs = [floor.encrypt(plaintext, CONTEXT) for _ in range(DECRYPT_POOL)]
            if floor.decrypt(blobs[0], CONTEXT) != plaintext:
                raise AssertionError("the floor pipeline did not decrypt its own ciphertext")

            def make(_: int) -> Callable[[], Any]:
                nxt = itertools.cycle(blobs).__next__
                return lambda: floor.decrypt(nxt(), CONTEXT)
        yield make


@contextmanager
def _moto(op: str, size: int) -> Iterator[OpFactory]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("kms", region_name=_MOTO_REGION)
        key_id = client.create_key(Description="benchmark")["KeyMetadata"]["KeyId"]
        plaintext = os.urandom(size)
        if op == "encrypt":
            def make(_: int) -> Callable[[], Any]:
                return lambda: client.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=CONTEXT)
        else:
            blobs = [client.encrypt(KeyId=key_id, Plaintext=plaintext,
                                    EncryptionContext=CONTEXT)["CiphertextBlob"] for _ in range(8)]
            if client.decrypt(CiphertextBlob=blobs[0], EncryptionContext=CONTEXT)["Plaintext"] != plaintext:
                raise AssertionError("moto did not decrypt its own ciphertext")

            def make(i: int) -> Callable[[], Any]:
                nxt = itertools.cycle(blobs[i % len(blobs):] + blobs[:i % len(blobs)]).__next__
                return lambda: client.decrypt(CiphertextBlob=nxt(), EncryptionContext=CONTEXT)
        yield make


def record_value_bytes(root: str) -> int:
    """Stored bytes (prev_hash, hash, canonical record) of one Encrypt record,
    as keyledger writes it: the value size the LMDB baseline puts."""
    with tempfile.TemporaryDirectory(dir=root, prefix="kl-size-") as home, \
            keyledger.open(home, create=True, durability="relaxed") as kms:
        key_id = kms.create_key().key_metadata.key_id
        kms.encrypt(key_id, b"x" * 32, encryption_context=CONTEXT)
        with kms.store.snapshot() as snap:
            last = snap.head().seq - 1
            raw = next(snap.raw_records(last, last + 1))
        if not isinstance(ev.decode(raw.body).event, ev.Encrypted):
            raise AssertionError("the last record is not the Encrypt")
        return len(raw.prev_hash) + len(raw.hash) + len(raw.body)


def moto_missing() -> str | None:
    missing = [name for name in ("boto3", "moto") if find_spec(name) is None]
    return f"{' and '.join(missing)} not installed (pip install -e '.[bench]')" if missing else None


def throughput_cases(root: str, *, threads: int, value_bytes: int) -> list[Case]:
    """Every ops/s case, baselines first."""
    out: list[Case] = []
    for op in OPS:
        for size in SIZES:
            out.append(Case(f"aes.{op}.{size}", "aes", f"AES-GCM {op} {size_label(size)}",
                            lambda op=op, size=size: _aes_gcm(op, size),
                            params={"op": op, "size": size}))
    for sync in (False, True):
        name = "sync" if sync else "nosync"
        out.append(Case(f"lmdb.put.{name}", "lmdb",
                        f"LMDB put/txn {'synced' if sync else 'no sync'} ({value_bytes} B)",
                        lambda sync=sync: _lmdb_put(root, value_bytes, sync),
                        params={"sync": sync, "value_bytes": value_bytes}))
    for op in OPS:
        out.append(Case(f"floor.{op}.{FLOOR_SIZE}", "floor", f"floor pipeline {op} {size_label(FLOOR_SIZE)}",
                        lambda op=op: _floor(root, op, FLOOR_SIZE), params={"op": op, "size": FLOOR_SIZE}))
    skip = moto_missing()
    for n in (1, threads):
        for op in OPS:
            for size in SIZES:
                # moto is not built for concurrency: its many-thread numbers are a bonus
                out.append(Case(f"moto.{op}.{size}.t{n}", "moto", f"moto {op} {size_label(size)}",
                                lambda op=op, size=size: _moto(op, size), threads=n,
                                params={"op": op, "size": size}, optional=n > 1, skip=skip))
    for mode in MODES:
        for n in (1, threads):
            for op in OPS:
                for size in SIZES:
                    out.append(Case(f"embedded.{mode}.{op}.{size}.t{n}", "embedded",
                                    f"keyledger {mode} {op} {size_label(size)}",
                                    lambda mode=mode, op=op, size=size: _embedded(root, mode, op, size),
                                    threads=n, params={"mode": mode, "op": op, "size": size}))
    if threads != TARGET_THREADS:
        for op in OPS:
            out.append(Case(f"embedded.durable.{op}.{FLOOR_SIZE}.t{TARGET_THREADS}", "embedded",
                            f"keyledger durable {op} {size_label(FLOOR_SIZE)}",
                            lambda op=op: _embedded(root, "durable", op, FLOOR_SIZE), threads=TARGET_THREADS,
                            params={"mode": "durable", "op": op, "size": FLOOR_SIZE}))
    return out


# -- replay -----------------------------------------------------------------

_PRINCIPALS = 4
_TENANTS = 97


def build_log(kms: keyledger.KeyLedger, events: int, *, keys: int = 8, batch: int = 10_000,
              rotations: int = 40) -> int:
    """Fill a fresh ledger with `events` realistic records (a few more if
    `events` is tiny) and return how many the log holds. Keys, aliases, rotation settings and on-demand rotations go
    through the service; the bulk (Encrypt 55%, Decrypt 40%, GenerateDataKey
    5%, each its own request, mostly under the current key version, Decrypt
    also under older ones) is appended `batch` requests per `Store.submit`."""
    key_ids = [kms.create_key(description=f"bench key {i}").key_metadata.key_id for i in range(keys)]
    for i, key_id in enumerate(key_ids):
        kms.create_alias(f"alias/bench-{i}", key_id)
        if i % 2 == 0:
            kms.enable_key_rotation(key_id)
    versions = {key_id: 1 for key_id in key_ids}
    principals = [f"arn:aws:iam::{kms.account}:role/app-{i}" for i in range(_PRINCIPALS)]
    contexts = [{"purpose": "orders", "tenant": f"t{i:03d}"} for i in range(_TENANTS)]
    rotate_every = max(1, events // (rotations + 1))
    head = kms.store.head().seq
    bulk = max(0, events - head - rotations)
    done, rotated = 0, 0

    def requests(first: int, count: int, now: int) -> Callable[[Any], None]:
        current = dict(versions)

        def work(view: Any) -> None:
            for j in range(first, first + count):
                key_id = key_ids[j % keys]
                context = contexts[j % _TENANTS]
                digest = os.urandom(32)
                kind = j % 20
                if kind == 0:
                    event: ev.Event = ev.DataKeyGenerated(key_id, current[key_id], context, digest, 32, True)
                    operation = "GenerateDataKey"
                elif kind <= 8:
                    event = ev.Decrypted(key_id, 1 + j % current[key_id], context, digest)
                    operation = "Decrypt"
                else:
                    event = ev.Encrypted(key_id, current[key_id], context, digest)
                    operation = "Encrypt"
                view.append([event], operation=operation, principal=principals[j % _PRINCIPALS],
                            request_id=str(uuid.uuid4()), time=now + (j - first))
        return work

    while done < bulk:
        count = min(batch, bulk - done, rotate_every - done % rotate_every)
        kms.store.submit(requests(done, count, kms.now()))
        done += count
        if done % rotate_every == 0 and rotated < rotations:
            key_id = key_ids[rotated % keys]
            kms.rotate_key_on_demand(key_id)
            versions[key_id] += 1
            rotated += 1
    return kms.store.head().seq


@dataclass
class ReplayLog:
    kms: keyledger.KeyLedger
    records: int
    value_bytes_per_record: float
    file_bytes_per_record: float


@contextmanager
def replay_log(root: str, events: int) -> Iterator[tuple[ReplayLog, Callable[[], int]]]:
    """A relaxed ledger holding about `events` records; yields it with a
    function that builds it and returns the record count (for timing)."""
    with tempfile.TemporaryDirectory(dir=root, prefix="kl-replay-") as home, \
            keyledger.open(home, create=True, durability="relaxed") as kms:
        log = ReplayLog(kms, 0, 0.0, 0.0)

        def build() -> int:
            log.records = build_log(kms, events)
            return log.records
        yield log, build


def measure_log(log: ReplayLog) -> None:
    """Fill in the log's size per record (not timed)."""
    total = 0
    with log.kms.store.snapshot() as snap:
        for raw in snap.raw_records():
            total += len(raw.prev_hash) + len(raw.hash) + len(raw.body)
    log.value_bytes_per_record = total / log.records
    log.file_bytes_per_record = os.path.getsize(log.kms.store.file_path()) / log.records


def scan(log: ReplayLog) -> int:
    """Read every stored record (no hashing, no decoding)."""
    with log.kms.store.snapshot() as snap:
        n = sum(1 for _ in snap.raw_records())
    if n != log.records:
        raise AssertionError(f"scanned {n} records, expected {log.records}")
    return n


def verify(log: ReplayLog) -> int:
    """Check the hash chain and decode every record (no folding)."""
    report = replay.Report()
    with log.kms.store.snapshot() as snap:
        n = sum(1 for _ in replay.verified(snap.raw_records(), report))
    if report.chain_error is not None or n != log.records:
        raise AssertionError(f"chain verification failed: {report.chain_error}")
    return n


def check(log: ReplayLog) -> int:
    """The full `projections.replay.check`: chain, decode, fold, compare."""
    with log.kms.store.snapshot() as snap:
        report = replay.check(snap)
    if not report.ok or report.records != log.records:
        raise AssertionError(f"replay check failed: {report.chain_error} {report.differences[:3]}")
    return report.records


#: the replay measurements: id -> (label, function), in run order
REPLAY_STEPS: dict[str, tuple[str, Callable[[ReplayLog], int]]] = {
    "replay.scan": ("log scan (read records only)", scan),
    "replay.verify": ("verify chain + decode", verify),
    "replay.check": ("replay check (verify + fold + compare)", check),
}


def replay_results(root: str, events: int, *, repeats: int,
                   progress: Callable[[dict[str, Any]], None] = lambda _: None) -> list[dict[str, Any]]:
    """Build a log of about `events` records, then measure REPLAY_STEPS over it."""
    out: list[dict[str, Any]] = []

    def done(entry: dict[str, Any]) -> None:
        out.append(entry)
        progress(entry)

    build_label = "build the log (batches of 10,000 via Store.submit, relaxed)"
    try:
        with replay_log(root, events) as (log, build):
            built = measure_once(build, repeats=1)
            measure_log(log)
            built.extra = {"value_bytes_per_record": log.value_bytes_per_record,
                           "file_bytes_per_record": log.file_bytes_per_record}
            params = {"events": log.records}
            done(result("replay.build", "replay", build_label, params=params, measurement=built))
            for step, (label, fn) in REPLAY_STEPS.items():
                try:
                    m = measure_once(lambda fn=fn: fn(log), repeats=repeats)
                except Exception as exc:  # recorded; fails the run
                    traceback.print_exc()
                    done(result(step, "replay", label, params=params, error=describe_error(exc)))
                else:
                    done(result(step, "replay", label, params=params, measurement=m))
    except Exception as exc:  # the log could not be built
        traceback.print_exc()
        done(result("replay.build", "replay", build_label, params={"events": events},
                    error=describe_error(exc)))
    return out
