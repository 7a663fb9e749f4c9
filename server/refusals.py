"""Refusals of unauthenticated callers: counted, summarized, rate-limited.

A caller who has not proved an identity (no signature, a bad one, an
unknown or inactive access key, a body too large to be checked) must not
be able to write the permanent log at line rate. So the server does not
record each such refusal; `RefusalTally` counts them in memory per (source
address, error code) and, once per interval, the app records one
`UnauthenticatedRequestsRefused` event per pair: how many, the first and
last time, the first refusal's message, and bounded samples of the
operations, claimed access key ids and request ids. Authenticated refusals
(AccessDenied, validation, key state) stay one record each.

`RateLimiter` is a token bucket per address (an IPv6 address counts by its
/64, which one host usually holds whole): every unauthenticated refusal
takes a token; while an address has none left, all its requests (signed
or not: the signature is not even checked) are answered
`ThrottlingException` (and counted in the tally under that code). An
address that stops failing gets a token back every 1/rate seconds.

Both are bounded in memory: past `max_entries` pairs in one interval the
rest are counted under the address "*" (the overflow), and the limiter
forgets its fullest buckets first. Nothing here does IO; the event loop
owns both (no locks).
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Callable

from keyledger import events as ev

OVERFLOW = "*"
SAMPLES = 10


class _Count:
    __slots__ = ("count", "first", "last", "message", "operations", "access_key_ids", "request_ids")

    def __init__(self, now: int, message: str) -> None:
        self.count, self.first, self.last, self.message = 0, now, now, message
        self.operations: list[str] = []
        self.access_key_ids: list[str] = []
        self.request_ids: list[str] = []


def _sample(into: list[str], value: str | None) -> None:
    if value and len(into) < SAMPLES and value not in into:
        into.append(value[:128])


class RefusalTally:
    """Unauthenticated refusals counted per (address, error code) since the last `drain`."""

    def __init__(self, *, max_entries: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._counts: dict[tuple[str, str], _Count] = {}

    def add(self, address: str, code: str, message: str, *, operation: str | None = None,
            access_key_id: str | None = None, request_id: str | None = None) -> None:
        now = int(self._clock() * 1_000_000)
        key = (address, code)
        found = self._counts.get(key)
        if found is None:
            if len(self._counts) >= self.max_entries:
                key = (OVERFLOW, code)
                found = self._counts.get(key)
            if found is None:
                found = self._counts[key] = _Count(now, message[:512])
        found.count += 1
        found.last = now
        _sample(found.operations, operation)
        _sample(found.access_key_ids, access_key_id)
        _sample(found.request_ids, request_id)

    def drain(self) -> list[ev.UnauthenticatedRequestsRefused]:
        """One event per (address, code) counted so far; the tally starts again."""
        counts, self._counts = self._counts, {}
        return [ev.UnauthenticatedRequestsRefused(
                    source_address=address, error_code=code, count=c.count, first_time=c.first,
                    last_time=c.last, error_message=c.message, operations=tuple(c.operations),
                    access_key_ids=tuple(c.access_key_ids), request_ids=tuple(c.request_ids))
                for (address, code), c in counts.items()]

    def restore(self, events: list[ev.UnauthenticatedRequestsRefused]) -> None:
        """Put back what a failed flush drained, so the next flush records it."""
        for e in events:
            key = (e.source_address, e.error_code)
            found = self._counts.get(key)
            if found is None:
                found = self._counts[key] = _Count(e.first_time, e.error_message)
            found.count += e.count
            found.first = min(found.first, e.first_time)
            found.last = max(found.last, e.last_time)
            for name in ("operations", "access_key_ids", "request_ids"):
                for value in getattr(e, name):
                    _sample(getattr(found, name), value)


@functools.lru_cache(maxsize=4096)  # a pure function of the text, asked on every request
def bucket_of(address: str) -> str:
    """The rate limiter's unit: the address, or an IPv6 address's /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class RateLimiter:
    """A token bucket per address for unauthenticated refusals: `burst`
    tokens, refilled at `rate` per second. `rate <= 0` turns it off."""

    def __init__(self, rate: float, burst: float, *, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst = rate, max(burst, 1.0)
        self.max_entries = max_entries
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, when)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _tokens(self, bucket: str, now: float) -> float:
        found = self._buckets.get(bucket)
        if found is None:
            return self.burst
        tokens, when = found
        return min(self.burst, tokens + (now - when) * self.rate)

    def throttled(self, address: str) -> bool:
        """Whether the address has no token left (it is refused unheard)."""
        if not self.enabled:
            return False
        if not self._buckets and self.burst >= 1.0:  # nobody has been charged: a full bucket
            return False
        return self._tokens(bucket_of(address), self._clock()) < 1.0

    def charge(self, address: str) -> None:
        """An unauthenticated refusal from the address takes a token."""
        if not self.enabled:
            return
        now = self._clock()
        bucket = bucket_of(address)
        tokens = self._tokens(bucket, now)
        if bucket not in self._buckets and len(self._buckets) >= self.max_entries:
            self._forget(now)
        self._buckets[bucket] = (max(tokens - 1.0, 0.0), now)

    def _forget(self, now: float) -> None:
        """Drop the buckets that have refilled; if none has, the oldest half."""
        full = [b for b in self._buckets if self._tokens(b, now) >= self.burst]
        for b in full:
            del self._buckets[b]
        if len(self._buckets) >= self.max_entries:
            for b in sorted(self._buckets, key=lambda b: self._buckets[b][1])[: self.max_entries // 2]:
                del self._buckets[b]
