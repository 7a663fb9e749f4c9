"""One way from a stored key version to its material (`crypto.material_for`):
unwrap under the key's KEK, then check the KCV. The request path and the
decryptability proof both take it, so the proof accepts exactly what a
Decrypt would use, and both name a failure in the same words."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from msgspec.structs import replace

import keyledger
from keyledger import crypto, forensics
from keyledger import events as ev
from keyledger.errors import KeyMaterialError, LedgerError
from keyledger.projections import decode_row, encode_row, key_row
from keyledger.secret import Secret
from tamperkit import raw

KEY = "0f0e0d0c-0b0a-4908-8706-050403020100"


def _stored(kek: Secret, material: Secret, version: int = 1) -> ev.WrappedMaterial:
    wrapped = crypto.wrap_material(kek, KEY, version, material, nonce=os.urandom(crypto.NONCE_BYTES))
    return ev.WrappedMaterial(version, wrapped, crypto.kcv(material))


def test_material_for_gives_back_what_was_wrapped() -> None:
    kek, material = Secret(os.urandom(32)), Secret(os.urandom(32))
    got = crypto.material_for(kek, KEY, 1, _stored(kek, material))
    assert got.reveal() == material.reveal()
    assert crypto.material_or_reason(kek, KEY, 1, _stored(kek, material))[1] == ""


def test_a_wrong_kek_or_version_does_not_unwrap() -> None:
    kek, material = Secret(os.urandom(32)), Secret(os.urandom(32))
    stored = _stored(kek, material)
    with pytest.raises(KeyMaterialError, match=f"version 1 of key {KEY} does not unwrap"):
        crypto.material_for(Secret(os.urandom(32)), KEY, 1, stored)
    with pytest.raises(KeyMaterialError, match="does not unwrap"):  # the AAD binds the version
        crypto.material_for(kek, KEY, 2, stored)
    found, why = crypto.material_or_reason(Secret(os.urandom(32)), KEY, 1, stored)
    assert found is None and why.startswith(f"version 1 of key {KEY} does not unwrap")


def test_material_that_fails_its_kcv_is_refused() -> None:
    kek, material = Secret(os.urandom(32)), Secret(os.urandom(32))
    stored = replace(_stored(kek, material), kcv=crypto.kcv(Secret(os.urandom(32))))
    with pytest.raises(KeyMaterialError, match=f"version 1 of key {KEY} fails its key check value"):
        crypto.material_for(kek, KEY, 1, stored)
    assert crypto.material_or_reason(kek, KEY, 1, stored) == \
        (None, f"version 1 of key {KEY} fails its key check value")
    assert issubclass(KeyMaterialError, LedgerError)  # the ledger is damaged, not the request


def _ledger_with_a_ciphertext(home: Path) -> tuple[str, bytes]:
    with keyledger.open(home, create=True) as kms:
        key = kms.create_key().key_metadata.key_id
        blob = kms.encrypt(key, b"kept", encryption_context={"n": "1"}).ciphertext_blob
    return key, blob


def _damage_version(home: Path, key: str, **change: bytes) -> None:
    with raw(home) as (txn, dbs):
        state = decode_row("keys", txn.get(key_row(key), db=dbs["keys"]))
        [v1] = state.versions
        txn.put(key_row(key), encode_row(replace(state, versions=(replace(v1, **change),))), db=dbs["keys"])


@pytest.mark.parametrize("damage", ["wrapped", "kcv"])
def test_decrypt_and_the_proof_refuse_in_the_same_words(tmp_path: Path, damage: str) -> None:
    key, blob = _ledger_with_a_ciphertext(tmp_path)
    with raw(tmp_path) as (txn, dbs):
        [v1] = decode_row("keys", txn.get(key_row(key), db=dbs["keys"])).versions
    flipped = bytearray(getattr(v1, damage))
    flipped[-1] ^= 0x01
    _damage_version(tmp_path, key, **{damage: bytes(flipped)})
    with keyledger.open(tmp_path) as kms:  # a fresh handle: nothing cached
        with pytest.raises(KeyMaterialError) as refused:
            kms.decrypt(blob, encryption_context={"n": "1"})
        with kms.store.snapshot() as snap:
            report = forensics.prove_decryptable(snap, kms._root, corpus=[(blob, {"n": "1"})])
    [verdict] = report.keys
    assert [(v.version, v.ok, v.reason) for v in verdict.versions] == [(1, False, str(refused.value))]
    # the corpus line is refused by the same check (before, only the proof's
    # own pass checked the KCV; the corpus pass went straight to opening)
    assert report.corpus_failures == [f"line 1: {refused.value}"]
