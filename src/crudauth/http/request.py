"""What crudauth reads from a request: the client's address, headers and cookies, and a body
of bounded size (in that order below).

The client's address, as far as the configured proxies can be trusted.

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
import logging
import re
from collections.abc import Callable, Coroutine, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request, cookie_parser
from starlette.responses import Response

from crudauth.errors import ConfigurationError, RequestTooLarge
from crudauth.http.errors import http_errors

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


# -- headers and cookies ------------------------------------------------------------------

# Reading one request header straight from the ASGI scope.
logger = logging.getLogger("crudauth")

#: RFC 6265 cookie-name: what a configured cookie name must match (session, CSRF, refresh).
COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def raw_header(scope: MutableMapping[str, Any], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case, as ASGI servers deliver names), or ``None``.

    The same answer as ``request.headers.get(name)`` without building a ``Headers`` object: an
    authentication check on every request only needs to know whether its header is there.
    """
    for key, value in _headers(scope):
        if key == name:
            return value
    return None


def _headers(scope: MutableMapping[str, Any]) -> list[tuple[bytes, bytes]]:
    """The scope's header list; any other iterable is made a list first and written back, as
    Starlette's ``Headers`` does, so that nothing after this reads an exhausted iterator."""
    headers = scope["headers"]
    if not isinstance(headers, list):
        headers = scope["headers"] = list(headers)
    return headers


def request_cookie(scope: MutableMapping[str, Any], name: str) -> str | None:
    """The value of the credential cookie ``name``; ``None`` if absent or sent more than once.

    Starlette's parsing rules otherwise: every ``Cookie`` header in order, split on ``;``,
    names and values stripped. A quoted value is handed to Starlette's own parser (for its
    unquoting); a credential never is quoted, so the common case builds no dict, unquotes
    nothing and scans the header once.

    A name sent twice is no credential at all. A browser sends two cookies of one name when
    another host of the parent domain has set its own (``Domain=.example.com``) next to this
    host's one: cookie tossing. Which one a browser puts last (Starlette's choice) or first
    depends on path length and creation time, not on who set it, so neither can be trusted
    to be this host's own.
    """
    found = None
    texts = []
    for key, value in _headers(scope):
        if key != b"cookie":
            continue
        text = value.decode("latin-1")
        texts.append(text)
        for chunk in text.split(";"):
            cookie, sep, content = chunk.partition("=")
            if sep and cookie.strip() == name:
                if found is not None:
                    logger.warning(
                        "crudauth: the %r cookie was sent more than once and is ignored "
                        "(another host of the domain may be setting it: use a __Host- name)",
                        name,
                    )
                    return None
                found = content.strip()
    if found is not None and found.startswith('"'):
        cookies: dict[str, str] = {}
        for text in texts:
            cookies.update(cookie_parser(text))
        return cookies.get(name)
    return found


# -- bounded bodies -----------------------------------------------------------------------

# What crudauth's own routes accept before any work is done on a request body.
#
# Every crudauth router is built with ``route_class=BoundedRoute``, so this applies to the
# library's routes only, never to the rest of the application:
#
# - A body over ``MAX_BODY_BYTES`` answers 413 before it is parsed. A sign-in form or a token is
#   a few hundred bytes; a megabyte of JSON or of form fields is only a way to make the server
#   read, allocate and validate for nothing (and, on the sign-in routes, to do so before the
#   throttle). The declared ``Content-Length`` is checked first; a body sent without one is read
#   chunk by chunk and refused as soon as it passes the limit.
# - A body that is not text (bytes that are not UTF-8 under a non-JSON content type) answers
#   422 like any other malformed body. FastAPI's default 422 handler echoes the raw input back
#   and cannot encode such bytes, which would turn a malformed request into a 500.
#: The largest body any crudauth route needs: the biggest one (a reset confirmation: a 2 KiB
#: token and a password of at most 4096 characters) is under 20 KiB; an application's own
#: registration schema gets the rest.
MAX_BODY_BYTES: Final = 64 * 1024

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


async def read_bounded_body(request: Request, limit: int = MAX_BODY_BYTES) -> None:
    """Read the body into the request (where Starlette keeps it), or raise ``RequestTooLarge``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise RequestTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge()
        chunks.append(chunk)
    # Request.body(), .json() and .form() read this instead of the (now consumed) stream.
    request._body = b"".join(chunks)


def _printable(errors: Any) -> list[Any]:
    """Validation errors whose ``input`` is text, so the 422 can always be written."""
    out = []
    for error in errors:
        if isinstance(error, dict) and isinstance(error.get("input"), (bytes, bytearray)):
            error = {**error, "input": bytes(error["input"]).decode("utf-8", "replace")}
        out.append(error)
    return out


class BoundedRoute(APIRoute):
    """An ``APIRoute`` whose body is size-checked before FastAPI parses or validates it."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                with http_errors():
                    await read_bounded_body(request)
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise RequestValidationError(_printable(exc.errors()), body=exc.body) from None

        return bounded
