"""Request guards shared by the routes: login CSRF, JSON content type, no-store."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from crudauth.errors import CrossSiteRequest

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def refuse_cross_site(request: Request) -> None:
    """Refuse login-like requests a browser marks as coming from another site.

    Login CSRF would sign the victim in to the attacker's account. ``Sec-Fetch-Site`` is sent
    by every current browser; ``Origin: null`` comes from sandboxed or privacy-redirected
    contexts that have no business signing anyone in.
    """
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise CrossSiteRequest("cross-site login")
    if request.headers.get("origin", "").strip().lower() == "null":
        raise CrossSiteRequest("opaque origin")


def no_store(response: Response) -> None:
    """Dependency: responses carrying auth state must never be cached."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
