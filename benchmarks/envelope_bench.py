"""Envelope encryption of files (issue 14's benchmark): `encrypt_file` and
`decrypt_file` (what `keyledger encrypt-file` / `decrypt-file` call) in MB/s
(10^6 bytes/s) for a 100 MB file (quick: 8 MB), next to the AWS Encryption
SDK alone with a raw AES-256 master key (no KMS, no ledger) in the same run:
the same suite (AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384), frame length,
read size and file handling (a temporary file beside the output, fsync'd and
renamed; decrypting, moved into place after the signature verified). The
ratio keyledger/ESDK is what the ledger adds: one GenerateDataKey or Decrypt
record per file (durable, synced) and keyledger's wrapper; the goal is >= 0.9.

After one untimed round of each, runs alternate keyledger and the baseline
(ABBA...), so that a slow moment of a shared machine hits both; each side's
value is the median of its runs and the ratio the median of the pairs'
ratios. Both sides fsync their output, so a busy disk shows in both. Every run checks its output (the
decrypted file's SHA-256 equals the original's) outside the timing.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keyledger
from benchmarks import harness
from keyledger import envelope

FULL_BYTES = 100_000_000
QUICK_BYTES = 8_000_000
PAIRS = {"full": 5, "quick": 2}
MB = 1_000_000


def _make_file(path: Path, size: int) -> bytes:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            digest.update(block)
            left -= len(block)
        f.flush()
        os.fsync(f.fileno())  # its write-back must not land in the first timed run
    return digest.digest()


def _sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def _raw_provider() -> Any:
    """The ESDK's raw-key master key: a static AES-256 wrapping key, no KMS."""
    from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
    from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider

    class StaticKeyProvider(RawMasterKeyProvider):  # type: ignore[misc]
        provider_id = "keyledger-bench"

        def __init__(self, **kwargs: Any) -> None:
            self._key = os.urandom(32)

        def _get_raw_key(self, key_id: Any) -> Any:
            return WrappingKey(wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                               wrapping_key=self._key, wrapping_key_type=EncryptionKeyType.SYMMETRIC)

    provider = StaticKeyProvider()
    provider.add_master_key("bench-key")
    return provider


def _esdk_encrypt(provider: Any, src: Path, dst: Path) -> None:
    """The ESDK alone, reading and writing as keyledger does."""
    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy

    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    frame = envelope.DEFAULT_FRAME_LENGTH
    with open(src, "rb") as source, envelope._replacing(dst) as out, \
            client.stream(mode="e", source=source, key_provider=provider, frame_length=frame,
                          algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384) as stream:
        for chunk in iter(lambda: stream.read(frame), b""):
            out.write(chunk)


def _esdk_decrypt(provider: Any, src: Path, dst: Path) -> None:
    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import CommitmentPolicy

    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    with open(src, "rb") as source, envelope._replacing(dst) as out, \
            client.stream(mode="d", source=source, key_provider=provider) as stream:
        frame = stream.header.frame_length
        for chunk in iter(lambda: stream.read(frame), b""):
            out.write(chunk)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _measurement(size: int, seconds: list[float]) -> harness.Measurement:
    runs = [size / s / MB for s in seconds]
    return harness.Measurement(statistics.median(runs), runs, "MB/s", size * len(seconds), sum(seconds))


def run(quick: bool, *, tmpdir: str, progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """keyledger and ESDK-alone entries for encrypt and decrypt, the ratio
    keyledger/ESDK in the keyledger entry's extra (vs_esdk, with the pairs'
    ratios)."""
    mode = "quick" if quick else "full"
    size = QUICK_BYTES if quick else FULL_BYTES
    pairs = PAIRS[mode]
    results: list[dict[str, Any]] = []
    params = {"file_bytes": size, "frame_length": envelope.DEFAULT_FRAME_LENGTH,
              "algorithm": envelope.DEFAULT_ALGORITHM, "durability": "durable"}
    with tempfile.TemporaryDirectory(dir=tmpdir, prefix="kl-envelope-") as work:
        root = Path(work)
        src = root / "plain"
        digest = _make_file(src, size)
        provider = _raw_provider()
        with keyledger.open(root / "ledger", create=True) as kms:
            key = kms.create_key(description="envelope bench").key_metadata.arn
            kms.encrypt_bytes(key, b"warm up")
            sides: dict[str, Callable[[str], tuple[Callable[[], object], Callable[[], object]]]] = {
                "keyledger": lambda tag: (lambda: kms.encrypt_file(key, src, root / f"{tag}.enc"),
                                          lambda: kms.decrypt_file(root / f"{tag}.enc", root / f"{tag}.out")),
                "esdk": lambda tag: (lambda: _esdk_encrypt(provider, src, root / f"{tag}.enc"),
                                     lambda: _esdk_decrypt(provider, root / f"{tag}.enc", root / f"{tag}.out")),
            }
            times: dict[tuple[str, str], list[float]] = {}
            for side in sides:  # one untimed round each: imports, caches, the page cache of the source
                for step in sides[side](side):
                    step()
            for i in range(pairs):
                order = ("keyledger", "esdk") if i % 2 == 0 else ("esdk", "keyledger")
                for side in order:
                    encrypt, decrypt = sides[side](side)
                    times.setdefault((side, "encrypt"), []).append(_timed(encrypt))
                    times.setdefault((side, "decrypt"), []).append(_timed(decrypt))
                    if _sha256(root / f"{side}.out") != digest:
                        raise AssertionError(f"{side}: the decrypted file differs from the original")
                    for leftover in (root / f"{side}.enc", root / f"{side}.out"):
                        leftover.unlink()
        for op in ("encrypt", "decrypt"):
            mine = _measurement(size, times[("keyledger", op)])
            base = _measurement(size, times[("esdk", op)])
            paired = [b / m for m, b in zip(times[("keyledger", op)], times[("esdk", op)])]
            mine.extra["vs_esdk"] = statistics.median(paired)
            mine.extra["vs_esdk_pairs"] = paired
            entries = [harness.result(f"envelope.{op}_file.keyledger", "envelope",
                                      f"keyledger {op}-file {size / MB:.0f} MB", params=params, measurement=mine),
                       harness.result(f"envelope.{op}_file.esdk", "envelope",
                                      f"ESDK alone (raw key) {op} {size / MB:.0f} MB", params=params,
                                      measurement=base)]
            for entry in entries:
                progress(entry)
            results += entries
    return {"results": results, "settings": {"file_bytes": size, "pairs": pairs,
                                             "frame_length": envelope.DEFAULT_FRAME_LENGTH,
                                             "algorithm": envelope.DEFAULT_ALGORITHM, "durability": "durable"}}


if __name__ == "__main__":  # python -m benchmarks.envelope_bench [--quick]
    import sys

    out = run("--quick" in sys.argv, tmpdir=tempfile.gettempdir(), progress=lambda e: None)
    for e in out["results"]:
        ratio = e.get("extra", {}).get("vs_esdk")
        print(f"{e['label']:<40} {e['value']:8.1f} MB/s" + (f"  (keyledger/ESDK {ratio:.2f})" if ratio else ""))
