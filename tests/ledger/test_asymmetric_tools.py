"""The trail and the tools for asymmetric and HMAC keys: replay agrees with
the live tables, `forensics key` lists the signatures a key made,
`forensics signature` finds the key and record behind a signature (and
whether it was over a given message), `prove-decryptable` opens the RSA
ciphertexts the log knows, and the bill prices requests by AWS's list."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import keyledger
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from keyledger import forensics
from keyledger.cli.main import main
from keyledger.projections import billing, replay
from keyledger.secret import Secret


@pytest.fixture
def kms(tmp_path: Path) -> keyledger.KeyLedger:
    clock = lambda: datetime(2031, 6, 10, tzinfo=UTC)
    ledger = keyledger.open(tmp_path / "ledger", create=True, clock=clock)
    yield ledger
    ledger.close()


def test_replay_and_forensics_of_signatures(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
    message = b"release-2.0.tar.gz"
    raw = kms.sign(key, message, "ECDSA_SHA_256").signature
    digest = hashlib.sha256(message).digest()
    pre = kms.sign(key, digest, "ECDSA_SHA_256", message_type="DIGEST").signature
    kms.verify(key, message, raw, "ECDSA_SHA_256")
    mac_key = kms.create_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC").key_metadata.key_id
    kms.generate_mac(mac_key, b"m", "HMAC_SHA_256")
    with kms.store.snapshot() as snap:
        assert replay.check(snap).ok
        timeline = forensics.key_timeline(snap, key)
        assert [s["signature_sha256"] for s in timeline["signatures"]] == \
            [hashlib.sha256(raw).hexdigest(), hashlib.sha256(pre).hexdigest()]
        assert sum(timeline["usage_by_principal"].values()) == 3  # two Signs and a Verify
        found = forensics.signature_history(snap, raw, digest)
        assert found["produced_by"]["key_id"] == key and found["produced_by"]["message_type"] == "RAW"
        assert found["message_matches"] is True and len(found["verifications"]) == 1
        assert forensics.signature_history(snap, pre, digest)["message_matches"] is True  # DIGEST: digest given
        assert forensics.signature_history(snap, raw, hashlib.sha256(b"other").digest())["message_matches"] is False
        assert forensics.signature_history(snap, b"not a signature")["produced_by"] is None


def test_forensics_signature_command(kms: keyledger.KeyLedger, tmp_path: Path) -> None:
    key = kms.create_key(key_spec="RSA_2048", key_usage="SIGN_VERIFY").key_metadata.key_id
    signature = kms.sign(key, b"file contents", "RSASSA_PSS_SHA_256").signature
    home = kms.store.path
    kms.close()
    sig_file = tmp_path / "file.sig"
    sig_file.write_bytes(signature)
    result = CliRunner().invoke(main, ["--home", str(home), "forensics", "signature", f"fileb://{sig_file}",
                                       "--message-digest", hashlib.sha256(b"file contents").hexdigest()],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["ProducedBy"]["KeyId"] == key and view["MessageMatches"] is True
    assert view["ProducedBy"]["SignatureSha256"] == base64.b64encode(hashlib.sha256(signature).digest()).decode()
    result = CliRunner().invoke(main, ["--home", str(home), "forensics", "key", key], catch_exceptions=False)
    assert [s["SigningAlgorithm"] for s in json.loads(result.stdout)["Signatures"]] == ["RSASSA_PSS_SHA_256"]


def test_prove_decryptable_opens_rsa_ciphertexts(kms: keyledger.KeyLedger) -> None:
    key = kms.create_key(key_spec="RSA_3072", key_usage="ENCRYPT_DECRYPT").key_metadata.key_id
    sym = kms.create_key().key_metadata.key_id
    mine = kms.encrypt(key, b"secret", encryption_algorithm="RSAES_OAEP_SHA_1").ciphertext_blob
    public = serialization.load_der_public_key(kms.get_public_key(key).public_key)
    outside = public.encrypt(b"x", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    pair = kms.generate_data_key_pair(sym, "ECC_NIST_P256", encryption_context={"a": "b"})
    root = Secret((Path(kms.store.path) / "root.key").read_bytes())
    corpus = [(mine, {}), (pair.private_key_ciphertext_blob, {"a": "b"}), (outside, {}),
              (bytes([mine[0] ^ 1]) + mine[1:], {})]
    with kms.store.snapshot() as snap:
        report = forensics.prove_decryptable(snap, root, corpus=corpus)
    assert {v.key_id for v in report.keys} == {key, sym} and all(k.ok for k in report.keys)
    assert (report.corpus_total, report.corpus_opened) == (4, 2)
    # one made outside keyledger is no record of this log; an altered one neither
    assert report.corpus_failures == ["line 3: not a keyledger ciphertext", "line 4: not a keyledger ciphertext"]


def test_the_bill_prices_requests_by_aws_list(kms: keyledger.KeyLedger) -> None:
    rsa = kms.create_key(key_spec="RSA_2048", key_usage="SIGN_VERIFY").key_metadata.key_id
    ecc = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
    mac = kms.create_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC").key_metadata.key_id
    sym = kms.create_key().key_metadata.key_id
    for _ in range(2):
        kms.sign(rsa, b"m", "RSASSA_PSS_SHA_256")
        kms.sign(ecc, b"m", "ECDSA_SHA_256")
        kms.generate_mac(mac, b"m", "HMAC_SHA_256")
    kms.get_public_key(ecc)
    kms.generate_data_key_pair(sym, "RSA_2048")
    kms.generate_data_key_pair_without_plaintext(sym, "ECC_NIST_P384")
    bill = billing.compute(kms.store.records(), "2031-06")
    per_10k = billing.PRICES_PER_10K
    expected = (4 * per_10k["standard"]  # four CreateKeys
                + 2 * per_10k["asymmetric RSA_2048"] + 3 * per_10k["asymmetric"] + 2 * per_10k["standard"]
                + per_10k["data key pair RSA"] + per_10k["data key pair ECC"]) / 10_000
    assert bill.request_cost == expected
    assert per_10k == {"standard": Fraction(3, 100), "asymmetric RSA_2048": Fraction(3, 100),
                       "asymmetric": Fraction(15, 100), "data key pair RSA": Fraction(12),
                       "data key pair ECC": Fraction(1, 10)}
