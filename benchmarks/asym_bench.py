"""Asymmetric and HMAC keys (issue 11's benchmark): Sign and Verify with
ECC_NIST_P256 (ECDSA_SHA_256) and RSA_2048 (RSASSA_PSS_SHA_256),
GenerateMac / VerifyMac with HMAC_256, and Encapsulate / Decapsulate with
ML_KEM_768, one thread, embedded and `relaxed`, each next to:

- the bare `cryptography` operation with the same key material in the same
  run (the ratio says what the ledger adds: resolve, authorize, record);
- moto's in-process KMS through boto3, where moto implements the operation
  (optional: moto comes with the `bench` extra).

Messages are 32 bytes (RAW). Every case verifies its own output once before
it is timed. Clock: the harness's (time.perf_counter only).
"""

from __future__ import annotations

import hmac
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import keyledger
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from keyledger import crypto
from keyledger.projections import key_row
from keyledger.secret import Secret

from benchmarks import harness

MESSAGE = os.urandom(32)
#: (label, key spec, key usage, operation, algorithm)
CASES = (
    ("Sign ECC_NIST_P256", "ECC_NIST_P256", "SIGN_VERIFY", "sign", "ECDSA_SHA_256"),
    ("Verify ECC_NIST_P256", "ECC_NIST_P256", "SIGN_VERIFY", "verify", "ECDSA_SHA_256"),
    ("Sign RSA_2048", "RSA_2048", "SIGN_VERIFY", "sign", "RSASSA_PSS_SHA_256"),
    ("Verify RSA_2048", "RSA_2048", "SIGN_VERIFY", "verify", "RSASSA_PSS_SHA_256"),
    ("GenerateMac HMAC_256", "HMAC_256", "GENERATE_VERIFY_MAC", "generate_mac", "HMAC_SHA_256"),
    ("VerifyMac HMAC_256", "HMAC_256", "GENERATE_VERIFY_MAC", "verify_mac", "HMAC_SHA_256"),
    ("Encapsulate ML_KEM_768", "ML_KEM_768", "ENCAPSULATE_DECAPSULATE", "encapsulate", "ML_KEM"),
    ("Decapsulate ML_KEM_768", "ML_KEM_768", "ENCAPSULATE_DECAPSULATE", "decapsulate", "ML_KEM"),
)
_PSS = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)


def _material(kms: keyledger.KeyLedger, key_id: str) -> bytes:
    """The key's material, unwrapped under the root key file as an auditor
    could (the bare baseline must use the same key)."""
    root = Secret((Path(kms.store.path) / "root.key").read_bytes())
    kek = crypto.unwrap_kek(root, key_id, kms.store.kek(key_id))
    info = kms.store.get("keys", key_row(key_id)).version(1)
    return crypto.unwrap_material(kek, key_id, 1, info.wrapped).reveal()


def _keyledger_op(kms: keyledger.KeyLedger, key_id: str, op: str, algorithm: str) -> Callable[[], Any]:
    if op == "sign":
        return lambda: kms.sign(key_id, MESSAGE, algorithm)
    if op == "verify":
        signature = kms.sign(key_id, MESSAGE, algorithm).signature
        assert kms.verify(key_id, MESSAGE, signature, algorithm).signature_valid
        return lambda: kms.verify(key_id, MESSAGE, signature, algorithm)
    if op == "generate_mac":
        return lambda: kms.generate_mac(key_id, MESSAGE, algorithm)
    if op == "encapsulate":
        return lambda: kms.encapsulate(key_id, algorithm)
    if op == "decapsulate":
        made = kms.encapsulate(key_id, algorithm)
        assert kms.decapsulate(key_id, made.shared_secret_ciphertext_blob, algorithm).shared_secret == \
            made.shared_secret
        return lambda: kms.decapsulate(key_id, made.shared_secret_ciphertext_blob, algorithm)
    tag = kms.generate_mac(key_id, MESSAGE, algorithm).mac
    assert kms.verify_mac(key_id, MESSAGE, algorithm, tag).mac_valid
    return lambda: kms.verify_mac(key_id, MESSAGE, algorithm, tag)


def _bare_op(material: bytes, spec: str, op: str) -> Callable[[], Any]:
    """The same operation with `cryptography` (HMAC: the standard library,
    which is what crypto.py uses) on the same key."""
    if spec.startswith("HMAC"):
        tag = hmac.digest(material, MESSAGE, "sha256")
        if op == "generate_mac":
            return lambda: hmac.digest(material, MESSAGE, "sha256")
        return lambda: hmac.compare_digest(hmac.digest(material, MESSAGE, "sha256"), tag)
    private = serialization.load_der_private_key(material, None)
    public = private.public_key()
    if spec.startswith("ML_KEM"):
        if op == "encapsulate":
            return lambda: public.encapsulate()  # type: ignore[union-attr]
        secret, ciphertext = public.encapsulate()  # type: ignore[union-attr]
        assert private.decapsulate(ciphertext) == secret  # type: ignore[union-attr]
        return lambda: private.decapsulate(ciphertext)  # type: ignore[union-attr]
    if spec.startswith("ECC"):
        algo = ec.ECDSA(hashes.SHA256())
        if op == "sign":
            return lambda: private.sign(MESSAGE, algo)
        signature = private.sign(MESSAGE, algo)
        return lambda: public.verify(signature, MESSAGE, algo)
    if op == "sign":
        return lambda: private.sign(MESSAGE, _PSS, hashes.SHA256())
    signature = private.sign(MESSAGE, _PSS, hashes.SHA256())
    return lambda: public.verify(signature, MESSAGE, _PSS, hashes.SHA256())


@contextmanager
def _moto(spec: str, usage: str, op: str, algorithm: str) -> Iterator[harness.OpFactory]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("kms", region_name="us-east-1")
        key_id = client.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
        if op == "sign":
            call: Callable[[], Any] = lambda: client.sign(KeyId=key_id, Message=MESSAGE,
                                                         SigningAlgorithm=algorithm)
        elif op == "verify":
            signature = client.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm)["Signature"]
            call = lambda: client.verify(KeyId=key_id, Message=MESSAGE, Signature=signature,
                                         SigningAlgorithm=algorithm)
        elif op == "generate_mac":
            call = lambda: client.generate_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm=algorithm)
        elif op in ("encapsulate", "decapsulate"):
            call = lambda: getattr(client, op)(KeyId=key_id, EncapsulationAlgorithm=algorithm)
        else:
            tag = client.generate_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm=algorithm)["Mac"]
            call = lambda: client.verify_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm=algorithm,
                                             Mac=tag)
        call()  # moto implements it, or this raises and the case is recorded as skipped
        yield lambda _i: call


def moto_missing() -> str | None:
    missing = [name for name in ("boto3", "moto") if find_spec(name) is None]
    return f"{' and '.join(missing)} not installed (pip install -e '.[bench]')" if missing else None


def run(quick: bool, *, tmpdir: str, progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Every case: keyledger, bare and moto entries, with the ratios
    keyledger/bare and keyledger/moto in the keyledger entry's extra."""
    plan = harness.QUICK if quick else harness.FULL
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=tmpdir, prefix="kl-asym-") as home, \
            keyledger.open(home, create=True, durability="relaxed") as kms:
        keys: dict[str, str] = {}
        for label, spec, usage, op, algorithm in CASES:
            if spec not in keys:
                keys[spec] = kms.create_key(key_spec=spec, key_usage=usage).key_metadata.key_id
            key_id = keys[spec]
            slug = label.lower().replace(" ", ".")
            params = {"key_spec": spec, "algorithm": algorithm, "message_bytes": len(MESSAGE),
                      "durability": "relaxed"}
            mine = harness.measure_throughput(
                lambda _i, k=key_id, o=op, a=algorithm: _keyledger_op(kms, k, o, a), threads=1, plan=plan)
            bare = harness.measure_throughput(
                lambda _i, k=key_id, s=spec, o=op: _bare_op(_material(kms, k), s, o), threads=1, plan=plan)
            mine.extra["vs_bare"] = mine.value / bare.value
            entries = [harness.result(f"asym.{slug}.keyledger", "asym", f"keyledger {label}", params=params,
                                      measurement=mine),
                       harness.result(f"asym.{slug}.bare", "asym", f"bare cryptography {label}", params=params,
                                      measurement=bare)]
            skip = moto_missing()
            if skip is None:
                try:
                    with _moto(spec, usage, op, algorithm) as make:
                        moto = harness.measure_throughput(make, threads=1, plan=plan)
                    mine.extra["vs_moto"] = mine.value / moto.value
                    entries.append(harness.result(f"asym.{slug}.moto", "asym", f"moto {label}", params=params,
                                                  optional=True, measurement=moto))
                except Exception as exc:  # noqa: BLE001 - moto lacks it: optional, recorded as skipped
                    skip = f"moto does not implement it ({harness.describe_error(exc)[:120]})"
            if skip is not None:
                entries.append(harness.result(f"asym.{slug}.moto", "asym", f"moto {label}", params=params,
                                              optional=True, skipped=skip))
            entries[0] = harness.result(f"asym.{slug}.keyledger", "asym", f"keyledger {label}", params=params,
                                        measurement=mine)
            for entry in entries:
                progress(entry)
            results += entries
    return {"results": results, "settings": {"warmup": plan.warmup, "duration": plan.duration,
                                             "repeats": plan.repeats, "message_bytes": len(MESSAGE),
                                             "durability": "relaxed", "threads": 1}}


if __name__ == "__main__":  # python -m benchmarks.asym_bench [--quick]
    import sys

    out = run("--quick" in sys.argv, tmpdir=tempfile.gettempdir(), progress=lambda e: None)
    for e in out["results"]:
        value = f"{e['value']:,.0f} ops/s" if "value" in e else e.get("skipped") or e.get("error")
        ratios = ", ".join(f"{k} {v:.2f}" for k, v in e.get("extra", {}).items())
        print(f"{e['label']:<40} {value}{'  (' + ratios + ')' if ratios else ''}")
