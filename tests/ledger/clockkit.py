"""The hand-moved ledger clock the service tests share (the ledger takes its
clock as a parameter, so tests can jump years)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Clock:
    """Stands still until moved."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
