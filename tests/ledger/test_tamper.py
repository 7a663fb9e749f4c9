"""Tampering with a ciphertext or its encryption context is refused, always
the same way: `InvalidCiphertextException`, no reason, no secret.

Everything goes through `KeyLedger.decrypt` on a real ledger, so the header
checks, key lookup, version lookup and the AEAD tag are all exercised.
"""

from __future__ import annotations

import traceback
import uuid

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import keyledger
from keyledger import crypto
from keyledger.errors import (
    IncorrectKeyException, InvalidCiphertextException, KMSError, ValidationException,
)

OPAQUE = ""  # AWS sends InvalidCiphertextException with an empty message
SECRET = b"TOP-SECRET-PLAINTEXT-7f3a9c"  # recognizable, to look for in errors
KEY_ID_FIELD = range(3, 19)  # bytes of the 16-byte key id in the header
VERSION_FIELD = range(19, 23)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

contexts = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=12), max_size=4)
plaintexts = st.binary(min_size=1, max_size=300)


@pytest.fixture(scope="module")
def kms(tmp_path_factory):
    with keyledger.open(tmp_path_factory.mktemp("tamper"), create=True, durability="relaxed") as service:
        yield service


@pytest.fixture(scope="module")
def key(kms):
    return kms.create_key(description="tamper target").key_metadata.key_id


@pytest.fixture(scope="module")
def other_key(kms):
    return kms.create_key(description="another key").key_metadata.key_id


def assert_opaque(kms, blob, context=None, **kwargs) -> InvalidCiphertextException:
    """Decrypt must raise exactly InvalidCiphertextException with the one
    opaque message; any other exception propagates and fails the test."""
    try:
        kms.decrypt(blob, encryption_context=context, **kwargs)
    except InvalidCiphertextException as exc:
        assert type(exc) is InvalidCiphertextException
        assert exc.message == OPAQUE
        assert exc.__cause__ is None
        assert exc.__context__ is None or exc.__suppress_context__
        return exc
    raise AssertionError("a tampered ciphertext decrypted")


def flip(blob: bytes, bit: int) -> bytes:
    out = bytearray(blob)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- the ciphertext ---------------------------------------------------------

def test_every_single_bit_flip_of_a_small_ciphertext(kms, key):
    blob = kms.encrypt(key, b"k", encryption_context={"purpose": "exhaustive"}).ciphertext_blob
    for bit in range(len(blob) * 8):
        assert_opaque(kms, flip(blob, bit), {"purpose": "exhaustive"})
    assert kms.decrypt(blob, encryption_context={"purpose": "exhaustive"}).plaintext == b"k"


@SETTINGS
@given(plaintext=plaintexts, context=contexts, data=st.data())
def test_any_bit_flip(kms, key, plaintext, context, data):
    blob = kms.encrypt(key, plaintext, encryption_context=context).ciphertext_blob
    bit = data.draw(st.integers(0, len(blob) * 8 - 1), label="bit")
    assert_opaque(kms, flip(blob, bit), context)


@SETTINGS
@given(plaintext=plaintexts, context=contexts, data=st.data())
def test_any_truncation(kms, key, plaintext, context, data):
    blob = kms.encrypt(key, plaintext, encryption_context=context).ciphertext_blob
    keep = data.draw(st.integers(1, len(blob) - 1), label="keep")
    assert_opaque(kms, blob[:keep], context)
    assert_opaque(kms, blob[len(blob) - keep:], context)  # the tail alone, too


def test_truncation_to_nothing_is_a_validation_error(kms, key):
    # AWS constrains CiphertextBlob to 1..6144 bytes before looking at it.
    with pytest.raises(ValidationException):
        kms.decrypt(b"")


@SETTINGS
@given(plaintext=plaintexts, context=contexts, extra=st.binary(min_size=1, max_size=64),
       at_front=st.booleans())
def test_any_extension(kms, key, plaintext, context, extra, at_front):
    blob = kms.encrypt(key, plaintext, encryption_context=context).ciphertext_blob
    assert_opaque(kms, extra + blob if at_front else blob + extra, context)


def test_extension_up_to_the_aws_maximum(kms, key):
    blob = kms.encrypt(key, SECRET).ciphertext_blob
    assert_opaque(kms, blob + b"\x00" * (6144 - len(blob)))
    with pytest.raises(ValidationException):  # CiphertextBlob is at most 6144 bytes
        kms.decrypt(blob + b"\x00" * (6145 - len(blob)))


@SETTINGS
@given(data=st.binary(min_size=1, max_size=200))
def test_random_bytes(kms, data):
    assert_opaque(kms, data)


def test_key_id_field_naming_an_unknown_key(kms, key):
    blob = kms.encrypt(key, SECRET).ciphertext_blob
    for bit in range(KEY_ID_FIELD.start * 8, KEY_ID_FIELD.stop * 8):
        tampered = flip(blob, bit)
        named, _ = crypto.parse_header(tampered)
        assert named != key
        assert_opaque(kms, tampered)


def test_key_id_field_naming_another_existing_key(kms, key, other_key):
    blob = kms.encrypt(key, SECRET).ciphertext_blob
    swapped = blob[:3] + uuid.UUID(other_key).bytes + blob[19:]
    assert crypto.parse_header(swapped)[0] == other_key
    assert_opaque(kms, swapped)


def test_version_field_naming_a_missing_or_other_version(kms):
    key = kms.create_key(description="versions").key_metadata.key_id
    v1 = kms.encrypt(key, SECRET).ciphertext_blob
    kms.rotate_key_on_demand(key)
    v2 = kms.encrypt(key, SECRET).ciphertext_blob
    assert crypto.parse_header(v1)[1] == 1 and crypto.parse_header(v2)[1] == 2

    def with_version(blob: bytes, version: int) -> bytes:
        return blob[:VERSION_FIELD.start] + version.to_bytes(4, "big") + blob[VERSION_FIELD.stop:]

    for version in (0, 3, 4, 2**31, 2**32 - 1):
        assert_opaque(kms, with_version(v1, version))
    assert_opaque(kms, with_version(v1, 2))  # exists, but is not this blob's version
    assert_opaque(kms, with_version(v2, 1))
    assert kms.decrypt(v1).plaintext == kms.decrypt(v2).plaintext == SECRET


@SETTINGS
@given(plaintext=plaintexts, data=st.data())
def test_bit_flips_with_the_right_key_id_given(kms, key, plaintext, data):
    blob = kms.encrypt(key, plaintext).ciphertext_blob
    outside_key_id = st.integers(0, len(blob) * 8 - 1).filter(lambda b: b // 8 not in KEY_ID_FIELD)
    assert_opaque(kms, flip(blob, data.draw(outside_key_id, label="bit")), key_id=key)


def test_key_id_field_flipped_with_the_key_id_given_is_incorrect_key(kms, key):
    # The blob now names another key than the one requested: AWS's definition
    # of IncorrectKeyException. Either way, nothing is decrypted.
    blob = kms.encrypt(key, SECRET).ciphertext_blob
    with pytest.raises(IncorrectKeyException):
        kms.decrypt(flip(blob, KEY_ID_FIELD.start * 8 + 5), key_id=key)


@settings(max_examples=40, deadline=None)
@given(plaintext=plaintexts, context=contexts, data=st.data())
def test_re_encrypt_refuses_tampering_too(kms, key, other_key, plaintext, context, data):
    blob = kms.encrypt(key, plaintext, encryption_context=context).ciphertext_blob
    bit = data.draw(st.integers(0, len(blob) * 8 - 1), label="bit")
    with pytest.raises(InvalidCiphertextException) as info:
        kms.re_encrypt(flip(blob, bit), other_key, source_encryption_context=context)
    assert type(info.value) is InvalidCiphertextException and info.value.message == OPAQUE


# -- the encryption context -------------------------------------------------

@SETTINGS
@given(plaintext=plaintexts, context=contexts.filter(bool), data=st.data())
def test_wrong_missing_or_extra_context_entry(kms, key, plaintext, context, data):
    blob = kms.encrypt(key, plaintext, encryption_context=context).ciphertext_blob
    name = data.draw(st.sampled_from(sorted(context)), label="entry")
    wrong_value = data.draw(st.text(max_size=12).filter(lambda v: v != context[name]), label="value")
    extra_key = data.draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in context), label="extra")

    assert_opaque(kms, blob, {**context, name: wrong_value})
    assert_opaque(kms, blob, {k: v for k, v in context.items() if k != name})
    assert_opaque(kms, blob, {**context, extra_key: ""})
    assert_opaque(kms, blob, None)
    assert kms.decrypt(blob, encryption_context=context).plaintext == plaintext


@SETTINGS
@given(plaintext=plaintexts, extra=contexts.filter(bool))
def test_context_given_where_none_was_used(kms, key, plaintext, extra):
    blob = kms.encrypt(key, plaintext).ciphertext_blob
    assert_opaque(kms, blob, extra)


def test_concatenation_ambiguity_is_refused(kms, key):
    blob = kms.encrypt(key, SECRET, encryption_context={"a": "bc"}).ciphertext_blob
    assert_opaque(kms, blob, {"ab": "c"})
    assert_opaque(kms, blob, {"a": "b", "c": ""})


@SETTINGS
@given(plaintext=plaintexts, context=st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=12),
                                                      min_size=2, max_size=6),
       data=st.data())
def test_same_context_in_another_key_order_decrypts(kms, key, plaintext, context, data):
    blob = kms.encrypt(key, plaintext, encryption_context=context).ciphertext_blob
    order = data.draw(st.permutations(list(context)), label="order")
    assume(order != list(context))
    reordered = {k: context[k] for k in order}
    assert kms.decrypt(blob, encryption_context=reordered).plaintext == plaintext


# -- the key named in the request -------------------------------------------

def test_decrypt_with_another_keys_id_is_incorrect_key(kms, key, other_key):
    alias = "alias/tamper-other"
    kms.create_alias(alias, other_key)
    blob = kms.encrypt(key, SECRET).ciphertext_blob
    arn = f"arn:aws:kms:{kms.region}:{kms.account}:"
    for form in (other_key, arn + "key/" + other_key, alias, arn + alias):
        with pytest.raises(IncorrectKeyException) as info:
            kms.decrypt(blob, key_id=form)
        assert type(info.value) is IncorrectKeyException
        assert SECRET.decode() not in str(info.value)
    for form in (key, arn + "key/" + key):
        assert kms.decrypt(blob, key_id=form).plaintext == SECRET


# -- what the errors say ----------------------------------------------------

def test_errors_carry_no_reason_and_no_secret(kms, key):
    context = {"tenant": "acme"}
    blob = kms.encrypt(key, SECRET, encryption_context=context).ciphertext_blob
    next_seq = kms.store.head().seq
    failures = [
        flip(blob, 0),                      # magic
        flip(blob, 2 * 8),                  # format byte
        flip(blob, 4 * 8),                  # key id
        flip(blob, 22 * 8),                 # version
        flip(blob, 30 * 8),                 # salt
        flip(blob, 45 * 8),                 # nonce
        flip(blob, len(blob) * 8 - 1),      # tag
        blob[:-1],                          # truncated
        blob + b"\x00",                     # extended
    ]
    errors = [assert_opaque(kms, bad, context) for bad in failures]
    errors.append(assert_opaque(kms, blob, {"tenant": "other"}))
    errors.append(assert_opaque(kms, blob))

    # One message for every cause: nothing to tell them apart.
    assert {str(e) for e in errors} == {"InvalidCiphertextException"}  # no reason, not even an empty one
    assert {repr(e) for e in errors} == {f"InvalidCiphertextException({OPAQUE!r})"}
    for exc in errors:
        shown = "".join(traceback.format_exception(exc))
        assert "InvalidTag" not in shown
        assert SECRET.decode() not in shown and SECRET.hex() not in shown

    # Each refusal is in the log with the same code and message, and the log
    # holds no plaintext.
    denied = [r for r in kms.store.records(next_seq)]
    assert [r.operation for r in denied] == ["Decrypt"] * len(errors)
    assert {(r.event.error_code, r.event.error_message) for r in denied} == \
        {("InvalidCiphertextException", OPAQUE)}
    for raw in kms.store.raw_records(next_seq):
        assert SECRET not in raw.body


def test_only_kms_errors_escape(kms, key):
    # A sweep of structurally odd inputs: each is refused with an AWS-named
    # error, never a TypeError, struct.error, ValueError or UnicodeError.
    blob = kms.encrypt(key, SECRET).ciphertext_blob
    odd = [b"\x00", b"KL", b"KL\x01", blob[:51], blob[:66], bytearray(blob[:-2]), memoryview(blob[:-3]),
           b"\xff" * 67, b"KL\x01" + b"\xff" * 64]
    for value in odd:
        with pytest.raises(KMSError) as info:
            kms.decrypt(value)
        assert type(info.value) is InvalidCiphertextException
