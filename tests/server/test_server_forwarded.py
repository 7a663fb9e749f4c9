"""A server behind a load balancer (`keyledger serve --trusted-proxy CIDR`):
from a trusted proxy, X-Forwarded-For names the client (aws:SourceIp, the
records' source, the refusal throttle) and X-Forwarded-Proto says whether
its leg was TLS (aws:SecureTransport). What a client writes to the left of
the hop a trusted proxy added is never believed, and from any other peer
the headers mean nothing (tests/server/test_server_origin.py)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from keyledger.server import forwarded
from keyledger.server.cli import serve
from serverkit import ACCOUNT, Server

ROOT = f"arn:aws:iam::{ACCOUNT}:root"
PROXIES = forwarded.parse_networks(["10.0.0.0/8", "fd00::/8"])

_v4 = st.ip_addresses(v=4).map(str)
_trusted_v4 = st.integers(0, 2**24 - 1).map(lambda n: str(ipaddress.IPv4Address((10 << 24) + n)))
_untrusted_v4 = _v4.filter(lambda a: not a.startswith("10."))
_any_text = st.text(alphabet=st.characters(codec="latin-1", exclude_characters=","), max_size=20)


@given(peer=_untrusted_v4, headers=st.lists(st.text(max_size=40), max_size=3))
def test_a_peer_that_is_no_trusted_proxy_is_the_client(peer: str, headers: list[str]) -> None:
    assert forwarded.client_address(peer, headers, PROXIES) == peer
    assert forwarded.client_address(peer, headers, ()) == peer


@given(spoofed=st.lists(_v4 | _any_text, max_size=4), client=_untrusted_v4,
       hops=st.lists(_trusted_v4, max_size=3), peer=_trusted_v4, split=st.booleans())
def test_the_client_is_the_nearest_untrusted_hop_whatever_it_wrote_before(
        spoofed: list[str], client: str, hops: list[str], peer: str, split: bool) -> None:
    """The client sends any X-Forwarded-For it likes; the first proxy appends
    the client's real address, each later trusted proxy its own peer's."""
    chain = [*spoofed, client, *hops]
    headers = [", ".join(chain)] if not split else [", ".join(chain[:1]), ", ".join(chain[1:])]
    assert forwarded.client_address(peer, [h for h in headers if h], PROXIES) == client


@given(garbage=st.sampled_from(["unknown", "", "1.2.3.4:80", "not an ip", "999.1.1.1"]),
       hops=st.lists(_trusted_v4, min_size=1, max_size=3), peer=_trusted_v4)
def test_an_entry_that_is_no_address_stops_the_walk_at_the_last_trusted_hop(
        garbage: str, hops: list[str], peer: str) -> None:
    assert forwarded.client_address(peer, [", ".join(["203.0.113.7", garbage, *hops])], PROXIES) == hops[0]


def test_forms_of_addresses() -> None:
    assert forwarded.client_address("::ffff:10.1.2.3", ["198.51.100.4"], PROXIES) == "198.51.100.4"
    assert forwarded.client_address("fd00::1", ["::ffff:198.51.100.4"], PROXIES) == "198.51.100.4"
    assert forwarded.client_address("10.0.0.1", ["10.0.0.2, 10.0.0.3"], PROXIES) == "10.0.0.2"  # all trusted
    assert forwarded.client_address("10.0.0.1", [], PROXIES) == "10.0.0.1"
    assert forwarded.client_tls("10.0.0.1", ["http, https"], PROXIES, False) is True
    assert forwarded.client_tls("10.0.0.1", ["https", "http"], PROXIES, True) is False  # the nearest says
    assert forwarded.client_tls("192.0.2.1", ["https"], PROXIES, False) is False  # not from a proxy
    assert forwarded.client_tls("10.0.0.1", [], PROXIES, True) is True
    with pytest.raises(ValueError, match="not an IP address or CIDR network: 'example.com'"):
        forwarded.parse_networks(["10.0.0.0/8", "example.com"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # the test's own client connects from 127.0.0.1: it plays the load balancer
    srv = Server(tmp_path_factory.mktemp("proxied-ledger"), trusted_proxies=forwarded.parse_networks(["127.0.0.1"]))
    yield srv
    srv.stop()


def via_proxy(server: Server, forwarded_for: str | None, proto: str | None = None) -> Any:
    client = server.client("root")

    def add(request: Any, **_: Any) -> None:
        if forwarded_for is not None:
            request.headers["X-Forwarded-For"] = forwarded_for
        if proto is not None:
            request.headers["X-Forwarded-Proto"] = proto
    client.meta.events.register("before-sign.kms.*", add)
    return client


def test_behind_a_trusted_proxy_the_client_address_and_its_tls_decide(server: Server) -> None:
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}},
        {"Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
    key_id = server.client("root").create_key(Policy=policy)["KeyMetadata"]["KeyId"]
    start = server.head()
    via_proxy(server, "203.0.113.9", "https").encrypt(KeyId=key_id, Plaintext=b"x")
    # a client that wrote an office address first: the proxy appended the real one, which decides;
    # and one that reached the server with no header: the proxy itself is the client
    for forged in ("203.0.113.200, 192.0.2.7", None):
        with pytest.raises(ClientError) as refused:
            via_proxy(server, forged, "https").encrypt(KeyId=key_id, Plaintext=b"x")
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError):  # the client's leg was plain HTTP
        via_proxy(server, "203.0.113.9", "http").encrypt(KeyId=key_id, Plaintext=b"x")
    sources = [r.source for r in server.records(start) if r.operation == "Encrypt"]
    assert sources == ["203.0.113.9", "192.0.2.7", "127.0.0.1", "203.0.113.9"]


def test_a_bad_trusted_proxy_is_refused_before_anything_opens(tmp_path: Path) -> None:
    result = CliRunner().invoke(serve, ["--home", str(tmp_path / "h"), "--trusted-proxy", "lb.internal"])
    assert result.exit_code == 2
    assert "Invalid value for --trusted-proxy: not an IP address or CIDR network: 'lb.internal'" in result.output
    assert not (tmp_path / "h").exists()
