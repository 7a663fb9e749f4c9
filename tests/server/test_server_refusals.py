"""Strangers cannot grow the log at line rate: refusals of unauthenticated
callers are counted per (source address, error code) and recorded as one
summary per interval; an address that keeps failing is throttled
(ThrottlingException); authenticated refusals stay one record each."""

from __future__ import annotations

import time
from typing import Any

from keyledger import events as ev
from keyledger.server.refusals import OVERFLOW, RateLimiter, RefusalTally, bucket_of
from serverkit import Server


def junk(server: Server, i: int) -> tuple[int, dict[str, str], Any]:
    """One of three kinds of unauthenticated request."""
    kind = i % 3
    if kind == 0:
        return server.raw("TrentService.ListKeys", "{}", who=None)  # no signature
    if kind == 1:  # an access key nobody issued
        return server.raw("TrentService.ListKeys", "{}", headers={},
                          tamper=lambda h: h.update(Authorization=h["Authorization"].replace(
                              server.access["alice"].access_key_id, "AKIAIAMNOTAKEY000000")))
    return server.raw("TrentService.ListKeys", "{}",  # a forged signature
                      tamper=lambda h: h.update(Authorization=h["Authorization"][:-8] + "00000000"))


def summaries(server: Server, start: int) -> list[ev.UnauthenticatedRequestsRefused]:
    return [r.event for r in server.records(start) if isinstance(r.event, ev.UnauthenticatedRequestsRefused)]


def test_unauthenticated_refusals_are_summarized_and_throttled(start_server: Any) -> None:
    server = start_server(refusal_burst=60, refusal_rate=1)
    n = 300
    before = server.head()
    answers = [junk(server, i) for i in range(n)]
    assert server.head() == before  # nothing written at line rate
    codes = [parsed["__type"] for _, _, parsed in answers]
    assert codes[:60] == ["MissingAuthenticationTokenException", "UnrecognizedClientException",
                          "InvalidSignatureException"] * 20
    # then the address has used its burst: refused unheard, as AWS throttles
    assert set(codes[60:]) == {"ThrottlingException"} and len(codes[60:]) >= n - 61
    assert [(status, parsed) for status, _, parsed in answers[-1:]] == [
        (400, {"__type": "ThrottlingException", "message": "Rate exceeded"})]
    status, _, parsed = server.raw("TrentService.ListKeys", "{}")  # alice too, from that address
    assert (status, parsed["__type"]) == (400, "ThrottlingException")

    assert server.flush() == n + 1
    records = server.records(before)
    assert len(records) == 4 and {r.principal for r in records} == {"anonymous"}
    assert {r.request_id for r in records} == {records[0].request_id}  # one request, one record per pair
    counted = {e.error_code: e for e in summaries(server, before)}
    assert {code: e.count for code, e in counted.items()} == {
        "MissingAuthenticationTokenException": codes.count("MissingAuthenticationTokenException"),
        "UnrecognizedClientException": codes.count("UnrecognizedClientException"),
        "InvalidSignatureException": codes.count("InvalidSignatureException"),
        "ThrottlingException": codes.count("ThrottlingException") + 1}
    unknown = counted["UnrecognizedClientException"]
    assert unknown.source_address == "127.0.0.1" and unknown.operations == ("ListKeys",)
    assert unknown.access_key_ids == ("AKIAIAMNOTAKEY000000",)
    assert unknown.error_message == "The security token included in the request is invalid."
    assert unknown.first_time <= unknown.last_time
    # the first request ids of each pair are there, so a client's x-amzn-RequestId can be found
    assert answers[1][1]["x-amzn-requestid"] in unknown.request_ids
    assert len(unknown.request_ids) == 10
    assert server.access["alice"].secret_access_key not in repr(records)
    assert server.flush() == 0  # drained


def test_authenticated_refusals_stay_one_record_each(start_server: Any) -> None:
    server = start_server(refusal_burst=3, refusal_rate=1)
    before = server.head()
    bob = server.client("bob")  # authenticated, with no permission
    ids = []
    for _ in range(10):
        try:
            bob.list_keys()
        except Exception as exc:  # noqa: BLE001
            assert exc.response["Error"]["Code"] == "AccessDeniedException"  # type: ignore[attr-defined]
            ids.append(exc.response["ResponseMetadata"]["RequestId"])  # type: ignore[attr-defined]
    records = server.records(before)
    assert [r.request_id for r in records] == ids and len(ids) == 10  # never throttled, each recorded
    assert all(isinstance(r.event, ev.RequestDenied) for r in records)


def test_summaries_are_recorded_on_a_timer(start_server: Any) -> None:
    server = start_server(refusal_interval=0.2)
    before = server.head()
    _, headers, _ = server.raw("TrentService.ListKeys", "{}", who=None)
    deadline = time.monotonic() + 10
    while not summaries(server, before):
        assert time.monotonic() < deadline, "no summary was recorded"
        time.sleep(0.05)
    assert summaries(server, before)[0].request_ids == (headers["x-amzn-requestid"],)


def test_the_tally_is_bounded() -> None:
    tally = RefusalTally(max_entries=3, clock=lambda: 1.5)
    for i in range(10):
        tally.add(f"10.0.0.{i}", "InvalidSignatureException", "no", request_id=f"r{i}")
    events = tally.drain()
    assert [(e.source_address, e.count) for e in events] == [
        ("10.0.0.0", 1), ("10.0.0.1", 1), ("10.0.0.2", 1), (OVERFLOW, 7)]
    assert events[3].request_ids == tuple(f"r{i}" for i in range(3, 10))
    assert events[0].first_time == 1_500_000
    assert tally.drain() == []
    tally.restore(events)  # a failed flush loses nothing
    assert sum(e.count for e in tally.drain()) == 10


def test_the_rate_limiter() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=3, max_entries=4, clock=lambda: now[0])
    for _ in range(3):
        assert not limiter.throttled("192.0.2.1")
        limiter.charge("192.0.2.1")
    assert limiter.throttled("192.0.2.1") and not limiter.throttled("192.0.2.2")
    now[0] = 0.5  # one token back
    assert not limiter.throttled("192.0.2.1")
    # an IPv6 host's /64 is one bucket; an IPv4-mapped address is its IPv4 address
    assert bucket_of("2001:db8::1") == bucket_of("2001:db8::ffff:1") == "2001:db8::/64"
    assert bucket_of("::ffff:192.0.2.1") == "192.0.2.1"
    for i in range(10):  # bounded memory
        limiter.charge(f"198.51.100.{i}")
    assert len(limiter._buckets) <= 4
    assert not RateLimiter(rate=0, burst=1).throttled("192.0.2.1")  # off
