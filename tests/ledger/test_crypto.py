"""ledger.crypto against the known-answer vectors in tests/vectors/.

The vectors were computed by tests/vectors/generate.py, a second
implementation of the format that does not import ledger: if these tests
fail, either the format changed (bump the format byte and regenerate on
purpose) or ledger.crypto has a bug.
"""

from __future__ import annotations

import hmac
import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from keyledger import crypto
from keyledger.errors import InvalidCiphertextException, LedgerError
from keyledger.secret import Secret

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "ciphertext.json").read_text(encoding="utf-8"))
CASES = VECTORS["ciphertext"]
h = bytes.fromhex


def by_name(name: str) -> dict:
    return next(c for c in CASES if c["name"] == name)


def test_the_vectors_cover_what_they_claim():
    versions = {c["version"] for c in CASES}
    sizes = {len(h(c["plaintext"])) for c in CASES}
    assert {1, 0xFFFFFFFF} <= versions
    assert {1, 4096} <= sizes
    assert any(c["context"] == {} for c in CASES)
    assert any(any(ord(ch) > 0xFFFF for k in c["context"] for ch in k) for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
class TestCiphertextVectors:
    def test_canonical_context(self, case):
        assert crypto.canonical_context(case["context"]).hex() == case["canonical_context"]

    def test_canonical_context_ignores_key_order(self, case):
        reordered = dict(reversed(list(case["context"].items())))
        assert crypto.canonical_context(reordered).hex() == case["canonical_context"]

    def test_message_key(self, case):
        key = crypto._message_key(Secret(h(case["material"])), uuid.UUID(case["key_id"]).bytes,
                                  case["version"], h(case["salt"]))
        assert key.hex() == case["message_key"]

    def test_seal(self, case):
        blob = crypto.seal(Secret(h(case["material"])), case["key_id"], case["version"], h(case["plaintext"]),
                           crypto.canonical_context(case["context"]), salt=h(case["salt"]), nonce=h(case["nonce"]))
        assert blob.hex() == case["blob"]
        assert blob[:crypto.HEADER_BYTES].hex() == case["header"]

    def test_parse_header(self, case):
        assert crypto.parse_header(h(case["blob"])) == (case["key_id"], case["version"])

    def test_open(self, case):
        assert crypto.open_(Secret(h(case["material"])), h(case["blob"]), h(case["canonical_context"])) \
            == h(case["plaintext"])

    def test_open_refuses_another_context(self, case):
        other = crypto.canonical_context({**case["context"], "extra": "pair"})
        with pytest.raises(InvalidCiphertextException):
            crypto.open_(Secret(h(case["material"])), h(case["blob"]), other)

    def test_open_refuses_other_material(self, case):
        wrong = bytes(b ^ 1 for b in h(case["material"]))
        with pytest.raises(InvalidCiphertextException):
            crypto.open_(Secret(wrong), h(case["blob"]), h(case["canonical_context"]))


def test_length_prefixes_keep_a_bc_and_ab_c_apart():
    a_bc, ab_c = by_name("pair a=bc"), by_name("pair ab=c")
    assert a_bc["canonical_context"] != ab_c["canonical_context"]
    assert a_bc["blob"] != ab_c["blob"]
    material = Secret(h(a_bc["material"]))
    # Each one's blob opens only under its own context.
    assert crypto.open_(material, h(a_bc["blob"]), crypto.canonical_context({"a": "bc"})) == b"same"
    with pytest.raises(InvalidCiphertextException):
        crypto.open_(material, h(a_bc["blob"]), crypto.canonical_context({"ab": "c"}))
    with pytest.raises(InvalidCiphertextException):
        crypto.open_(material, h(ab_c["blob"]), crypto.canonical_context({"a": "bc"}))


@pytest.mark.parametrize("bad", VECTORS["invalid"], ids=[v["name"] for v in VECTORS["invalid"]])
def test_invalid_blobs_are_refused_the_same_way(bad):
    material = Secret(h(CASES[1]["material"]))
    with pytest.raises(InvalidCiphertextException) as parsed:
        crypto.parse_header(h(bad["blob"]))
    assert parsed.value.message == ""  # as AWS sends it: no reason at all
    if len(h(bad["blob"])) < crypto.MIN_CIPHERTEXT_BYTES:
        with pytest.raises(InvalidCiphertextException):
            crypto.open_(material, h(bad["blob"]), crypto.canonical_context(CASES[1]["context"]))


def test_seal_refuses_wrong_salt_or_nonce_sizes():
    case = CASES[0]
    args = (Secret(h(case["material"])), case["key_id"], 1, b"x", b"\x00\x00")
    with pytest.raises(ValueError):
        crypto.seal(*args, salt=b"\x00" * 15, nonce=b"\x00" * 12)
    with pytest.raises(ValueError):
        crypto.seal(*args, salt=b"\x00" * 16, nonce=b"\x00" * 16)


# -- HKDF -------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(ikm=st.binary(min_size=0, max_size=80), salt=st.binary(min_size=0, max_size=80),
       info=st.binary(min_size=0, max_size=80))
def test_hkdf_equals_cryptography_hkdf(ikm, salt, info):
    expected = HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(ikm)
    assert crypto._hkdf_sha256_32(ikm, salt, info) == expected


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_the_hashlib_hmac_equals_hmac_digest(key, message):
    assert crypto._hmac_sha256(key, message) == hmac.digest(key, message, "sha256")


# -- wrapping ---------------------------------------------------------------

@pytest.mark.parametrize("v", VECTORS["wrap_material"], ids=lambda v: f"version-{v['version']}")
def test_wrap_material_vector_and_aad_binding(v):
    kek, material = Secret(h(v["kek"])), Secret(h(v["material"]))
    wrapped = crypto.wrap_material(kek, v["key_id"], v["version"], material, nonce=h(v["nonce"]))
    assert wrapped.hex() == v["wrapped"]
    assert crypto.unwrap_material(kek, v["key_id"], v["version"], wrapped) == material
    # The AAD binds key id and version: the same bytes do not unwrap as
    # another version of this key, nor as this version of another key.
    other_version = v["version"] - 1 if v["version"] > 1 else v["version"] + 1
    with pytest.raises(LedgerError):
        crypto.unwrap_material(kek, v["key_id"], other_version, wrapped)
    with pytest.raises(LedgerError):
        crypto.unwrap_material(kek, str(uuid.UUID(int=uuid.UUID(v["key_id"]).int ^ 1)), v["version"], wrapped)
    with pytest.raises(LedgerError):
        crypto.unwrap_material(Secret(bytes(32)), v["key_id"], v["version"], wrapped)


@pytest.mark.parametrize("v", VECTORS["wrap_kek"], ids=lambda v: v["key_id"])
def test_wrap_kek_vector_and_aad_binding(v):
    root, kek = Secret(h(v["root"])), Secret(h(v["kek"]))
    wrapped = crypto.wrap_kek(root, v["key_id"], kek, nonce=h(v["nonce"]))
    assert wrapped.hex() == v["wrapped"]
    assert crypto.unwrap_kek(root, v["key_id"], wrapped) == kek
    others = [w["key_id"] for w in VECTORS["wrap_kek"] if w["key_id"] != v["key_id"]]
    for other in others:
        with pytest.raises(LedgerError):
            crypto.unwrap_kek(root, other, wrapped)
    with pytest.raises(LedgerError):
        crypto.unwrap_kek(root, v["key_id"], wrapped[:-1])
    with pytest.raises(LedgerError):
        crypto.unwrap_kek(Secret(bytes(32)), v["key_id"], wrapped)


def test_unwrap_errors_name_no_secret():
    v = VECTORS["wrap_material"][0]
    wrapped = h(v["wrapped"])
    with pytest.raises(LedgerError) as info:
        crypto.unwrap_material(Secret(h(v["kek"])), v["key_id"], v["version"] + 1, wrapped)
    text = str(info.value)
    for secret_hex in (v["kek"], v["material"]):
        assert secret_hex not in text and secret_hex.upper() not in text


# -- key check values -------------------------------------------------------

@pytest.mark.parametrize("v", VECTORS["kcv"], ids=lambda v: v["material"][:8])
def test_kcv_vector(v):
    material = Secret(h(v["material"]))
    assert crypto.kcv(material).hex() == v["kcv"]
    assert crypto.kcv_matches(material, h(v["kcv"]))
    assert not crypto.kcv_matches(material, bytes(16))


def test_kcvs_tell_materials_apart():
    assert len({v["kcv"] for v in VECTORS["kcv"]}) == len(VECTORS["kcv"])


@pytest.mark.parametrize("v", VECTORS["root_check"])
def test_root_check_vector(v):
    assert crypto.root_check(Secret(h(v["root"]))).hex() == v["check"]
    # The root check is not the KCV of the same bytes: different labels.
    assert crypto.root_check(Secret(h(v["root"]))) != crypto.kcv(Secret(h(v["root"])))
