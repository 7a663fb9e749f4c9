"""What the log says a customer would pay, under the user's price model.

- A customer-managed key costs $1 per key-month, prorated by the hour, for
  every hour it exists and is neither pending deletion nor deleted (a
  cancelled deletion starts the meter again). Rotations add nothing: the
  user's notes price the key, not its versions.
- Requests cost $0.03 per 10,000. Every request a customer made counts,
  including refused ones (AWS bills those too); the service's own events
  (automatic rotation, deletion at the end of the waiting period) do not.

All arithmetic is in exact fractions until the final rounding to cents.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction

from keyledger import events as ev

KEY_MONTH = Fraction(1)  # dollars
PER_10K_REQUESTS = Fraction(3, 100)
HOUR_US = 3_600 * 1_000_000


def month_bounds(month: str) -> tuple[int, int]:
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone.utc)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000


@dataclass
class KeyBill:
    key_id: str
    billable_hours: Fraction = Fraction(0)
    key_cost: Fraction = Fraction(0)
    requests: Counter[str] = field(default_factory=Counter)


@dataclass
class Bill:
    month: str
    hours_in_month: int
    keys: dict[str, KeyBill]
    requests: Counter[str]  # by operation, all keys and none

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())

    @property
    def key_cost(self) -> Fraction:
        return sum((k.key_cost for k in self.keys.values()), Fraction(0))

    @property
    def request_cost(self) -> Fraction:
        return self.request_count * PER_10K_REQUESTS / 10_000

    @property
    def total(self) -> Fraction:
        return self.key_cost + self.request_cost


def dollars(amount: Fraction) -> str:
    cents = (amount * 100).__round__()
    return f"${cents // 100}.{cents % 100:02d}"


def compute(records: Iterable[ev.Record], month: str) -> Bill:
    start, end = month_bounds(month)
    hours_in_month = (end - start) // HOUR_US
    billing_since: dict[str, int | None] = {}  # key -> start of its current billable stretch
    hours: dict[str, Fraction] = defaultdict(Fraction)
    per_key: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    seen_requests: set[str] = set()

    def close(key_id: str, at: int) -> None:
        since = billing_since.get(key_id)
        if since is not None:
            lo, hi = max(since, start), min(at, end)
            if hi > lo:
                hours[key_id] += Fraction(hi - lo, HOUR_US)
        billing_since[key_id] = None

    for record in records:
        e, t = record.event, record.time
        match e:
            case ev.KeyCreated():
                billing_since[e.key_id] = t
            case ev.KeyDeletionScheduled() | ev.KeyDeleted():
                close(e.key_id, t)
            case ev.KeyDeletionCancelled():
                billing_since[e.key_id] = t
        if record.principal != ev.SERVICE_PRINCIPAL and start <= t < end \
                and record.request_id not in seen_requests:
            seen_requests.add(record.request_id)  # one request may append several records
            totals[record.operation] += 1
            for key_id in ev.key_ids_of(e)[:1]:
                if len(key_id) == 36:
                    per_key[key_id][record.operation] += 1
    for key_id in list(billing_since):
        close(key_id, end)
    keys = {}
    for key_id in sorted(set(hours) | set(per_key)):
        h = hours.get(key_id, Fraction(0))
        keys[key_id] = KeyBill(key_id, h, KEY_MONTH * h / hours_in_month, per_key.get(key_id, Counter()))
    return Bill(month, hours_in_month, keys, totals)
