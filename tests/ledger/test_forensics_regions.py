"""Forensics on a ledger with regions (keyledger.forensics): a key id is found
in whichever region(s) it exists, each answer names the region of every key
and record it reports, a multi-Region key's replicas are judged per region
(own row, own KEK, own policy and grants), and the decryptability proof
opens another region's keys with their own KEK rows instead of calling them
missing or shredded."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from clockkit import T0
import keyledger
import pytest
from keyledger import forensics
from keyledger.errors import LedgerError
from keyledger.projections import key_row
from keyledger.secret import Secret

ACCOUNT = keyledger.DEFAULT_ACCOUNT
US, EU, AP = "us-east-1", "eu-west-1", "ap-southeast-2"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"



def root_of(kms) -> Secret:
    return Secret((Path(kms.store.path) / "root.key").read_bytes())


def test_key_scopes_find_a_key_in_its_regions(kms) -> None:
    eu = kms.in_region(EU)
    us_key = kms.create_key().key_metadata.key_id
    eu_key = eu.create_key().key_metadata.key_id
    mrk = kms.create_key(multi_region=True).key_metadata.key_id
    kms.replicate_key(mrk, AP)
    kms.replicate_key(mrk, EU)
    with pytest.raises(keyledger.KMSError):
        kms.in_region(AP).describe_key(eu_key)  # a denied request naming the key in a region it is not in
    with kms.store.snapshot() as snap:
        assert forensics.home_region(snap) == US
        assert forensics.key_scopes(snap, us_key) == [""]
        assert forensics.key_scopes(snap, eu_key) == [EU]  # not AP, where only a refusal named it
        assert forensics.key_scopes(snap, mrk) == ["", AP, EU]
        assert forensics.key_scopes(snap, "00000000-0000-4000-8000-000000000000") == []


def test_prove_decryptable_uses_each_regions_kek(kms, clock) -> None:
    eu = kms.in_region(EU)
    us_key = kms.create_key().key_metadata.key_id
    eu_key = eu.create_key().key_metadata.key_id
    corpus = [(kms.encrypt(us_key, b"us", encryption_context={"r": "us"}).ciphertext_blob, {"r": "us"}),
              (eu.encrypt(eu_key, b"eu").ciphertext_blob, {}),
              (eu.generate_data_key(eu_key, key_spec="AES_256").ciphertext_blob, {})]
    eu.rotate_key_on_demand(eu_key)
    corpus.append((eu.encrypt(eu_key, b"eu v2").ciphertext_blob, {}))
    with kms.store.snapshot() as snap:
        report = forensics.prove_decryptable(snap, root_of(kms), corpus=corpus)
    assert report.ok, (report.keys, report.corpus_failures)
    verdicts = {(k.key_id, k.region): k for k in report.keys}
    assert set(verdicts) == {(us_key, US), (eu_key, EU)}
    eu_verdict = verdicts[(eu_key, EU)]
    assert (eu_verdict.state, eu_verdict.shredded, eu_verdict.scope) == ("Enabled", False, EU)
    assert [(v.version, v.ciphertexts, v.ok) for v in eu_verdict.versions] == [(1, 2, True), (2, 1, True)]
    assert verdicts[(us_key, US)].scope == ""
    assert (report.corpus_total, report.corpus_opened) == (4, 4)

    # a wrong context still fails, in any region
    with kms.store.snapshot() as snap:
        bad = forensics.prove_decryptable(snap, root_of(kms), corpus=[(corpus[1][0], {"r": "x"})])
    assert bad.corpus_failures == ["line 1: does not open (wrong context or altered)"]

    # deleting the EU key shreds it there (its own KEK row), and only there
    eu.schedule_key_deletion(eu_key, pending_window_in_days=7)
    clock.now = T0 + timedelta(days=8)
    kms.rotate_due()
    with kms.store.snapshot() as snap:
        assert snap.kek(key_row(eu_key, EU).decode()) is None
        report = forensics.prove_decryptable(snap, root_of(kms), corpus=corpus)
    verdicts = {(k.key_id, k.region): k for k in report.keys}
    assert verdicts[(eu_key, EU)].shredded and verdicts[(eu_key, EU)].state == "Deleted"
    assert not verdicts[(us_key, US)].shredded
    assert report.ok and (report.corpus_total, report.corpus_opened) == (1, 1)  # the shredded ones drop out


def test_prove_decryptable_judges_each_replica_and_opens_with_any(kms, clock) -> None:
    eu = kms.in_region(EU)
    mrk = kms.create_key(multi_region=True).key_metadata.key_id
    kms.replicate_key(mrk, EU)
    made_in_us = kms.encrypt(mrk, b"us").ciphertext_blob
    made_in_eu = eu.encrypt(mrk, b"eu").ciphertext_blob
    eu.encrypt(mrk, b"again")
    corpus = [(made_in_us, {}), (made_in_eu, {})]
    with kms.store.snapshot() as snap:
        report = forensics.prove_decryptable(snap, root_of(kms), corpus=corpus)
    assert report.ok
    assert [(k.key_id, k.region, sum(v.ciphertexts for v in k.versions)) for k in report.keys] == [
        (mrk, US, 1), (mrk, EU, 2)]  # one verdict per region that issued, the initial region first
    assert report.corpus_opened == 2

    # the replica is deleted: its copy is shredded, the primary still opens both ciphertexts
    eu.schedule_key_deletion(mrk, pending_window_in_days=7)
    clock.now = T0 + timedelta(days=8)
    kms.rotate_due()
    with kms.store.snapshot() as snap:
        report = forensics.prove_decryptable(snap, root_of(kms), corpus=corpus)
    by_region = {k.region: k for k in report.keys}
    assert by_region[EU].shredded and not by_region[US].shredded
    assert report.ok and (report.corpus_total, report.corpus_opened) == (2, 2)


def test_key_timeline_in_every_region_of_a_multi_region_key(kms) -> None:
    eu = kms.in_region(EU)
    mrk = kms.create_key(multi_region=True).key_metadata.key_id
    kms.create_alias("alias/app", mrk)
    kms.replicate_key(mrk, EU)
    eu.create_alias("alias/app", mrk)  # the same alias name, in another region
    eu.create_alias("alias/eu-only", mrk)
    kms.encrypt(mrk, b"1")
    eu.encrypt(mrk, b"2")
    with kms.store.snapshot() as snap:
        every = forensics.key_timeline(snap, mrk)
        only_eu = forensics.key_timeline(snap, mrk, region=EU)
        only_us = forensics.key_timeline(snap, mrk, region=US)
    assert every["regions"] == [
        {"region": US, "key_state": "Enabled", "multi_region_key_type": "PRIMARY", "aliases_now": ["alias/app"]},
        {"region": EU, "key_state": "Enabled", "multi_region_key_type": "REPLICA",
         "aliases_now": ["alias/app", "alias/eu-only"]}]
    assert every["aliases_now"] == ["alias/app", "alias/eu-only"]
    assert [(e["event"], e["region"]) for e in every["timeline"]] == [
        ("KeyCreated", US), ("AliasCreated", US), ("KeyReplicated", US), ("ReplicaKeyCreated", EU),
        ("AliasCreated", EU), ("AliasCreated", EU)]
    assert sum(every["usage_by_principal"].values()) == 2
    assert only_eu["regions"] == every["regions"][1:]
    assert [e["event"] for e in only_eu["timeline"]] == ["ReplicaKeyCreated", "AliasCreated", "AliasCreated"]
    assert only_eu["aliases_now"] == ["alias/app", "alias/eu-only"]
    assert sum(only_eu["usage_by_principal"].values()) == 1
    assert only_us["aliases_now"] == ["alias/app"] and {e["region"] for e in only_us["timeline"]} == {US}

    # a single-region key of another region: found there, its records name it
    eu_key = eu.create_key().key_metadata.key_id
    with kms.store.snapshot() as snap:
        found = forensics.key_timeline(snap, eu_key)
    assert found["regions"] == [{"region": EU, "key_state": "Enabled", "multi_region_key_type": None,
                                 "aliases_now": []}]
    assert [(e["event"], e["region"]) for e in found["timeline"]] == [("KeyCreated", EU)]
    blob = eu.encrypt(eu_key, b"x").ciphertext_blob
    eu.decrypt(blob)
    with kms.store.snapshot() as snap:
        history = forensics.ciphertext_history(snap, blob)
        keys = forensics.keys_at(snap, until_seq=snap.head().seq - 1)
    assert history["region"] == EU and history["produced_by"]["region"] == EU
    assert [u["region"] for u in history["later_uses"]] == [EU]
    assert {(k["key_id"], k["region"]) for k in keys} >= {(mrk, US), (mrk, EU), (eu_key, EU)}


def test_who_can_reads_the_regions_policy_and_grants(kms) -> None:
    eu = kms.in_region(EU)
    kms.create_user("alice")
    mrk = kms.create_key(multi_region=True).key_metadata.key_id
    kms.replicate_key(mrk, EU)
    eu.create_grant(mrk, ALICE, ["Decrypt"])  # a grant on the replica only
    eu_key = eu.create_key().key_metadata.key_id
    with kms.store.snapshot() as snap:
        at_eu = forensics.who_can(snap, mrk, "kms:Decrypt", account=ACCOUNT, region=EU)
        at_us = forensics.who_can(snap, mrk, "kms:Decrypt", account=ACCOUNT, region=US)
        single = forensics.who_can(snap, eu_key, "kms:Decrypt", account=ACCOUNT, region=EU)
        with pytest.raises(LedgerError) as info:
            forensics.who_can(snap, eu_key, "kms:Decrypt", account=ACCOUNT, region=US)
    assert ALICE in {a["principal"] for a in at_eu["allowed"]}
    assert ALICE in {d["principal"] for d in at_us["denied"]}
    assert (at_eu["region"], at_us["region"], single["region"]) == (EU, US, EU)
    assert single["key_state"] == "Enabled"
    assert str(info.value) == f"key {eu_key} did not exist in {US} at that time"


def test_the_answers_have_no_secret(kms) -> None:
    eu = kms.in_region(EU)
    mrk = kms.create_key(multi_region=True).key_metadata.key_id
    kms.replicate_key(mrk, EU)
    blob = eu.encrypt(mrk, b"sekrit-plaintext").ciphertext_blob
    with kms.store.snapshot() as snap:
        report = forensics.prove_decryptable(snap, root_of(kms), corpus=[(blob, {})])
        timeline = forensics.key_timeline(snap, mrk)
    text = json.dumps(timeline) + repr(report)
    assert "sekrit" not in text
