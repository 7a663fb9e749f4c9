"""The bill (projections.billing), by worked examples with hand-computed totals.

Price model: a customer key costs $1 per key-month, prorated by the hour,
while it is neither pending deletion nor deleted; requests cost $0.03 per
10,000; the service's own events (automatic rotation, the deletion at the end
of the waiting period) are not requests. June 2031 has 30 days = 720 hours.

Every example runs on a real ledger with a hand-set clock; the 25,000
requests of the first are appended as the service would append Encrypt
records (one request id each), in one `Store.submit`, to keep the test fast.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest

import keyledger
from keyledger import events as ev
from keyledger.errors import AccessDeniedException
from keyledger.service import to_us
from keyledger.projections import billing

JUNE = "2031-06"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, *args: int) -> None:
        self.now = datetime(*args, tzinfo=timezone.utc)  # type: ignore[misc]


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2031, 5, 1, tzinfo=timezone.utc))


@pytest.fixture
def kms(tmp_path, clock):
    with keyledger.open(tmp_path / "ledger", create=True, clock=clock, durability="relaxed") as service:
        yield service


def bill(kms: keyledger.KeyLedger, month: str = JUNE) -> billing.Bill:
    return billing.compute(kms.store.records(), month)


def append_encrypts(kms: keyledger.KeyLedger, key_id: str, count: int, start: datetime) -> None:
    """`count` Encrypt records, one request each, a second apart from `start`."""
    t0 = to_us(start)

    def work(view):
        for i in range(count):
            view.append([ev.Encrypted(key_id, 1, {}, uuid.UUID(int=i).bytes * 2)], operation="Encrypt",
                        principal=kms.caller, request_id=str(uuid.uuid4()), time=t0 + i * 1_000_000)
    kms.store.submit(work)


def test_one_key_for_the_whole_month_and_25000_requests(kms, clock) -> None:
    clock.at(2031, 5, 31, 23)  # created in May: the CreateKey request is May's
    key = kms.create_key().key_metadata.key_id
    append_encrypts(kms, key, 25_000, datetime(2031, 6, 1, tzinfo=timezone.utc))
    june = bill(kms)
    # key:      720 of 720 hours                    = $1.00
    # requests: 25,000 x $0.03 / 10,000             = $0.075
    # total:    $1.075, rounded to the cent         = $1.08
    assert june.hours_in_month == 720
    assert june.keys[key].billable_hours == 720 and june.key_cost == 1
    assert june.requests == {"Encrypt": 25_000} and june.keys[key].requests == {"Encrypt": 25_000}
    assert june.request_cost == Fraction(75, 1000)
    assert june.total == Fraction(1075, 1000) and billing.dollars(june.total) == "$1.08"
    # May: 1 hour of 744, and the CreateKey request: $0.001344 + $0.000003 = $0.00
    may = bill(kms, "2031-05")
    assert may.hours_in_month == 744 and may.keys[key].billable_hours == 1
    assert may.requests == {"CreateKey": 1} and billing.dollars(may.total) == "$0.00"


def test_a_key_created_mid_month_and_scheduled_for_deletion(kms, clock) -> None:
    clock.at(2031, 6, 10)
    key = kms.create_key().key_metadata.key_id
    clock.at(2031, 6, 13, 12)
    kms.schedule_key_deletion(key, pending_window_in_days=7)  # pending from here: not billed
    clock.at(2031, 6, 25)
    assert kms.rotate_due() == {"rotated": 0, "deleted": 1}  # deleted by the service on the 20th
    june = bill(kms)
    # key:      June 10 00:00 -> June 13 12:00 = 84 hours; 84 / 720 = $0.11666...
    # requests: CreateKey + ScheduleKeyDeletion = 2 x $0.000003 = $0.000006
    # total:    $0.116673 -> $0.12
    assert june.keys[key].billable_hours == 84
    assert june.keys[key].key_cost == Fraction(84, 720)
    assert june.requests == {"CreateKey": 1, "ScheduleKeyDeletion": 1}  # the deletion is no request
    assert billing.dollars(june.keys[key].key_cost) == "$0.12" and billing.dollars(june.total) == "$0.12"
    assert bill(kms, "2031-07").keys == {}  # nothing after deletion


def test_a_cancelled_deletion_restarts_the_meter(kms, clock) -> None:
    clock.at(2031, 6, 1)
    key = kms.create_key().key_metadata.key_id
    clock.at(2031, 6, 11)
    kms.schedule_key_deletion(key, pending_window_in_days=30)
    clock.at(2031, 6, 16)
    kms.cancel_key_deletion(key)  # Disabled now, and billed again (AWS bills disabled keys)
    june = bill(kms)
    # key:      June 1 -> June 11 = 240 h, then June 16 -> July 1 = 360 h: 600 / 720 = $0.8333...
    # requests: 3 x $0.000003
    # total:    $0.833342 -> $0.83
    assert june.keys[key].billable_hours == 600
    assert june.keys[key].key_cost == Fraction(5, 6)
    assert sum(june.requests.values()) == 3 and billing.dollars(june.total) == "$0.83"
    # a month entirely after the cancellation is a whole key-month
    assert bill(kms, "2031-07").keys[key].billable_hours == 744


def test_service_events_are_not_billed_but_refusals_are(kms, clock) -> None:
    clock.at(2031, 2, 1)
    rotating = kms.create_key(description="rotates in June").key_metadata.key_id
    kms.enable_key_rotation(rotating, rotation_period_in_days=120)  # due 2031-06-01
    clock.at(2031, 5, 25)
    leaving = kms.create_key(description="deleted by the service in June").key_metadata.key_id
    kms.schedule_key_deletion(leaving, pending_window_in_days=7)  # due 2031-06-01
    kms.create_user("mallory")
    clock.at(2031, 6, 2)
    assert kms.rotate_due() == {"rotated": 1, "deleted": 1}  # two service records, no request
    clock.at(2031, 6, 3)
    with pytest.raises(AccessDeniedException):
        kms.as_caller("arn:aws:iam::111122223333:user/mallory").describe_key(rotating)
    records = list(kms.store.records())
    assert {r.operation for r in records if r.principal == ev.SERVICE_PRINCIPAL} == {"RotateKey", "DeleteKey"}
    june = bill(kms)
    # rotating key: 720 h = $1.00 (its rotation adds nothing)
    # leaving key:  pending deletion all month = $0.00
    # requests:     the refused DescribeKey only: $0.000003
    # total:        $1.000003 -> $1.00
    assert june.requests == {"DescribeKey": 1}
    assert june.keys[rotating].billable_hours == 720
    assert leaving not in june.keys or june.keys[leaving].billable_hours == 0
    assert billing.dollars(june.total) == "$1.00"


def test_one_request_that_appends_several_records_is_one_request(kms, clock) -> None:
    clock.at(2031, 2, 1)
    key = kms.create_key().key_metadata.key_id
    kms.enable_key_rotation(key, rotation_period_in_days=90)  # due 2031-05-02
    clock.at(2031, 6, 5)
    kms.encrypt(key, b"x")  # appends the due AUTOMATIC rotation (service), then the Encrypt
    records = [r for r in kms.store.records() if r.time >= to_us(datetime(2031, 6, 1, tzinfo=timezone.utc))]
    assert [(r.principal == ev.SERVICE_PRINCIPAL, r.operation) for r in records] == \
        [(True, "RotateKey"), (False, "Encrypt")]
    assert bill(kms).requests == {"Encrypt": 1}


def test_rounding_and_month_bounds() -> None:
    assert billing.dollars(Fraction(1075, 1000)) == "$1.08"
    assert billing.dollars(Fraction(0)) == "$0.00"
    assert billing.dollars(Fraction(12345, 100)) == "$123.45"
    start, end = billing.month_bounds("2031-12")
    assert (end - start) // billing.HOUR_US == 744
    start, end = billing.month_bounds("2032-02")  # a leap year
    assert (end - start) // billing.HOUR_US == 29 * 24
    assert timedelta(microseconds=end - start) == timedelta(days=29)
