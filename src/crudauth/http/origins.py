"""Which origins may send cookie-bearing unsafe requests: login CSRF and CSRF defence in depth.

A browser names the page that sent a request in ``Origin`` (and, when ``Origin`` is absent, in
``Referer``) and, since 2020, says in ``Sec-Fetch-Site`` how that page relates to the target.
A request that signs a browser in, or that a session makes with an unsafe method, is refused
when:

- ``Sec-Fetch-Site`` is ``cross-site``;
- ``Origin`` is ``null`` (sandboxed frames, privacy redirects) or not an origin at all;
- ``Origin`` (else ``Referer``) names another host than the request's own ``Host``, unless it
  is one of ``CRUDAuth(trusted_origins=...)``. ``https://example.org.attacker.com`` is another
  host; so is ``https://other.example.org`` (a sibling subdomain is same-*site*, not
  same-origin).

The own-host comparison ignores the scheme and default ports, because a proxy that terminates
TLS usually forwards plain HTTP: ``Origin: https://example.org`` matches ``Host: example.org``
behind it. Trusted origins are compared exactly (scheme, host and port).

Requests without ``Origin`` or ``Referer`` (command-line and server-side clients) pass; a
session's unsafe requests still need their CSRF token, and every current browser sends
``Origin`` on a cross-origin POST.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from crudauth.errors import ConfigurationError, CrossSiteRequest

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _origin(value: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of a URL or serialized origin; port ``None`` when default."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    return scheme, host, None if port in (None, _DEFAULT_PORTS[scheme]) else port


def _host(value: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of a ``Host`` header; port ``None`` when absent or 80/443."""
    parsed = _origin(f"http://{value}")
    if parsed is None:
        return None
    _, host, port = parsed
    return host, None if port == 443 else port


@dataclass(frozen=True)
class OriginPolicy:
    """The request's own host plus ``trusted`` origins (each ``(scheme, host, port)``)."""

    trusted: frozenset[tuple[str, str, int | None]] = frozenset()

    @classmethod
    def build(cls, trusted_origins: Iterable[str] | None) -> OriginPolicy:
        """Validate ``CRUDAuth(trusted_origins=...)``: full origins, nothing more or less."""
        if isinstance(trusted_origins, str):
            raise ConfigurationError("trusted_origins must be a list of origins, not a string")
        trusted = set()
        for entry in trusted_origins or ():
            parsed = _origin(entry) if isinstance(entry, str) else None
            tail = urlsplit(entry).path if isinstance(entry, str) else ""
            if parsed is None or tail not in ("", "/") or "*" in str(entry):
                raise ConfigurationError(
                    f"trusted_origins entry {entry!r} is not an origin like "
                    "'https://app.example.com' (scheme and host, optional port, no path)"
                )
            trusted.add(parsed)
        return cls(frozenset(trusted))

    def allows(self, request: Request, value: str) -> bool:
        """Whether the page ``value`` (an Origin or a Referer) may act on this app."""
        origin = _origin(value)
        if origin is None:
            return False
        if origin in self.trusted:
            return True
        own = _host(request.headers.get("host", ""))
        return own is not None and own == origin[1:]

    def check(self, request: Request) -> None:
        """Raise ``CrossSiteRequest`` for a request another site's page sent."""
        headers = request.headers
        if headers.get("sec-fetch-site", "").lower() == "cross-site":
            raise CrossSiteRequest("cross-site request")
        origin = headers.get("origin")
        if origin is not None:
            if origin.strip().lower() == "null":
                raise CrossSiteRequest("opaque origin")
            if not self.allows(request, origin):
                raise CrossSiteRequest("origin not allowed")
            return
        referer = headers.get("referer")
        if referer and not self.allows(request, referer):
            raise CrossSiteRequest("referer not allowed")


# -- guards ------------------------------------------------------------------------------

# Request guards shared by the routes: login CSRF, JSON content type, no-store.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

_OWN_HOST_ONLY = OriginPolicy()


def refuse_cross_site(request: Request, policy: OriginPolicy | None = None) -> None:
    """Refuse login-like requests that another site's page sent (``CrossSiteRequest``).

    Login CSRF would sign the victim in to the attacker's account. ``policy`` names the
    origins allowed besides the request's own host (``CRUDAuth(trusted_origins=...)``); see
    ``crudauth.http.origins`` for the exact rules.
    """
    (policy or _OWN_HOST_ONLY).check(request)


def no_store(response: Response) -> None:
    """Dependency: responses carrying auth state must never be cached."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
