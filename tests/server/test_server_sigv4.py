"""SigV4 verification against botocore's own signer, and the credentials file."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from keyledger.server import credentials as creds
from keyledger.errors import UnrecognizedClientException
from keyledger.server.protocol import (
    IncompleteSignatureException, InvalidSignatureException, MissingAuthenticationTokenException,
)
from keyledger.server.sigv4 import Verifier

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
BODY = b'{"KeyId": "alias/x", "Plaintext": "aGk="}'


@pytest.fixture
def keys_file(tmp_path: Path) -> tuple[Path, creds.AccessKeyLine]:
    path = tmp_path / "keys.jsonl"
    entry = creds.new_access_key("arn:aws:iam::111122223333:user/alice", "alice")
    creds.append(path, entry)
    return path, entry


@pytest.fixture
def verifier(keys_file: tuple[Path, creds.AccessKeyLine]) -> Verifier:
    return Verifier(creds.Credentials(keys_file[0]), "us-east-1", clock=lambda: NOW.timestamp())


def signed(entry: creds.AccessKeyLine, *, when: datetime = NOW, region: str = "us-east-1",
           service: str = "kms", secret: str | None = None, body: bytes = BODY,
           headers: dict[str, str] | None = None, url: str = "http://127.0.0.1:4000/") -> dict[str, list[str]]:
    req = AWSRequest(method="POST", url=url, data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.Encrypt", **(headers or {})})
    signer = SigV4Auth(BotoCredentials(entry.access_key_id, secret or entry.secret_access_key), service, region)
    with mock.patch("botocore.auth.get_current_datetime", lambda: when.replace(tzinfo=None)):
        signer.add_auth(req)
    out = {k.lower(): [v] for k, v in req.headers.items()}
    out["host"] = ["127.0.0.1:4000"]
    return out


def verify(verifier: Verifier, headers: dict[str, list[str]], body: bytes = BODY, query: str = "") -> str:
    return verifier.verify("POST", "/", query, headers, body)


def test_botocore_signature_verifies(verifier: Verifier, keys_file) -> None:
    _, entry = keys_file
    assert verify(verifier, signed(entry)) == "arn:aws:iam::111122223333:user/alice"


def test_query_string_is_part_of_the_signature(verifier: Verifier, keys_file) -> None:
    _, entry = keys_file
    headers = signed(entry, url="http://127.0.0.1:4000/?b=2&a=1")
    assert verify(verifier, headers, query="b=2&a=1")
    with pytest.raises(InvalidSignatureException):
        verify(verifier, headers, query="a=1")


def test_tampered_body_is_refused(verifier: Verifier, keys_file) -> None:
    _, entry = keys_file
    with pytest.raises(InvalidSignatureException, match="does not match"):
        verify(verifier, signed(entry), body=BODY.replace(b"alias/x", b"alias/y"))


def test_tampered_target_is_refused(verifier: Verifier, keys_file) -> None:
    _, entry = keys_file
    headers = signed(entry)
    headers["x-amz-target"] = ["TrentService.ScheduleKeyDeletion"]
    with pytest.raises(InvalidSignatureException):
        verify(verifier, headers)


def test_wrong_secret(verifier: Verifier, keys_file) -> None:
    _, entry = keys_file
    with pytest.raises(InvalidSignatureException):
        verify(verifier, signed(entry, secret="not-the-secret"))


def test_unknown_access_key(verifier: Verifier) -> None:
    stranger = creds.new_access_key("arn:aws:iam::111122223333:user/eve")
    with pytest.raises(UnrecognizedClientException):
        verify(verifier, signed(stranger))


def test_session_token_we_never_issued(verifier: Verifier, keys_file) -> None:
    _, entry = keys_file
    with pytest.raises(UnrecognizedClientException):
        verify(verifier, signed(entry, headers={"X-Amz-Security-Token": "FwoGZXIvYXdzE"}))


@pytest.mark.parametrize("minutes, ok", [(-14, True), (14, True), (-16, False), (16, False)])
def test_clock_skew(verifier: Verifier, keys_file, minutes: int, ok: bool) -> None:
    _, entry = keys_file
    headers = signed(entry, when=NOW + timedelta(minutes=minutes))
    if ok:
        assert verify(verifier, headers)
    else:
        with pytest.raises(InvalidSignatureException, match="Signature (expired|not yet current)"):
            verify(verifier, headers)


@pytest.mark.parametrize("region, service, text", [
    ("moon", "kms", "Credential should be scoped to a valid region, not 'moon'."),  # any region name is valid
    ("us-east-1", "s3", "Credential should be scoped to correct service: 'kms'."),
])
def test_credential_scope(verifier: Verifier, keys_file, region: str, service: str, text: str) -> None:
    """The specific message (not "signature does not match", which the scope
    check's absence would give instead)."""
    _, entry = keys_file
    with pytest.raises(InvalidSignatureException) as info:
        verify(verifier, signed(entry, region=region, service=service))
    assert info.value.message == text


def test_scope_date_must_match_request_date(verifier: Verifier, keys_file) -> None:
    _, entry = keys_file
    headers = signed(entry)
    auth = headers["authorization"][0]
    headers["authorization"] = [auth.replace(NOW.strftime("%Y%m%d"), "20260305")]
    with pytest.raises(InvalidSignatureException, match="Date in Credential scope"):
        verify(verifier, headers)


def test_missing_authentication_token(verifier: Verifier, keys_file) -> None:
    _, entry = keys_file
    headers = signed(entry)
    headers.pop("authorization")
    with pytest.raises(MissingAuthenticationTokenException) as info:
        verify(verifier, headers)
    assert (info.value.code, info.value.message, info.value.http_status) == (
        "MissingAuthenticationTokenException", "Missing Authentication Token", 403)


@pytest.mark.parametrize("mangle", [
    lambda h: h.update({"authorization": [""]}),
    lambda h: h.update({"authorization": ["AWS4-HMAC-SHA1 Credential=a/b/c/d/e, SignedHeaders=host, Signature=x"]}),
    lambda h: h.update({"authorization": [h["authorization"][0].split(", Signature")[0]]}),
    lambda h: h.update({"authorization": [h["authorization"][0].replace("/aws4_request", "")]}),
    lambda h: h.pop("x-amz-date"),
    lambda h: h.update({"x-amz-date": ["yesterday"]}),
    lambda h: h.update({"authorization": [h["authorization"][0].replace(";x-amz-target", "")]}),
])
def test_incomplete_signatures(verifier: Verifier, keys_file, mangle) -> None:
    _, entry = keys_file
    headers = signed(entry)
    mangle(headers)
    with pytest.raises(IncompleteSignatureException):
        verify(verifier, headers)


def test_credentials_file_is_private_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    first = creds.new_access_key("arn:aws:iam::111122223333:user/a", "a")
    creds.append(path, first)
    assert os.stat(path).st_mode & 0o777 == 0o600
    loaded = creds.Credentials(path, recheck=0)
    assert loaded.lookup(first.access_key_id).principal.endswith("user/a")
    assert first.secret_access_key not in repr(loaded.lookup(first.access_key_id))
    second = creds.new_access_key("arn:aws:iam::111122223333:user/b", "b")
    creds.append(path, second)  # a key created while the server runs works at once
    assert loaded.lookup(second.access_key_id) is not None
    # deactivating: the last line for a key id wins, and a running reader sees it
    # (the key is known already: the file must be re-checked anyway)
    creds.append(path, creds.AccessKeyLine(**{**{f: getattr(second, f) for f in second.__struct_fields__},
                                              "status": "Inactive"}))
    assert loaded.lookup(second.access_key_id) is None
    assert creds.Credentials(path).lookup(second.access_key_id) is None
    assert loaded.lookup(first.access_key_id) is not None
    os.chmod(path, 0o644)
    with pytest.raises(creds.CredentialsError, match="chmod 600"):
        creds.Credentials(path)


def test_credentials_errors_never_show_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b'{"AccessKeyId": "AKIA1", "SecretAccessKey": 12345678, "Principal": "p"}\n')
    os.close(fd)
    with pytest.raises(creds.CredentialsError) as info:
        creds.Credentials(path)
    assert "12345678" not in str(info.value)
    with pytest.raises(creds.CredentialsError, match="no credentials file"):
        creds.Credentials(tmp_path / "missing.jsonl")


def test_a_switched_off_key_is_refused_within_the_recheck_interval(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    entry = creds.new_access_key("arn:aws:iam::111122223333:user/a", "a")
    creds.append(path, entry)
    clock = [0.0]
    with mock.patch("keyledger.server.credentials.time.monotonic", lambda: clock[0]):
        loaded = creds.Credentials(path)  # the default: the file is stat'ed at most once a second
        assert loaded.lookup(entry.access_key_id) is not None
        creds.set_status(path, entry.access_key_id, "Inactive")
        clock[0] = 0.5
        assert loaded.lookup(entry.access_key_id) is not None  # not re-checked yet: cheap
        clock[0] = 1.0
        assert loaded.lookup(entry.access_key_id) is None
        creds.set_status(path, entry.access_key_id, "Active")
        clock[0] = 2.0
        assert loaded.lookup(entry.access_key_id) is not None
        creds.delete(path, entry.access_key_id)
        clock[0] = 3.0
        assert loaded.lookup(entry.access_key_id) is None
        path.unlink()  # no file: no key works (fail closed)
        clock[0] = 4.0
        assert len(loaded) == 0


def test_rewrites_are_atomic_private_and_drop_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    keep, gone = (creds.new_access_key(f"arn:aws:iam::111122223333:user/{n}", n) for n in "ab")
    creds.append(path, keep)
    creds.append(path, gone)
    old = os.umask(0)  # whatever the umask, the new file is 0600
    try:
        creds.set_status(path, keep.access_key_id, "Inactive")
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert creds.delete(path, gone.access_key_id).access_key_id == gone.access_key_id
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o600
    text = path.read_text()
    assert gone.secret_access_key not in text and gone.access_key_id not in text
    assert [(e.access_key_id, e.status) for e in creds.entries(path)] == [(keep.access_key_id, "Inactive")]
    assert [p.name for p in tmp_path.iterdir()] == ["keys.jsonl"]  # no temporary file left
    with pytest.raises(KeyError):
        creds.delete(path, gone.access_key_id)
    assert keep.secret_access_key not in repr(creds.entries(path)) + repr(keep)
