"""CloudTrail rendering (projections.cloudtrail), pinned by golden files.

A ledger with a fixed clock and a seeded rng makes the same key ids, ledger
origin (hence eventIDs) and times on every run; the request ids are random
UUIDs by design, so they are checked for shape and replaced by a placeholder
before the comparison. The golden files under `golden/` are the expected
CloudTrail records for: a CreateKey, an Encrypt, a Decrypt refused by
authorization, an automatic rotation (an AwsServiceEvent), a CreateAlias.

To regenerate after an intended change: KEYLEDGER_UPDATE_GOLDEN=1 pytest
tests/projections/test_cloudtrail.py, then review the diff.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import keyledger
from keyledger import events as ev
from keyledger.errors import AccessDeniedException
from keyledger.projections import cloudtrail

GOLDEN = Path(__file__).parent / "golden"
T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
ALICE = "arn:aws:iam::111122223333:user/alice"
REQUEST_ID = "00000000-0000-4000-8000-000000000000"


class StepClock:
    """Each reading is one second after the previous one."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The rendered records of interest, by golden file name."""
    clock = StepClock()
    home = tmp_path_factory.mktemp("cloudtrail") / "ledger"
    with keyledger.open(home, create=True, clock=clock, rng=random.Random(20240301).randbytes, durability="relaxed") as kms:
        key = kms.create_key(description="orders", tags=[{"TagKey": "team", "TagValue": "billing"}]) \
            .key_metadata.key_id
        kms.create_alias("alias/orders", key)
        blob = kms.encrypt("alias/orders", b"secret", encryption_context={"order": "42"}).ciphertext_blob
        kms.create_user("alice")
        with pytest.raises(AccessDeniedException):
            kms.as_caller(ALICE).decrypt(blob, encryption_context={"order": "42"})
        kms.enable_key_rotation(key, rotation_period_in_days=90)
        clock.now += timedelta(days=91)
        assert kms.rotate_due() == {"rotated": 1, "deleted": 0}
        origin = kms.store.meta()["origin"].decode()
        records = list(kms.store.records())
        region, account = kms.region, kms.account
    picks = {
        "create_key": lambda r: isinstance(r.event, ev.KeyCreated),
        "create_alias": lambda r: isinstance(r.event, ev.AliasCreated),
        "encrypt": lambda r: isinstance(r.event, ev.Encrypted),
        "decrypt_denied": lambda r: isinstance(r.event, ev.RequestDenied) and r.operation == "Decrypt",
        "rotation_automatic": lambda r: isinstance(r.event, ev.KeyRotated),
    }
    out = {}
    for name, pick in picks.items():
        [record] = [r for r in records if pick(r)]
        rendered = cloudtrail.render(record, region=region, account=account, origin=origin)
        assert str(uuid.UUID(rendered["requestID"])) == rendered["requestID"]
        out[name] = {**rendered, "requestID": REQUEST_ID}
    return out


@pytest.mark.parametrize("name", ["create_key", "encrypt", "decrypt_denied", "rotation_automatic",
                                  "create_alias"])
def test_golden(trail: dict[str, dict[str, Any]], name: str) -> None:
    path = GOLDEN / f"{name}.json"
    rendered = json.loads(json.dumps(trail[name]))  # as a JSON reader sees it
    if os.environ.get("KEYLEDGER_UPDATE_GOLDEN"):
        path.write_text(json.dumps(rendered, indent=2, sort_keys=True) + "\n")
    assert rendered == json.loads(path.read_text())


def test_what_every_record_carries(trail: dict[str, dict[str, Any]]) -> None:
    for rendered in trail.values():
        assert rendered["eventVersion"] == "1.08" and rendered["eventSource"] == "kms.amazonaws.com"
        assert rendered["awsRegion"] == "us-east-1" and rendered["recipientAccountId"] == "111122223333"
        assert set(rendered) >= {"userIdentity", "eventTime", "eventName", "requestParameters",
                                 "responseElements", "requestID", "eventID", "readOnly", "resources",
                                 "eventType"}
    assert trail["rotation_automatic"]["eventType"] == "AwsServiceEvent"
    assert trail["rotation_automatic"]["userIdentity"] == {"accountId": "111122223333",
                                                           "invokedBy": "kms.amazonaws.com"}
    assert {trail[n]["eventType"] for n in ("create_key", "encrypt", "decrypt_denied", "create_alias")} == \
        {"AwsApiCall"}
    denied = trail["decrypt_denied"]
    assert denied["errorCode"] == "AccessDeniedException"
    assert denied["userIdentity"]["type"] == "IAMUser" and denied["userIdentity"]["userName"] == "alice"
    assert len({r["eventID"] for r in trail.values()}) == len(trail)


def test_nothing_secret_is_rendered(trail: dict[str, dict[str, Any]]) -> None:
    text = json.dumps(trail)
    for hidden in ("material", "wrapped", "kcv", "ciphertextDigest", "ciphertext_digest", "secret"):
        assert hidden not in text


def test_a_call_made_through_an_integrated_service_names_it_as_invoked_by(tmp_path) -> None:
    """The parameter store's Decrypt for a user is the user's call, invoked by SSM, as CloudTrail shows it."""
    import keyledger
    from keyledger.projections import cloudtrail

    with keyledger.open(tmp_path / "kl", create=True) as kms:
        key = kms.create_key().key_metadata.key_id
        user = kms.create_user("alice").arn  # (a key policy may name only a principal that exists)
        kms.put_key_policy(key, json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*",
             "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": user}, "Action": ["kms:Encrypt"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}}}]}))
        kms.as_caller(user).via_service("ssm.us-east-1.amazonaws.com").encrypt(key, b"x")
        kms.encrypt(key, b"y")
        with kms.store.snapshot() as snap:
            records = [r for r in snap.records(0) if r.operation == "Encrypt"]
    via, direct = (cloudtrail.render(r, region="us-east-1", account="111122223333") for r in records)
    assert via["userIdentity"]["invokedBy"] == "ssm.amazonaws.com"
    assert via["userIdentity"]["arn"] == "arn:aws:iam::111122223333:user/alice"
    assert via["sourceIPAddress"] == via["userAgent"] == "ssm.amazonaws.com"
    assert "viaService" not in (via["requestParameters"] or {})
    assert "invokedBy" not in direct["userIdentity"] and direct["sourceIPAddress"] == "keyledger"


def test_cryptographic_and_read_calls_are_read_only_and_management_calls_are_not(tmp_path) -> None:
    """As AWS's CloudTrail examples show (a Sign is "readOnly": true): every
    cryptographic operation and every read is read-only; a key's creation and
    a policy change are not."""
    with keyledger.open(tmp_path / "kl", create=True) as kms:
        signer = kms.create_key(key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").key_metadata.key_id
        mac = kms.create_key(key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC").key_metadata.key_id
        sym = kms.create_key().key_metadata.key_id
        signature = kms.sign(signer, b"m", "ECDSA_SHA_256").signature
        kms.verify(signer, b"m", signature, "ECDSA_SHA_256")
        kms.get_public_key(signer)
        kms.verify_mac(mac, b"m", "HMAC_SHA_256", kms.generate_mac(mac, b"m", "HMAC_SHA_256").mac)
        kms.generate_data_key_pair_without_plaintext(sym, "ECC_NIST_P256")
        kms.get_key_last_usage(sym)
        kms.put_key_policy(sym, kms.get_key_policy(sym).policy)
        flags = {r.operation: cloudtrail.render(r, region="us-east-1", account="111122223333")["readOnly"]
                 for r in kms.store.records()}
    assert flags == {"CreateKey": False, "Sign": True, "Verify": True, "GetPublicKey": True, "GenerateMac": True,
                     "VerifyMac": True, "GenerateDataKeyPairWithoutPlaintext": True, "GetKeyLastUsage": True,
                     "GetKeyPolicy": True, "PutKeyPolicy": False}
