"""What the OAuth routes answer: the state cookie, a refused sign-in and a finished one, as
JSON or as a redirect (``oauth_response_mode``)."""

from fastapi import Response
from fastapi.responses import JSONResponse, RedirectResponse

from crudauth.config import CookieConfig
from crudauth.oauth.flow import OAuthFlow, OAuthSettings, SignedIn, log_failure
from crudauth.oauth.state import STATE_COOKIE, STATE_TTL_SECONDS
from crudauth.oauth.types import INVALID_STATE, OAuthFailure

INVALID_STATE_DETAIL = "Invalid or expired OAuth state"


def started(settings: OAuthSettings, url: str) -> Response:
    """An authorization request: a 307 to the provider, or ``{url}`` in JSON mode."""
    if settings.response_mode == "json":
        return JSONResponse({"url": url})
    return RedirectResponse(url, 307)


def with_state_cookie(out: Response, secret: str, cookies: CookieConfig) -> Response:
    """``out`` with the cookie that ties the authorization request to this browser."""
    out.set_cookie(
        STATE_COOKIE,
        secret,
        max_age=STATE_TTL_SECONDS,
        path=cookies.path,
        secure=cookies.secure,
        httponly=True,
        samesite="lax",
    )
    return out


def failure(settings: OAuthSettings, name: str, exc: OAuthFailure) -> Response:
    """A refused sign-in with provider ``name``: logged, then a 400 or a redirect with
    ``?error=``."""
    log_failure(name, exc)
    if settings.response_mode == "json":
        detail = INVALID_STATE_DETAIL if exc.code == INVALID_STATE else exc.code
        return JSONResponse({"detail": detail}, 400, headers={"X-Error-Code": exc.code})
    return RedirectResponse(_with_error(settings.default_redirect, exc.code), 307)


def success(flow: OAuthFlow, done: SignedIn) -> Response:
    """A finished sign-in: the user (JSON), the landing page, or the MFA challenge."""
    settings, repo = flow.settings, flow.runtime.repo
    body, redirect_to, user = done.body, done.redirect_to, done.user
    if body.get("mfa_required"):
        if settings.response_mode == "json":
            return JSONResponse({**body, "redirect_to": redirect_to})
        return RedirectResponse(
            f"{settings.default_redirect}#mfa_challenge={body['challenge']}", 307
        )
    if settings.response_mode == "redirect":
        return RedirectResponse(redirect_to, 307)
    return JSONResponse(
        {
            "user": {
                "user_id": repo.user_id(user),
                "username": repo.value(user, "username"),
                "email": repo.value(user, "email"),
                "is_superuser": bool(repo.value(user, "is_superuser", False)),
            },
            "csrf_token": body.get("csrf_token"),
            "redirect_to": redirect_to,
        }
    )


def callback_answer(out: Response, scratch: Response, cookies: CookieConfig) -> Response:
    """``out`` with the cookies the sign-in set on ``scratch``, and the state cookie gone."""
    for name, value in scratch.headers.raw:
        if name == b"set-cookie":
            out.headers.raw.append((name, value))
    out.delete_cookie(
        STATE_COOKIE, path=cookies.path, secure=cookies.secure, httponly=True, samesite="lax"
    )
    return out


def _with_error(url: str, code: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}error={code}"
