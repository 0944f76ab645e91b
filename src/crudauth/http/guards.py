"""Request guards shared by the routes: login CSRF, JSON content type, no-store."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from crudauth.http.origins import OriginPolicy

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
