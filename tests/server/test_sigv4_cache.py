"""SigV4's per-(key, date, region, service) signing keys (issue 13): derived
from the secret, so kept redacted and bounded; a cached key verifies exactly
what a fresh derivation verifies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from keyledger.secret import Secret
from keyledger.server import credentials as creds
from keyledger.server.protocol import InvalidSignatureException
from keyledger.server.sigv4 import Verifier

from test_server_sigv4 import BODY, NOW, signed


def test_signing_keys_are_secrets_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    entry = creds.new_access_key("arn:aws:iam::111122223333:user/alice", "alice")
    creds.append(path, entry)
    clock_at = [NOW]
    verifier = Verifier(creds.Credentials(path), "us-east-1", clock=lambda: clock_at[0].timestamp())
    for region in ("us-east-1", "eu-west-1"):
        headers = signed(entry, region=region)
        for _ in range(3):  # the second and third come from the cache
            assert verifier.verify("POST", "/", "", headers, BODY) == "arn:aws:iam::111122223333:user/alice"
    assert len(verifier._signing_keys) == 2
    for cached in verifier._signing_keys.values():
        assert isinstance(cached, Secret) and "redacted" in repr(cached)
        assert entry.secret_access_key.encode() not in repr(verifier._signing_keys).encode()
    for day in range(5000):  # a long-running server: one scope per day, dropped beyond 4,096
        key = verifier.credentials.lookup(entry.access_key_id)
        assert key is not None
        verifier._signing_key(key, (NOW + timedelta(days=day)).strftime("%Y%m%d"))
    assert len(verifier._signing_keys) <= 4097
    # a wrong secret still fails after its scope's key is cached
    with pytest.raises(InvalidSignatureException):
        verifier.verify("POST", "/", "", signed(entry, secret="x" * 40), BODY)
    # the next day: a new scope, derived and verified
    clock_at[0] = NOW + timedelta(days=1)
    assert verifier.verify("POST", "/", "", signed(entry, when=NOW + timedelta(days=1)), BODY)


def test_date_header_form_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    entry = creds.new_access_key("arn:aws:iam::111122223333:user/bob", "bob")
    creds.append(path, entry)
    verifier = Verifier(creds.Credentials(path), "us-east-1", clock=lambda: NOW.timestamp())
    headers = signed(entry)
    assert verifier.verify("POST", "/", "", headers, BODY)
    bad = dict(headers)
    bad["x-amz-date"] = [(NOW - timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")]  # scope date no longer matches
    with pytest.raises(InvalidSignatureException, match="Date in Credential scope does not match"):
        verifier.verify("POST", "/", "", bad, BODY)
