"""Secrets never show themselves: `Secret` hides its bytes and refuses to be
pickled or copied, responses that carry plaintext redact it from their
repr, and no error (nor its audit record) repeats the plaintext.
"""

from __future__ import annotations

import base64
import copy
import pickle
import traceback

import pytest

import keyledger
from keyledger.errors import KMSError
from keyledger.secret import Secret

VALUE = b"hunter2-correct-horse-battery-staple"
PLAINTEXT = b"PLAINTEXT-9d41c7-do-not-print"


def forms(value: bytes) -> list[str]:
    """Ways a byte string could leak into text."""
    return [repr(value), value.hex(), value.hex().upper(), base64.b64encode(value).decode(),
            value.decode("latin-1")]


def assert_hidden(text: str, *values: bytes) -> None:
    for value in values:
        for form in forms(value):
            assert form not in text


# -- Secret -----------------------------------------------------------------

def test_secret_text_forms_are_redacted():
    secret = Secret(VALUE)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret, "%r" % (secret,),
                 repr([secret]), repr({"k": secret}), repr((secret,))):
        assert_hidden(text, VALUE)
        assert "redacted" in text


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_secret_refuses_pickle(protocol):
    with pytest.raises(TypeError):
        pickle.dumps(Secret(VALUE), protocol=protocol)
    with pytest.raises(TypeError):  # nor hidden inside a container
        pickle.dumps({"key": [Secret(VALUE)]}, protocol=protocol)


def test_secret_refuses_copy_and_deepcopy():
    with pytest.raises(TypeError):
        copy.copy(Secret(VALUE))
    with pytest.raises(TypeError):
        copy.deepcopy(Secret(VALUE))
    with pytest.raises(TypeError):
        copy.deepcopy({"nested": [Secret(VALUE)]})


def test_secret_bytes_only_through_reveal():
    secret = Secret(bytearray(VALUE))
    assert secret.reveal() == VALUE and type(secret.reveal()) is bytes
    assert len(secret) == len(VALUE)
    with pytest.raises(TypeError):
        bytes(secret)
    with pytest.raises(AttributeError):  # __slots__: no instance dict to dump
        secret.__dict__
    with pytest.raises(TypeError):
        Secret("a str is not a secret")  # type: ignore[arg-type]


def test_secret_equality_is_by_value_and_hash_by_identity():
    a, b = Secret(VALUE), Secret(VALUE)
    assert a == b and a != Secret(b"other")
    assert hash(a) != hash(b) or a is b
    assert len({a, b}) == 2


# -- responses that carry plaintext ----------------------------------------------

@pytest.fixture
def kms(tmp_path):
    with keyledger.open(tmp_path / "ledger", create=True) as service:
        yield service


@pytest.fixture
def key(kms):
    return kms.create_key().key_metadata.key_id


def shown(response) -> list[str]:
    return [repr(response), str(response), f"{response}", "%s" % (response,), repr([response])]


def test_decrypt_response_redacts_plaintext(kms, key):
    blob = kms.encrypt(key, PLAINTEXT).ciphertext_blob
    response = kms.decrypt(blob)
    assert response.plaintext == PLAINTEXT
    for text in shown(response):
        assert_hidden(text, PLAINTEXT)
        assert "plaintext=<redacted>" in text and key in text


def test_generate_data_key_response_redacts_the_data_key(kms, key):
    response = kms.generate_data_key(key, key_spec="AES_256")
    for text in shown(response):
        assert_hidden(text, response.plaintext)
        assert "plaintext=<redacted>" in text
        assert repr(response.ciphertext_blob) in text  # the wrapped key is not secret


def test_generate_random_response_redacts_the_bytes(kms):
    response = kms.generate_random(number_of_bytes=64)
    assert len(response.plaintext) == 64
    for text in shown(response):
        assert_hidden(text, response.plaintext)
        assert "plaintext=<redacted>" in text


def test_the_service_shows_no_key_material(kms, key, tmp_path):
    kms.decrypt(kms.encrypt(key, PLAINTEXT).ciphertext_blob)  # fills the KEK and material caches
    root = (tmp_path / "ledger" / "root.key").read_bytes()
    cached = [kek.reveal() for _wrapped, kek in kms._keks.values()] + \
        [s.reveal() for s in kms._materials.values()]
    assert cached, "the caches should hold the key's KEK and material by now"
    for text in (repr(kms), repr(vars(kms))):
        assert_hidden(text, root, *cached)


# -- errors -----------------------------------------------------------------------

def error_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), getattr(exc, "message", ""), "".join(traceback.format_exception(exc))]


def test_no_failing_decrypt_names_the_plaintext(kms, key):
    other = kms.create_key().key_metadata.key_id
    context = {"purpose": "secret-test"}
    blob = kms.encrypt(key, PLAINTEXT, encryption_context=context).ciphertext_blob
    disabled_dest = kms.create_key().key_metadata.key_id
    kms.disable_key(disabled_dest)
    next_seq = kms.store.head().seq

    failures = [
        lambda: kms.decrypt(blob),                                             # missing context
        lambda: kms.decrypt(blob, encryption_context={"purpose": "other"}),   # wrong context
        lambda: kms.decrypt(blob[:-1], encryption_context=context),           # truncated
        lambda: kms.decrypt(blob, encryption_context=context, key_id=other),  # another key
        lambda: kms.re_encrypt(blob, disabled_dest, source_encryption_context=context),  # after decrypting
        lambda: kms.encrypt(key, PLAINTEXT * 200),                              # too long, not echoed
    ]
    kms_errors = []
    for call in failures:
        with pytest.raises(KMSError) as info:
            call()
        kms_errors.append(info.value)
    kms.disable_key(key)
    with pytest.raises(KMSError) as info:
        kms.decrypt(blob, encryption_context=context)
    kms_errors.append(info.value)

    assert [e.code for e in kms_errors] == [
        "InvalidCiphertextException", "InvalidCiphertextException", "InvalidCiphertextException",
        "IncorrectKeyException", "DisabledException", "ValidationException", "DisabledException"]
    for exc in kms_errors:
        for text in error_texts(exc):
            assert_hidden(text, PLAINTEXT)
    # nor does the audit log of those refusals
    for raw in kms.store.raw_records(next_seq):
        assert PLAINTEXT not in raw.body
