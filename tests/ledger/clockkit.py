"""The hand-moved ledger clock the service tests share (the ledger takes its
clock as a parameter, so tests can jump years)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from keyledger.events import to_us

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Clock:
    """Stands still until moved: `advance(timedelta(days=1))` or `advance(days=1)`."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **parts: float) -> None:
        self.now += (delta or timedelta()) + timedelta(**parts)

    @property
    def us(self) -> int:
        """The time in microseconds since the epoch, as the log stores it."""
        return to_us(self.now)
