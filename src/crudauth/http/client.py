"""The client's address, as far as the configured proxies can be trusted."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

_MAX_ENTRY = 64


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


def client_ip(request: Request, trusted_proxy_hops: int = 0) -> str | None:
    """The address of the client.

    With 0 hops, the socket peer. With N hops, the N-th ``X-Forwarded-For`` entry from the
    right (each trusted proxy appends the address it saw). An entry that is not an IP address
    is never trusted: the peer is used instead.
    """
    peer = request.client.host if request.client else None
    if trusted_proxy_hops <= 0:
        return _parse_ip(peer) if peer else None
    values = request.headers.getlist("x-forwarded-for")
    entries = [e for v in values for e in v.split(",") if e.strip()]
    if not entries:
        return _parse_ip(peer) if peer else None
    chosen = entries[-min(trusted_proxy_hops, len(entries))]
    return _parse_ip(chosen) or (_parse_ip(peer) if peer else None)
