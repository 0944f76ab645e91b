"""The client's address, as far as the configured proxies can be trusted.

Two ways to say which proxies to trust:

- ``trusted_proxy_hops=N``: exactly N proxies that you run sit in front; the client is the N-th
  entry from the right of the forwarding header (each proxy appends the address it saw).
- ``trusted_proxies=["10.0.0.0/8", ...]``: proxies are recognised by address. The header is read
  only when the socket peer is one of them, then walked from the right past every trusted
  address; the first untrusted one is the client.

The header is ``X-Forwarded-For`` by default, or the standard ``Forwarded`` (RFC 7239) when
``proxy_header="forwarded"``. Only one is ever read: a proxy that appends to one header usually
passes the other through from the client untouched, so reading both would let clients spoof.
An entry that is not an IP address (``unknown``, an obfuscated identifier, junk) is never
trusted: the address before it in the chain is used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from starlette.requests import Request

from crudauth.errors import ConfigurationError

_MAX_ENTRY = 64
_MAX_ENTRIES = 32

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ProxyHeader = Literal["x-forwarded-for", "forwarded"]


@dataclass(frozen=True)
class ProxyConfig:
    """How far forwarding headers are believed."""

    hops: int = 0
    networks: tuple[Network, ...] = field(default_factory=tuple)
    header: ProxyHeader = "x-forwarded-for"

    @classmethod
    def build(
        cls, hops: int, trusted: Sequence[str] | None, header: str = "x-forwarded-for"
    ) -> ProxyConfig:
        if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
            raise ConfigurationError("trusted_proxy_hops must be a non-negative integer")
        if header not in ("x-forwarded-for", "forwarded"):
            raise ConfigurationError("proxy_header must be 'x-forwarded-for' or 'forwarded'")
        networks: list[Network] = []
        for entry in trusted or ():
            if entry.strip() in ("*", "0.0.0.0/0", "::/0"):
                raise ConfigurationError(
                    "trusted_proxies must name your proxies; trusting every address lets any "
                    "client choose its own IP"
                )
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ConfigurationError(f"trusted_proxies: {entry!r} is not a CIDR") from None
        if networks and hops:
            raise ConfigurationError("pass trusted_proxy_hops or trusted_proxies, not both")
        return cls(hops, tuple(networks), header)  # type: ignore[arg-type]


def _parse_ip(value: str) -> str | None:
    value = value.strip().strip('"')
    if not value or len(value) > _MAX_ENTRY:
        return None
    if value.startswith("["):  # [v6]:port
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _chain(request: Request, header: ProxyHeader) -> list[str]:
    """The raw entries of the forwarding header, left (client) to right (nearest proxy)."""
    values = request.headers.getlist(header)
    if header == "x-forwarded-for":
        entries = [e.strip() for v in values for e in v.split(",") if e.strip()]
    else:
        entries = []
        for value in values:
            for element in value.split(","):
                fors = [
                    pair.split("=", 1)[1]
                    for pair in element.split(";")
                    if pair.strip().lower().startswith("for=")
                ]
                entries.append(fors[0].strip() if fors else "")
    return entries[-_MAX_ENTRIES:]


def client_ip(request: Request, proxies: ProxyConfig | int = 0) -> str | None:
    """The address of the client, or ``None`` when the request has no peer at all."""
    config = proxies if isinstance(proxies, ProxyConfig) else ProxyConfig(hops=proxies)
    peer = _parse_ip(request.client.host) if request.client else None
    if config.networks:
        return _walk_trusted(request, config, peer)
    if config.hops <= 0:
        return peer
    entries = _chain(request, config.header)
    if not entries:
        return peer
    return _parse_ip(entries[-min(config.hops, len(entries))]) or peer


def get_client_ip(request: Request, trusted_proxy_hops: ProxyConfig | int = 0) -> str:
    """``client_ip`` in the reference's form: ``"unknown"`` when the request has no peer."""
    return client_ip(request, trusted_proxy_hops) or "unknown"


def _trusted(address: str | None, networks: tuple[Network, ...]) -> bool:
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in networks)


def _walk_trusted(request: Request, config: ProxyConfig, peer: str | None) -> str | None:
    if not _trusted(peer, config.networks):
        return peer  # not from a proxy of ours: the header is the client's own claim
    candidate = peer
    for raw in reversed(_chain(request, config.header)):
        address = _parse_ip(raw)
        if address is None:
            break  # junk in the chain: stop at the last address we could read
        candidate = address
        if not _trusted(address, config.networks):
            break
    return candidate
