"""The buffered public random source (request ids, salts, nonces) and the
request id's shape (issue 13): no two draws repeat bytes across threads or a
fork, and key material never comes from it."""

from __future__ import annotations

import os
import threading
import uuid

import keyledger
from keyledger import crypto
from keyledger.events import from_us, to_us
from keyledger.service.request import new_request_id, public_random

from datetime import datetime, timezone


def test_request_ids_are_version_4_uuids() -> None:
    seen = set()
    for _ in range(2000):
        rid = new_request_id()
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid and parsed.version == 4 and parsed.variant == uuid.RFC_4122
        seen.add(rid)
    assert len(seen) == 2000


def test_threads_never_share_bytes() -> None:
    out: list[list[bytes]] = [[] for _ in range(8)]

    def draw(i: int) -> None:
        out[i] = [public_random(28) for _ in range(500)]  # several refills each
    threads = [threading.Thread(target=draw, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [d for chunk in out for d in chunk]
    assert len(set(flat)) == len(flat) and all(len(d) == 28 for d in flat)
    assert len(public_random(10_000)) == 10_000  # bigger than the buffer: straight from os.urandom


def test_a_forked_child_draws_fresh_bytes() -> None:
    public_random(1)  # this thread has a buffer with bytes left
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next draw
        os.write(w, public_random(32))
        os._exit(0)
    os.close(w)
    child = os.read(r, 32)
    os.close(r)
    os.waitpid(pid, 0)
    parent = public_random(32)
    assert len(child) == 32 and child != parent


def test_from_us_round_trips() -> None:
    for us in (0, 1, 999_999, 1_700_000_000_123_456, 4_102_444_800_000_000):
        when = from_us(us)
        assert when.tzinfo is not None and to_us(when) == us
        assert when == datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc).replace(microsecond=us % 1_000_000)


def test_salts_and_nonces_are_fresh_and_ciphertexts_open(tmp_path: object) -> None:
    with keyledger.open(str(tmp_path), create=True, durability="relaxed") as kms:
        key_id = kms.create_key().key_metadata.key_id
        blobs = [kms.encrypt(key_id, b"same plaintext", encryption_context={"a": "b"}).ciphertext_blob
                 for _ in range(300)]
        heads = {b[crypto.HEADER_BYTES - crypto.SALT_BYTES - crypto.NONCE_BYTES:crypto.HEADER_BYTES] for b in blobs}
        assert len(heads) == len(blobs)
        for blob in blobs[::37]:
            assert kms.decrypt(blob, encryption_context={"a": "b"}).plaintext == b"same plaintext"
        request_ids = [rec.request_id for rec in kms.store.records()]
        assert len(set(request_ids)) == len(request_ids)
