"""Fixtures the service tests share: the hand-moved clock (clockkit) and a
relaxed ledger that reads it. A module that needs another ledger defines its
own `kms`."""

from __future__ import annotations

from collections.abc import Iterator

import keyledger
import pytest
from clockkit import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kms(tmp_path, clock: Clock) -> Iterator[keyledger.KeyLedger]:
    with keyledger.open(tmp_path / "ledger", create=True, clock=clock, durability="relaxed") as service:
        yield service
