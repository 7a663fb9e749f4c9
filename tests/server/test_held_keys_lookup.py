"""The server's lookup of access keys the ledger holds (`credentials.HeldKeys`):
an active key is remembered for at most `recheck` seconds, an id not found
is never remembered, and `forget` drops a key this process changed."""

from __future__ import annotations

from pathlib import Path

import keyledger
from keyledger.server import credentials as creds


def test_remembered_for_at_most_recheck_seconds(tmp_path: Path) -> None:
    with keyledger.open(tmp_path / "ledger", create=True) as kms:
        alice = kms.create_user("alice").arn
        remembering = creds.HeldKeys(kms, recheck=3600.0)
        assert remembering.lookup("AKIAIOSFODNN7EXAMPLE") is None
        issued = kms.create_access_key(alice)  # a new id works at once: a miss is never remembered
        found = remembering.lookup(issued.access_key_id)
        assert found is not None and (found.principal, found.secret) == (alice, issued.secret_access_key)
        assert remembering.lookup(issued.access_key_id) is found  # the same object: signing keys cache by it
        kms.update_access_key(alice, issued.access_key_id, "Inactive")
        assert remembering.lookup(issued.access_key_id) is found  # remembered (another process's change)
        remembering.forget(issued.access_key_id)  # this process changed it
        assert remembering.lookup(issued.access_key_id) is None
        checking = creds.HeldKeys(kms, recheck=0.0)
        assert checking.lookup(issued.access_key_id) is None
        kms.update_access_key(alice, issued.access_key_id, "Active")
        assert checking.lookup(issued.access_key_id) is not None
        kms.delete_access_key(alice, issued.access_key_id)
        assert checking.lookup(issued.access_key_id) is None


def test_key_sources_ask_in_order_and_forget_reaches_the_ledger(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    with keyledger.open(home, create=True) as kms:
        alice = kms.create_user("alice").arn
        in_file = creds.new_access_key(alice, "alice")
        kms.record_access_key(alice, in_file.access_key_id)
        creds.append(home / creds.DEFAULT_FILE, in_file)
        held = kms.create_access_key(alice)
        sources = creds.KeySources(creds.Credentials(home / creds.DEFAULT_FILE), creds.HeldKeys(kms, recheck=3600.0))
        assert sources.lookup(in_file.access_key_id).secret.reveal() == in_file.secret_access_key.encode()
        assert sources.lookup(held.access_key_id).secret == held.secret_access_key
        kms.delete_access_key(alice, held.access_key_id)
        sources.forget(held.access_key_id)
        assert sources.lookup(held.access_key_id) is None
        assert sources.lookup(in_file.access_key_id) is not None
