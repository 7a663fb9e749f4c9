"""Service edges: listings never show a key whose deletion waiting period is
over, nor its aliases, even before anything touched the key or the sweep
ran; a grantee whose grant is constrained passes on only as strict grants."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import keyledger


def test_list_keys_and_aliases_apply_due_deletions(tmp_path: Path) -> None:
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    with keyledger.open(tmp_path, create=True, clock=lambda: now[0]) as kms:
        keep = kms.create_key().key_metadata.key_id
        doomed = kms.create_key().key_metadata.key_id
        kms.create_alias("alias/keep", keep)
        kms.create_alias("alias/doomed", doomed)
        kms.schedule_key_deletion(doomed, pending_window_in_days=7)
        now[0] += timedelta(days=6)
        assert {k.key_id for k in kms.list_keys().keys} == {keep, doomed}
        now[0] += timedelta(days=2)
        assert [a.alias_name for a in kms.list_aliases().aliases if a.target_key_id] == ["alias/keep"]
        assert [k.key_id for k in kms.list_keys().keys] == [keep]
        deletions = [r for r in kms.store.records() if r.operation == "DeleteKey"]
        assert [type(r.event).__name__ for r in deletions] == ["AliasDeleted", "KeyDeleted"]
        assert kms.store.kek(doomed) is None


def test_alias_pages_stay_full_when_some_aliases_went_with_their_key(tmp_path: Path) -> None:
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    with keyledger.open(tmp_path, create=True, clock=lambda: now[0]) as kms:
        doomed = kms.create_key().key_metadata.key_id
        keep = kms.create_key().key_metadata.key_id
        for i in range(3):
            kms.create_alias(f"alias/a{i}", doomed)
        for i in range(3):
            kms.create_alias(f"alias/b{i}", keep)
        kms.schedule_key_deletion(doomed, pending_window_in_days=7)
        now[0] += timedelta(days=8)
        pages, marker = [], None  # (AWS also lists its predefined alias/aws/* aliases)
        while True:
            page = kms.list_aliases(limit=2, marker=marker)
            pages.append([a.alias_name for a in page.aliases])
            if not page.truncated:
                break
            marker = page.next_marker
        assert all(len(names) == 2 for names in pages[:-1])
        assert [n for names in pages for n in names if not n.startswith("alias/aws/")] == \
            ["alias/b0", "alias/b1", "alias/b2"]


def test_a_constrained_grantee_passes_on_only_as_strict_grants(tmp_path: Path) -> None:
    import pytest

    from keyledger.errors import AccessDeniedException

    bob, carol = "arn:aws:iam::111122223333:user/bob", "arn:aws:iam::111122223333:user/carol"
    with keyledger.open(tmp_path, create=True) as kms:
        key = kms.create_key().key_metadata.key_id
        kms.create_grant(key, bob, ["CreateGrant", "Decrypt"],
                         constraints={"EncryptionContextSubset": {"app": "orders"}})
        as_bob = kms.as_caller(bob)
        as_bob.create_grant(key, carol, ["Decrypt"],
                            constraints={"EncryptionContextSubset": {"app": "orders", "env": "prod"}})
        with pytest.raises(AccessDeniedException):
            as_bob.create_grant(key, carol, ["Decrypt"])  # unconstrained: looser than bob's own
        with pytest.raises(AccessDeniedException):
            as_bob.create_grant(key, carol, ["Decrypt"], constraints={"EncryptionContextSubset": {"env": "prod"}})
