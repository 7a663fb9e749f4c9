"""Envelope encryption (keyledger.envelope) on real ledgers: AWS Encryption
SDK messages whose data keys are ledger records.

Round trips of every size around the frame boundaries (hypothesis), the
defaults (commitment policy, signing suite), the records each message makes,
several keys at once and in two ledgers (two regions), the encryption context
checked before any key is used, tampered and cut messages refused with no
plaintext left anywhere, the ESDK's own client decrypting with the ledger's
provider, forensics finding a message's data keys, and a file larger than
the LMDB map's initial size streamed with bounded memory.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keyledger
from keyledger import envelope
from keyledger import events as ev
from keyledger import forensics
from keyledger.envelope import (
    EncryptionContextMismatchError,
    EnvelopeError,
    InvalidMessageError,
    MissingDependencyError,
    NoDataKeyError,
)
from keyledger.errors import AccessDeniedException, DisabledException, NotFoundException
from keyledger.store import INITIAL_MAP_SIZE

BOB = "arn:aws:iam::111122223333:user/bob"


@pytest.fixture
def kms(tmp_path: Path) -> Any:
    with keyledger.open(tmp_path / "ledger", create=True, durability="relaxed") as handle:
        yield handle


def new_key(kms: Any) -> str:
    return kms.create_key(description="files").key_metadata.arn


def records(kms: Any, start: int) -> list[ev.Record]:
    return list(kms.store.records(start))


def head(kms: Any) -> int:
    return kms.store.head().seq


# -- round trips and defaults ---------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.sampled_from([0, 1, 127, 128, 129, 255, 256, 257, 4095, 4096, 4097]) | st.integers(0, 2000),
       frame=st.sampled_from([128, 256, 4096]),
       context=st.dictionaries(st.text("abcxyz", min_size=1, max_size=5), st.text(max_size=8), max_size=3))
def test_every_size_round_trips_as_a_stream(kms: Any, size: int, frame: int, context: dict[str, str]) -> None:
    key = new_key(kms)
    plaintext = os.urandom(size)
    out = io.BytesIO()
    info = kms.encrypt_stream(key, io.BytesIO(plaintext), out, encryption_context=context, frame_length=frame)
    assert info.plaintext_bytes == size and info.message_bytes == len(out.getvalue())
    back = io.BytesIO()
    opened = kms.decrypt_stream(io.BytesIO(out.getvalue()), back, encryption_context=context)
    assert back.getvalue() == plaintext
    assert opened.message_id == info.message_id and opened.plaintext_bytes == size


def test_defaults_are_the_esdks_safest(kms: Any) -> None:
    key = new_key(kms)
    message = kms.encrypt_bytes(key, b"data")
    info = envelope.read_message_header(io.BytesIO(message))
    assert info.algorithm == "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384" == envelope.DEFAULT_ALGORITHM
    assert "aws-crypto-public-key" in info.encryption_context  # the signing suite's public key
    assert info.frame_length == envelope.DEFAULT_FRAME_LENGTH
    assert info.key_arns == [key]
    # a message without key commitment is refused by the default policy
    old = envelope.encrypt_bytes(kms, key, b"old", algorithm="AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384",
                                 commitment_policy="FORBID_ENCRYPT_ALLOW_DECRYPT")
    with pytest.raises(InvalidMessageError) as refused:
        kms.decrypt_bytes(old)
    assert isinstance(refused.value.__cause__, aws_encryption_sdk.exceptions.AWSEncryptionSDKClientError)
    assert envelope.decrypt_bytes(kms, old, commitment_policy="REQUIRE_ENCRYPT_ALLOW_DECRYPT") == b"old"
    with pytest.raises(EnvelopeError, match="refused to encrypt"):  # the policy forbids it on encrypt
        envelope.encrypt_bytes(kms, key, b"x", algorithm="AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384")


def test_bad_options_fail_before_any_request(kms: Any) -> None:
    key = new_key(kms)
    start = head(kms)
    for kwargs in ({"frame_length": 0}, {"frame_length": 100}, {"frame_length": 2**31}, {"algorithm": "AES_999"}):
        with pytest.raises(ValueError):
            kms.encrypt_bytes(key, b"x", **kwargs)
    with pytest.raises(ValueError):
        kms.encrypt_bytes([], b"x")
    with pytest.raises(TypeError):
        kms.encrypt_bytes(key, b"x", encryption_context={"a": 1})
    assert head(kms) == start


def test_the_esdks_reserved_context_keys_are_refused(kms: Any) -> None:
    """The ESDK would silently overwrite aws-crypto-public-key with its signing key."""
    key = new_key(kms)
    start = head(kms)
    for reserved in ("aws-crypto-public-key", "aws-crypto-anything"):
        with pytest.raises(ValueError, match="AWS Encryption SDK's own"):
            kms.encrypt_bytes(key, b"x", encryption_context={reserved: "mine"})
    assert head(kms) == start


# -- the records -------------------------------------------------------------------

def test_each_data_key_is_a_record_with_the_messages_context(kms: Any) -> None:
    a, b = new_key(kms), new_key(kms)
    start = head(kms)
    message = kms.encrypt_bytes([a, b], b"payload", encryption_context={"purpose": "backup"})
    info = envelope.read_message_header(io.BytesIO(message))
    made = records(kms, start)
    assert [r.operation for r in made] == ["GenerateDataKey", "Encrypt"]
    generated, wrapped = made[0].event, made[1].event
    assert isinstance(generated, ev.DataKeyGenerated) and isinstance(wrapped, ev.Encrypted)
    assert generated.number_of_bytes == 32 and generated.plaintext_returned
    assert generated.encryption_context == wrapped.encryption_context == info.encryption_context
    edks = {e.key_info: e.ciphertext for e in info.encrypted_data_keys}
    assert generated.ciphertext_digest == hashlib.sha256(edks[a]).digest()
    assert wrapped.ciphertext_digest == hashlib.sha256(edks[b]).digest()
    start = head(kms)
    assert kms.decrypt_bytes(message) == b"payload"
    [opened] = records(kms, start)
    assert opened.operation == "Decrypt" and opened.event.encryption_context == info.encryption_context
    assert opened.event.ciphertext_digest in (generated.ciphertext_digest, wrapped.ciphertext_digest)


def test_forensics_names_every_data_key_of_a_message(kms: Any) -> None:
    a, b = new_key(kms), new_key(kms)
    message = kms.encrypt_bytes([a, b], b"payload")
    kms.decrypt_bytes(message)
    info = envelope.read_message_header(io.BytesIO(message))
    with kms.store.snapshot() as snap:
        found = forensics.message_history(snap, info)
    assert found["message_id"] == info.message_id
    by_key = {k["key_info"]: k["history"] for k in found["encrypted_data_keys"]}
    assert by_key[a]["produced_by"]["operation"] == "GenerateDataKey"
    assert by_key[b]["produced_by"]["operation"] == "Encrypt"
    uses = [u["operation"] for h in by_key.values() for u in h["later_uses"]]
    assert uses == ["Decrypt"]
    with pytest.raises(InvalidMessageError):
        envelope.read_message_header(io.BytesIO(b"\x02garbage"))


# -- several keys ------------------------------------------------------------------

def test_any_one_key_of_several_decrypts(kms: Any) -> None:
    a, b = new_key(kms), new_key(kms)
    message = kms.encrypt_bytes([a, b], b"either")
    kms.disable_key(a)
    assert kms.decrypt_bytes(message) == b"either"
    start = head(kms)
    assert kms.decrypt_bytes(message, key_ids=[b]) == b"either"
    assert [r.event.key_id for r in records(kms, start)] == [b.rsplit("/", 1)[1]]  # a was not even tried
    kms.disable_key(b)
    with pytest.raises(DisabledException) as refused:
        kms.decrypt_bytes(message)
    assert any("also refused" in note for note in refused.value.__notes__)
    kms.enable_key(a)
    kms.enable_key(b)
    assert kms.decrypt_bytes(message, key_ids=[a.rsplit("/", 1)[1]]) == b"either"  # a bare key id works too
    other = new_key(kms)
    start = head(kms)
    with pytest.raises(NoDataKeyError):  # the caller allowed only a key the message is not under
        kms.decrypt_bytes(message, key_ids=[other])
    assert head(kms) == start


def test_keys_in_two_ledgers_two_regions_each_decrypt(tmp_path: Path) -> None:
    with keyledger.open(tmp_path / "east", create=True) as east, \
            keyledger.open(tmp_path / "west", create=True, region="eu-west-1") as west:
        e, w = new_key(east), new_key(west)
        both = east.master_key_provider([e])
        both.add_master_key_provider(west.master_key_provider([w]))
        client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
        message, header = client.encrypt(source=b"replicated", key_provider=both,
                                         algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384)
        assert {k.key_provider.key_info.decode() for k in header.encrypted_data_keys} == {e, w}
        start = head(east)
        assert west.decrypt_bytes(message) == b"replicated"
        assert head(east) == start  # west never asked east, nor the reverse
        assert east.decrypt_bytes(message) == b"replicated"


def test_the_esdks_own_client_uses_the_ledgers_provider(kms: Any) -> None:
    key = new_key(kms)
    client = aws_encryption_sdk.EncryptionSDKClient()
    message, _ = client.encrypt(source=b"direct", key_provider=kms.master_key_provider([key]))
    assert kms.decrypt_bytes(message) == b"direct"
    assert client.decrypt(source=kms.encrypt_bytes(key, b"back"), key_provider=kms.master_key_provider())[0] == b"back"


# -- refusals -------------------------------------------------------------------------

def test_the_ledgers_refusal_is_raised_as_itself_and_recorded(kms: Any) -> None:
    key = new_key(kms)
    with pytest.raises(NotFoundException):
        kms.encrypt_bytes("alias/none", b"x")
    bob = kms.as_caller(BOB)
    start = head(kms)
    with pytest.raises(AccessDeniedException):
        bob.encrypt_bytes(key, b"x")
    message = kms.encrypt_bytes(key, b"x")
    with pytest.raises(AccessDeniedException):
        bob.decrypt_bytes(message)
    denied = [(r.operation, r.event.error_code) for r in records(kms, start) if isinstance(r.event, ev.RequestDenied)]
    assert denied == [("GenerateDataKey", "AccessDeniedException"), ("Decrypt", "AccessDeniedException")]


def test_a_wrong_context_is_refused_before_any_key_is_used(kms: Any, tmp_path: Path) -> None:
    key = new_key(kms)
    message = kms.encrypt_bytes(key, b"secret", encryption_context={"purpose": "backup", "team": "x"})
    assert kms.decrypt_bytes(message, encryption_context={"purpose": "backup"}) == b"secret"  # a subset is enough
    start = head(kms)
    for wrong in ({"purpose": "restore"}, {"other": "x"}, {"purpose": "backup", "team": "y"}):
        with pytest.raises(EncryptionContextMismatchError) as refused:
            kms.decrypt_bytes(message, encryption_context=wrong)
        assert "secret" not in str(refused.value)
    assert head(kms) == start  # no Decrypt was asked for
    (tmp_path / "m.enc").write_bytes(message)
    with pytest.raises(EncryptionContextMismatchError):
        kms.decrypt_file(tmp_path / "m.enc", tmp_path / "m", encryption_context={"purpose": "restore"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger", "m.enc"]


def _tamper(message: bytes, where: str) -> bytes:
    b = bytearray(message)
    pos = {"header": 40, "body": len(b) // 2, "signature": len(b) - 20}[where]
    b[pos] ^= 0x01
    return bytes(b)


@pytest.mark.parametrize("where", ["header", "body", "signature", "cut", "no-signature", "empty", "junk"])
def test_a_tampered_or_cut_message_leaves_no_plaintext(kms: Any, tmp_path: Path, where: str) -> None:
    key = new_key(kms)
    plaintext = b"TOP-SECRET-" * 30_000  # several frames
    message = kms.encrypt_bytes(key, plaintext, frame_length=4096)
    cut = {"cut": message[: len(message) // 2], "no-signature": message[:-103], "empty": b"",
           "junk": b"\x02" + os.urandom(500)}
    bad = cut[where] if where in cut else _tamper(message, where)
    with pytest.raises(InvalidMessageError) as refused:
        kms.decrypt_bytes(bad)
    assert b"TOP-SECRET" not in str(refused.value).encode()
    src = tmp_path / "in.enc"
    src.write_bytes(bad)
    with pytest.raises(InvalidMessageError):
        kms.decrypt_file(src, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.enc", "ledger"]  # no output, no temporary file
    out = io.BytesIO()
    with pytest.raises(InvalidMessageError):
        kms.decrypt_stream(io.BytesIO(bad), out, spool_dir=tmp_path)
    assert out.getvalue() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["in.enc", "ledger"]


def test_a_failed_encryption_leaves_no_output(kms: Any, tmp_path: Path) -> None:
    key = new_key(kms)
    kms.disable_key(key)
    (tmp_path / "f").write_bytes(b"data")
    with pytest.raises(DisabledException):
        kms.encrypt_file(key, tmp_path / "f", tmp_path / "f.enc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "ledger"]


def test_without_the_sdk_the_error_says_what_to_install(kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "keyledger.esdk_provider", raising=False)
    for name in [m for m in sys.modules if m == "aws_encryption_sdk" or m.startswith("aws_encryption_sdk.")]:
        monkeypatch.setitem(sys.modules, name, None)  # what an absent package looks like
    with pytest.raises(MissingDependencyError, match=r"pip install 'keyledger\[files\]'"):
        kms.encrypt_bytes("alias/x", b"x")
    assert isinstance(MissingDependencyError("x"), ImportError)


# -- files and memory --------------------------------------------------------------------

def test_files_are_written_whole_and_private(kms: Any, tmp_path: Path) -> None:
    key = new_key(kms)
    src = tmp_path / "plain"
    src.write_bytes(os.urandom(300_000))
    seen: list[int] = []
    info = kms.encrypt_file(key, src, tmp_path / "plain.enc", progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 300_000 == info.plaintext_bytes
    assert (tmp_path / "plain.enc").stat().st_mode & 0o777 == 0o600
    kms.decrypt_file(tmp_path / "plain.enc", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    assert (tmp_path / "back").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back", "ledger", "plain", "plain.enc"]


def _sha256_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def test_a_file_larger_than_the_initial_map_streams_in_bounded_memory(kms: Any, tmp_path: Path) -> None:
    size = INITIAL_MAP_SIZE + (1 << 20) + 12345
    src = tmp_path / "big"
    with open(src, "wb") as f:
        block = os.urandom(1 << 20)
        written = 0
        while written < size:
            piece = block[: size - written]
            f.write(piece)
            written += len(piece)
    key = new_key(kms)
    kms.encrypt_bytes(key, b"warm up")  # imports and caches outside the measurement
    limit = 8 << 20  # the whole file is 65 MiB; a frame is 64 KiB
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        info = kms.encrypt_file(key, src, tmp_path / "big.enc")
        _, peak_encrypt = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        kms.decrypt_file(tmp_path / "big.enc", tmp_path / "big.out")
        _, peak_decrypt = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.plaintext_bytes == size
    assert peak_encrypt < limit, f"encrypting held {peak_encrypt:,} bytes at once"
    assert peak_decrypt < limit, f"decrypting held {peak_decrypt:,} bytes at once"
    assert _sha256_file(tmp_path / "big.out") == _sha256_file(src)
