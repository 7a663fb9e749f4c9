"""GetParameter WithDecryption: the embedded parameter store vs moto's SSM
in process (issue 14's benchmark), in the same run.

- embedded.relaxed / embedded.durable: `kms.parameters.get_parameter(name,
  with_decryption=True)` of a 32-character SecureString under the AWS
  managed key, one thread. Each call authorizes ssm:GetParameter, decrypts
  through the ledger's own Decrypt (kms:ViaService, key policy, AES-GCM)
  and appends its records (Decrypted + ParametersRead) in one write
  transaction; durable syncs it.
- moto: `boto3.client("ssm").get_parameter(Name=..., WithDecryption=True)`
  under `mock_aws`, the same parameter. moto "encrypts" a SecureString by
  prefixing the key id (no cryptography, no log), and a boto3 call
  serializes, signs and parses the request in process.

Slices alternate embedded and moto so load hits both alike; each case's
value is the median ops/s over its slices, and the ratio is embedded / moto
(higher is better for keyledger). Clock: time.perf_counter only.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Callable
from typing import Any

import keyledger
from benchmarks import harness

NAME = "/bench/app/db-password"
VALUE_CHARS = 32
_BATCH = 16


def _rate(op: Callable[[], Any], seconds: float) -> float:
    calls, elapsed = harness._run_single(op, seconds, _BATCH)
    return calls / elapsed


def _moto_op(value: str) -> tuple[Callable[[], Any], Any]:
    """(one GetParameter WithDecryption, the mock to stop), or raise ImportError."""
    import boto3
    from moto import mock_aws

    mock = mock_aws()
    mock.start()
    client = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.put_parameter(Name=NAME, Value=value, Type="SecureString")
    assert client.get_parameter(Name=NAME, WithDecryption=True)["Parameter"]["Value"] == value

    def op() -> Any:
        return client.get_parameter(Name=NAME, WithDecryption=True)
    return op, mock


def run(quick: bool, tmpdir: str | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    slice_s, slices, warmup = (0.1, 4, 0.1) if quick else (0.3, 15, 0.5)
    value = os.urandom(VALUE_CHARS // 2).hex()
    runs: dict[str, list[float]] = {"relaxed": [], "durable": [], "moto": []}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kl-ssm-bench-", dir=tmpdir) as root:
        ledgers = {mode: keyledger.open(os.path.join(root, mode), create=True, durability=mode)
                   for mode in ("relaxed", "durable")}
        try:
            ops: dict[str, Callable[[], Any]] = {}
            for mode, kms in ledgers.items():
                kms.parameters.put_parameter(NAME, value, type="SecureString")
                store = kms.parameters
                assert store.get_parameter(NAME, with_decryption=True).parameter.value == value
                ops[mode] = (lambda s: lambda: s.get_parameter(NAME, with_decryption=True))(store)
            mock = None
            moto_skip = None
            try:
                ops["moto"], mock = _moto_op(value)
            except ImportError as exc:
                moto_skip = f"moto not installed ({exc})"
                runs.pop("moto")
            try:
                for name, op in ops.items():
                    _rate(op, warmup)
                for i in range(slices):
                    order = list(ops) if i % 2 == 0 else list(reversed(ops))
                    for name in order:
                        runs[name].append(_rate(ops[name], slice_s))
            finally:
                if mock is not None:
                    mock.stop()
        finally:
            for kms in ledgers.values():
                kms.close()
    medians = {name: statistics.median(v) for name, v in runs.items()}
    labels = {"relaxed": "embedded (relaxed)", "durable": "embedded (durable)", "moto": "moto SSM in process"}
    for name, values in runs.items():
        entry: dict[str, Any] = {
            "id": f"ssm.get_parameter_with_decryption.{name}", "group": "ssm",
            "label": f"GetParameter WithDecryption, {labels[name]}", "unit": "ops/s", "value": medians[name],
            "runs": values, "spread": (max(values) - min(values)) / medians[name] if medians[name] else 0.0,
            "optional": name == "moto",
            "params": {"value_chars": VALUE_CHARS, "threads": 1, "slice_seconds": slice_s, "slices": slices}}
        if name != "moto" and "moto" in medians:
            ratio = medians[name] / medians["moto"]
            entry["ratios"] = {"moto": {"baseline": "moto SSM in process", "ratio": ratio}}
            entry["extra"] = {"vs_moto": ratio}
        results.append(entry)
        if progress is not None:
            progress(entry)
    if moto_skip:
        skipped = {"id": "ssm.get_parameter_with_decryption.moto", "group": "ssm", "optional": True,
                   "label": "GetParameter WithDecryption, moto SSM in process", "skipped": moto_skip}
        results.append(skipped)
        if progress is not None:
            progress(skipped)
    return {"results": results, "settings": {"slice_seconds": slice_s, "slices": slices, "warmup": warmup,
                                             "value_chars": VALUE_CHARS, "name": NAME}}


if __name__ == "__main__":
    import sys
    print(json.dumps(run("--quick" in sys.argv), indent=2, default=str))
