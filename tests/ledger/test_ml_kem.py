"""ML-KEM keys (ML_KEM_768, ML_KEM_1024; KeyUsage ENCAPSULATE_DECAPSULATE):
CreateKey and DescribeKey, GetPublicKey's DER that `cryptography`
encapsulates to offline, Encapsulate and Decapsulate (the same secret both
ways), AWS's one Decapsulate refusal (a blob of the wrong length) and its
implicit rejection of every other blob, the key errors, grants and
policies, ML_KEM_512 refused with the reason, data key pairs, the records
(a ciphertext digest, never the secret), usage, billing, CloudTrail, replay,
the CLI, and raw LMDB files that hold no seed and no shared secret."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import keyledger
import pytest
from asymkit import unwrap_material
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from keyledger import crypto
from keyledger import events as ev
from keyledger.cli.main import main
from keyledger.errors import (
    AccessDeniedException,
    DisabledException,
    DryRunOperationException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    UnsupportedOperationException,
    ValidationException,
)
from keyledger.projections import billing, cloudtrail, replay, usage_row
from keyledger.responses import to_aws
from test_raw_scan import assert_absent

CIPHERTEXT_BYTES = {"ML_KEM_768": 1088, "ML_KEM_1024": 1568}
KEM = "ENCAPSULATE_DECAPSULATE"


def kem_key(kms: keyledger.KeyLedger, spec: str = "ML_KEM_768") -> str:
    return kms.create_key(key_spec=spec, key_usage=KEM).key_metadata.key_id


def last(kms: keyledger.KeyLedger) -> ev.Record:
    return list(kms.store.records())[-1]


@pytest.mark.parametrize("spec", sorted(CIPHERTEXT_BYTES))
def test_encapsulate_and_decapsulate_agree(kms: keyledger.KeyLedger, spec: str) -> None:
    meta = kms.create_key(key_spec=spec, key_usage=KEM).key_metadata
    assert meta.encapsulation_algorithms == ["ML_KEM"]
    shown = to_aws(kms.describe_key(meta.key_id))["KeyMetadata"]
    assert shown["EncapsulationAlgorithms"] == ["ML_KEM"] and shown["KeyUsage"] == KEM
    assert not {"EncryptionAlgorithms", "SigningAlgorithms", "MacAlgorithms", "KeyAgreementAlgorithms"} & set(shown)

    out = kms.encapsulate(meta.key_id, "ML_KEM")
    assert out.key_id == meta.arn and out.encapsulation_algorithm == "ML_KEM"
    assert len(out.shared_secret) == 32 and len(out.shared_secret_ciphertext_blob) == CIPHERTEXT_BYTES[spec]
    back = kms.decapsulate(meta.key_id, out.shared_secret_ciphertext_blob, "ML_KEM")
    assert back.shared_secret == out.shared_secret and back.key_id == meta.arn
    assert back.encapsulation_algorithm == "ML_KEM"
    assert out.shared_secret.hex() not in repr(out) and "<redacted>" in repr(back)
    assert to_aws(back) == {"KeyId": meta.arn, "SharedSecret": base64.b64encode(out.shared_secret).decode(),
                            "EncapsulationAlgorithm": "ML_KEM"}

    # a second encapsulation is a new secret
    assert kms.encapsulate(meta.key_id, "ML_KEM").shared_secret != out.shared_secret


@pytest.mark.parametrize("spec", sorted(CIPHERTEXT_BYTES))
def test_a_ciphertext_made_offline_decapsulates(kms: keyledger.KeyLedger, spec: str) -> None:
    key = kem_key(kms, spec)
    public = kms.get_public_key(key)
    assert public.encapsulation_algorithms == ["ML_KEM"] and public.key_usage == KEM
    assert public.signing_algorithms is None and public.key_agreement_algorithms is None
    secret, blob = serialization.load_der_public_key(public.public_key).encapsulate()
    assert kms.decapsulate(key, blob, "ML_KEM").shared_secret == secret


def test_decapsulate_refuses_only_a_wrong_length(kms: keyledger.KeyLedger) -> None:
    key = kem_key(kms)
    real = kms.encapsulate(key, "ML_KEM")
    blob = real.shared_secret_ciphertext_blob
    for wrong in (blob[:-1], blob + b"\0", b"x", CIPHERTEXT_BYTES["ML_KEM_1024"] * b"\1"):
        with pytest.raises(InvalidCiphertextException) as info:
            kms.decapsulate(key, wrong, "ML_KEM")
        assert info.value.message == ""  # no reason: an error that explains is an oracle
        assert last(kms).event.error_code == "InvalidCiphertextException"  # type: ignore[union-attr]
    # implicit rejection: an altered blob of the right length answers a different 32 bytes, no error
    altered = bytes([blob[0] ^ 1]) + blob[1:]
    rejected = kms.decapsulate(key, altered, "ML_KEM").shared_secret
    assert len(rejected) == 32 and rejected != real.shared_secret
    assert kms.decapsulate(key, altered, "ML_KEM").shared_secret == rejected  # deterministic
    # another key's ciphertext (same spec) gives a pseudo-random secret too
    other = kms.encapsulate(kem_key(kms), "ML_KEM")
    assert kms.decapsulate(key, other.shared_secret_ciphertext_blob, "ML_KEM").shared_secret != other.shared_secret
    with pytest.raises(ValidationException):
        kms.decapsulate(key, b"", "ML_KEM")


def test_key_errors(kms: keyledger.KeyLedger) -> None:
    key = kem_key(kms)
    meta = kms.describe_key(key).key_metadata
    blob = kms.encapsulate(key, "ML_KEM").shared_secret_ciphertext_blob
    symmetric = kms.create_key().key_metadata
    signer = kms.create_key(key_spec="ML_DSA_44", key_usage="SIGN_VERIFY").key_metadata
    with pytest.raises(InvalidKeyUsageException) as info:
        kms.encapsulate(symmetric.key_id, "ML_KEM")
    assert info.value.message == f"{symmetric.arn} key usage is ENCRYPT_DECRYPT which is not valid for Encapsulate."
    with pytest.raises(InvalidKeyUsageException) as info:
        kms.decapsulate(signer.key_id, blob, "ML_KEM")
    assert info.value.message == f"{signer.arn} key usage is SIGN_VERIFY which is not valid for Decapsulate."
    with pytest.raises(InvalidKeyUsageException, match="not valid for Sign"):
        kms.sign(key, b"m", "ML_DSA_SHAKE_256")
    with pytest.raises(InvalidKeyUsageException, match="not valid for Encrypt"):
        kms.encrypt(key, b"m")
    with pytest.raises(ValidationException, match="Member must satisfy enum value set: \\[ML_KEM\\]"):
        kms.encapsulate(key, "ML_KEM_768")
    for call in (lambda: kms.encapsulate(key, "ML_KEM", dry_run=True),
                 lambda: kms.decapsulate(key, blob, "ML_KEM", dry_run=True)):
        before = kms.store.head().seq
        with pytest.raises(DryRunOperationException):
            call()
        assert [type(r.event) for r in kms.store.records(before)] == [ev.RequestDenied]
    kms.disable_key(key)
    with pytest.raises(DisabledException):
        kms.encapsulate(key, "ML_KEM")
    with pytest.raises(DisabledException):
        kms.decapsulate(key, blob, "ML_KEM")
    kms.enable_key(key)
    with pytest.raises(UnsupportedOperationException):
        kms.enable_key_rotation(key)
    with pytest.raises(UnsupportedOperationException):
        kms.rotate_key_on_demand(key)
    assert kms.decapsulate(meta.arn, blob, "ML_KEM").shared_secret  # by ARN
    kms.create_alias("alias/kem", key)
    assert kms.encapsulate("alias/kem", "ML_KEM").key_id == meta.arn  # by alias


def test_other_usages_and_ml_kem_512_are_refused_with_the_reason(kms: keyledger.KeyLedger) -> None:
    for usage in ("ENCRYPT_DECRYPT", "SIGN_VERIFY", "KEY_AGREEMENT", "GENERATE_VERIFY_MAC"):
        with pytest.raises(ValidationException) as info:
            kms.create_key(key_spec="ML_KEM_1024", key_usage=usage)
        assert info.value.message == f"KeyUsage {usage} is not compatible with KeySpec ML_KEM_1024"
    with pytest.raises(ValidationException, match="You must specify a KeyUsage"):
        kms.create_key(key_spec="ML_KEM_768")
    if "ML_KEM_512" not in crypto.unavailable_families():
        pytest.skip("this cryptography has ML-KEM-512")
    with pytest.raises(UnsupportedOperationException) as info:
        kms.create_key(key_spec="ML_KEM_512", key_usage=KEM)
    assert info.value.message == ("KeySpec ML_KEM_512 is not supported: the installed cryptography does not "
                                  "provide ML-KEM-512.")
    symmetric = kms.create_key().key_metadata.key_id
    with pytest.raises(UnsupportedOperationException, match="KeyPairSpec ML_KEM_512 is not supported: the "
                                                            "installed cryptography does not provide ML-KEM-512"):
        kms.generate_data_key_pair(symmetric, "ML_KEM_512")


def test_an_older_cryptography_without_ml_kem_refuses_the_specs(kms: keyledger.KeyLedger,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "_MLKEM_CLASSES", {})
    for spec in ("ML_KEM_768", "ML_KEM_1024"):
        with pytest.raises(UnsupportedOperationException) as info:
            kms.create_key(key_spec=spec, key_usage=KEM)
        assert info.value.message == f"KeySpec {spec} is not supported: the installed cryptography does not " \
                                     "provide ML-KEM."
    monkeypatch.setattr(crypto, "_MLKEM_CLASSES", {1024: crypto._MLKEM_CLASSES.get(1024)})  # noqa: SLF001
    with pytest.raises(UnsupportedOperationException, match="does not provide ML-KEM-768"):
        kms.create_key(key_spec="ML_KEM_768", key_usage=KEM)


def test_grants_and_policies(kms: keyledger.KeyLedger) -> None:
    key = kem_key(kms)
    blob = kms.encapsulate(key, "ML_KEM").shared_secret_ciphertext_blob
    bob = kms.as_caller(kms.create_user("bob").arn)
    with pytest.raises(AccessDeniedException, match="kms:Encapsulate"):
        bob.encapsulate(key, "ML_KEM")
    denied = last(kms)
    assert isinstance(denied.event, ev.RequestDenied) and denied.operation == "Encapsulate"
    assert denied.principal == bob.caller and denied.event.error_code == "AccessDeniedException"

    kms.create_grant(key, bob.caller, ["Encapsulate", "GetPublicKey"])
    assert len(bob.encapsulate(key, "ML_KEM").shared_secret) == 32
    bob.get_public_key(key)
    with pytest.raises(AccessDeniedException, match="kms:Decapsulate"):
        bob.decapsulate(key, blob, "ML_KEM")
    assert last(kms).operation == "Decapsulate" and last(kms).principal == bob.caller
    with pytest.raises(ValidationException, match="Encapsulate"):  # no encryption-context constraints
        kms.create_grant(key, bob.caller, ["Encapsulate"], constraints={"EncryptionContextEquals": {"a": "b"}})

    carol = kms.create_user("carol").arn
    kms.put_principal_policy(carol, "p", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Decapsulate", "Resource": "*",
         "Condition": {"StringEquals": {"kms:KeySpec": "ML_KEM_768", "kms:KeyUsage": KEM}}}]}))
    assert kms.as_caller(carol).decapsulate(key, blob, "ML_KEM").shared_secret
    with pytest.raises(AccessDeniedException):
        kms.as_caller(carol).decapsulate(kem_key(kms, "ML_KEM_1024"), b"\0" * 1568, "ML_KEM")


def test_records_usage_billing_cloudtrail_and_replay(kms: keyledger.KeyLedger) -> None:
    key = kem_key(kms)
    before = kms.store.head().seq
    out = kms.encapsulate(key, "ML_KEM")
    back = kms.decapsulate(key, out.shared_secret_ciphertext_blob, "ML_KEM")
    made, opened = [r for r in kms.store.records(before)]
    assert made.operation == "Encapsulate" and opened.operation == "Decapsulate"
    digest = hashlib.sha256(out.shared_secret_ciphertext_blob).digest()
    assert made.event == ev.SharedSecretEncapsulated(key, 1, "ML_KEM", digest)
    assert opened.event == ev.SharedSecretDecapsulated(key, 1, "ML_KEM", digest)
    log = b"".join(ev.canonical(r) for r in kms.store.records())
    assert out.shared_secret not in log and back.shared_secret not in log
    assert hashlib.sha256(out.shared_secret).digest() not in log

    used = kms.store.get("usage", usage_row(key, 1))
    assert (used.encapsulate, used.decapsulate, used.last_used) == (1, 1, opened.time)
    assert billing.price_class("Encapsulate", made.event, "ML_KEM_768") == "asymmetric"
    assert billing.price_class("Decapsulate", opened.event, "ML_KEM_1024") == "asymmetric"

    trail = cloudtrail.render(made, region=keyledger.DEFAULT_REGION, account=keyledger.DEFAULT_ACCOUNT)
    assert trail["eventName"] == "Encapsulate"
    assert trail["requestParameters"] == {
        "keyId": f"arn:aws:kms:{keyledger.DEFAULT_REGION}:{keyledger.DEFAULT_ACCOUNT}:key/{key}",
        "encapsulationAlgorithm": "ML_KEM"}
    with kms.store.snapshot() as snap:
        report = replay.check(snap)
    assert report.ok, report.differences


def test_ml_kem_data_key_pairs(kms: keyledger.KeyLedger) -> None:
    symmetric = kms.create_key().key_metadata.key_id
    for spec in CIPHERTEXT_BYTES:
        pair = kms.generate_data_key_pair(symmetric, spec, encryption_context={"app": "kem"})
        assert len(pair.private_key_plaintext) == 86  # PKCS#8 in seed form: one length for every spec (AWS)
        private = serialization.load_der_private_key(pair.private_key_plaintext, None)
        secret, blob = serialization.load_der_public_key(pair.public_key).encapsulate()
        assert private.decapsulate(blob) == secret  # type: ignore[union-attr]
        assert len(blob) == CIPHERTEXT_BYTES[spec]
        assert kms.decrypt(pair.private_key_ciphertext_blob, encryption_context={"app": "kem"}).plaintext == \
            pair.private_key_plaintext
        bare = kms.generate_data_key_pair_without_plaintext(symmetric, spec)
        assert bare.key_pair_spec == spec and bare.public_key


def test_the_cli_speaks_aws_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KEYLEDGER_HOME", "KEYLEDGER_ROOT_KEY", "KEYLEDGER_CHECKPOINT_KEY", "KEYLEDGER_PRINCIPAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    home, runner = tmp_path / "ledger", CliRunner()

    def run(*args: str, expect: int = 0) -> Any:
        result = runner.invoke(main, ["--home", str(home), *args], catch_exceptions=False)
        assert result.exit_code == expect, (result.stdout, result.stderr)
        return json.loads(result.stdout) if expect == 0 and result.stdout.startswith("{") else result

    run("init")
    key = run("create-key", "--key-spec", "ML_KEM_1024", "--key-usage", KEM)["KeyMetadata"]
    assert key["EncapsulationAlgorithms"] == ["ML_KEM"]
    out = run("encapsulate", "--key-id", key["KeyId"], "--encapsulation-algorithm", "ML_KEM")
    assert set(out) == {"KeyId", "SharedSecret", "SharedSecretCiphertextBlob", "EncapsulationAlgorithm"}
    assert out["KeyId"] == key["Arn"]
    blob = tmp_path / "blob.bin"
    blob.write_bytes(base64.b64decode(out["SharedSecretCiphertextBlob"]))
    back = run("decapsulate", "--key-id", key["KeyId"], "--shared-secret-ciphertext-blob", f"fileb://{blob}",
               "--encapsulation-algorithm", "ML_KEM")
    assert back == {"KeyId": key["Arn"], "SharedSecret": out["SharedSecret"], "EncapsulationAlgorithm": "ML_KEM"}
    blob.write_bytes(b"short")
    refused = run("decapsulate", "--key-id", key["KeyId"], "--shared-secret-ciphertext-blob", f"fileb://{blob}",
                  "--encapsulation-algorithm", "ML_KEM", expect=254)
    assert "InvalidCiphertextException" in refused.stderr
    assert "records checked" in run("replay", "--check").stdout


def test_no_seed_or_shared_secret_in_the_raw_files(tmp_path: Path) -> None:
    kms = keyledger.open(tmp_path / "ledger", create=True)
    secrets: dict[str, bytes] = {}
    keys = {spec: kem_key(kms, spec) for spec in CIPHERTEXT_BYTES}
    for spec, key in keys.items():
        material = unwrap_material(kms, key)
        private = serialization.load_der_private_key(material, None)
        secrets[f"seed of {spec}"] = private.private_bytes_raw()  # type: ignore[union-attr]
        secrets[f"PKCS#8 of {spec}"] = material
        for i in range(3):
            out = kms.encapsulate(key, "ML_KEM")
            secrets[f"{spec} encapsulated secret {i}"] = out.shared_secret
            public = kms.get_public_key(key).public_key
            secret, blob = serialization.load_der_public_key(public).encapsulate()
            assert kms.decapsulate(key, blob, "ML_KEM").shared_secret == secret
            secrets[f"{spec} offline secret {i}"] = secret
            altered = bytes([blob[0] ^ 0x80]) + blob[1:]
            secrets[f"{spec} rejection secret {i}"] = kms.decapsulate(key, altered, "ML_KEM").shared_secret
    pair = kms.generate_data_key_pair(kms.create_key().key_metadata.key_id, "ML_KEM_768")
    secrets["data key pair seed"] = serialization.load_der_private_key(  # type: ignore[union-attr]
        pair.private_key_plaintext, None).private_bytes_raw()
    data_path = Path(kms.store.file_path())
    with kms.store.snapshot() as snap:
        assert replay.check(snap).ok
    kms.close()
    data, lock = data_path.read_bytes(), data_path.with_name("lock.mdb").read_bytes()
    assert os.path.getsize(data_path) > 0 and len(secrets) == 2 * 2 + 2 * 9 + 1
    assert_absent(data, secrets, "data.mdb")
    assert_absent(lock, secrets, "lock.mdb")
