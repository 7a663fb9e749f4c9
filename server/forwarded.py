"""The client behind a trusted proxy (`keyledger serve --trusted-proxy CIDR`).

Behind a load balancer or reverse proxy, the TCP peer of every request is
the proxy, so `aws:SourceIp`, the records' `source` and the refusal
throttle would all see one address. A proxy says whom it forwards for in
`X-Forwarded-For` (each hop appends the address it received from) and
whether the client spoke TLS to it in `X-Forwarded-Proto`. Anyone can write
those headers, so they are believed only as far as the hops are trusted:

- a request whose peer is not a trusted proxy keeps its peer, whatever its
  headers say (the default trusts no proxy);
- from a trusted peer, `X-Forwarded-For` is read from the right (the hop
  nearest this server), skipping addresses of trusted proxies; the first
  other address is the client. What lies to its left was written by the
  client itself and is never read;
- an entry that is no IP address stops the walk: the client is then the
  last trusted hop, not whatever the garbage claims;
- `X-Forwarded-Proto` from a trusted peer (its last value) says whether the
  client's leg was TLS (`aws:SecureTransport`).

Pure functions of the addresses and headers; `apply` rewrites an ASGI scope.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from keyledger.policy import address_in

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: where `apply` leaves the proxy's own address in the ASGI scope (for the access log)
PROXY = "keyledger.proxy"


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """`--trusted-proxy` values (an address or a CIDR network each). Raises
    ValueError naming the first that is neither."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR network: {value!r}") from None
    return tuple(out)


def trusted(address: str, proxies: Sequence[Network]) -> bool:
    return any(address_in(address, network) for network in proxies)


def client_address(peer: str, forwarded_for: Sequence[str], proxies: Sequence[Network]) -> str:
    """The client's address for a request from `peer` carrying these
    `X-Forwarded-For` header values (in the order received)."""
    if not proxies or not trusted(peer, proxies):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    current = peer
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return current  # not an address: believe nothing further out
        mapped = getattr(address, "ipv4_mapped", None)
        current = str(mapped if mapped is not None else address)
        if not trusted(current, proxies):
            return current
    return current  # every hop a trusted proxy: the farthest of them


def client_tls(peer: str, forwarded_proto: Sequence[str], proxies: Sequence[Network], tls: bool) -> bool:
    """Whether the client's own leg was TLS: the connection's `tls`, or, from
    a trusted proxy that says so, its `X-Forwarded-Proto`."""
    if not proxies or not forwarded_proto or not trusted(peer, proxies):
        return tls
    return forwarded_proto[-1].split(",")[-1].strip().lower() == "https"


def apply(scope: dict[str, Any], proxies: Sequence[Network]) -> None:
    """Rewrite the ASGI `scope`'s client and scheme to the client's behind
    trusted proxies (nothing changes for a peer that is not one)."""
    peer = (scope.get("client") or ("", 0))[0]
    if not trusted(peer, proxies):
        return
    forwarded_for: list[str] = []
    forwarded_proto: list[str] = []
    for name, value in scope.get("headers", ()):
        lowered = name.lower()
        if lowered == b"x-forwarded-for":
            forwarded_for.append(value.decode("latin-1"))
        elif lowered == b"x-forwarded-proto":
            forwarded_proto.append(value.decode("latin-1"))
    client = client_address(peer, forwarded_for, proxies)
    scope[PROXY] = peer
    scope["client"] = (client, 0)
    scope["scheme"] = "https" if client_tls(peer, forwarded_proto, proxies, scope.get("scheme") == "https") \
        else "http"
