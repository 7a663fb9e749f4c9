"""ListKeys' ResourceOwners: SELF lists the account's keys as before; no
other account shares keys with a ledger through RAM, so
OTHER_ACCOUNTS_VIA_RAM adds none and alone lists none; the model's limits
and enum are ValidationExceptions. Each call is a record."""

from __future__ import annotations

import pytest
from keyledger import events as ev
from keyledger.errors import ValidationException


def test_resource_owners(kms) -> None:
    keys = sorted(kms.create_key().key_metadata.key_id for _ in range(3))
    default = kms.list_keys()
    assert sorted(k.key_id for k in default.keys) == keys
    for owners in (["SELF"], ["SELF", "OTHER_ACCOUNTS_VIA_RAM"], ["OTHER_ACCOUNTS_VIA_RAM", "SELF"]):
        assert kms.list_keys(resource_owners=owners) == default
    page = kms.list_keys(resource_owners=["SELF"], limit=2)
    assert page.truncated and len(page.keys) == 2
    rest = kms.list_keys(resource_owners=["SELF"], marker=page.next_marker)
    assert sorted(k.key_id for k in page.keys + rest.keys) == keys
    shared = kms.list_keys(resource_owners=["OTHER_ACCOUNTS_VIA_RAM"])
    assert (shared.keys, shared.truncated, shared.next_marker) == ([], False, None)
    before = kms.store.head().seq
    for bad, words in (([], "greater than or equal to 1"), (["SELF", "SELF", "SELF"], "less than or equal to 2"),
                       (["RAM"], "enum value set: [SELF, OTHER_ACCOUNTS_VIA_RAM]")):
        with pytest.raises(ValidationException, match=words.replace("[", r"\[").replace("]", r"\]")):
            kms.list_keys(resource_owners=bad)
    log = list(kms.store.records(before))
    assert [type(r.event) for r in log] == [ev.RequestDenied] * 3
