"""The OAuth routes: thin, each one parses, calls the flow or the account service, answers."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store
from crudauth.http.redirects import safe_redirect_path
from crudauth.http.request import BoundedRoute
from crudauth.oauth.flow import OAuthFlow, SignedIn, log_failure
from crudauth.oauth.state import STATE_COOKIE, STATE_TTL_SECONDS
from crudauth.oauth.types import INVALID_STATE, OAuthFailure
from crudauth.principal import Principal

INVALID_STATE_DETAIL = "Invalid or expired OAuth state"


class LinkConfirmIn(BaseModel):
    token: str = Field(max_length=128)


def build_oauth_router(flow: OAuthFlow, current_user: Any) -> APIRouter:
    runtime, settings = flow.runtime, flow.settings
    paths = settings.paths
    router = APIRouter(
        prefix=paths.prefix,
        tags=["oauth"],
        dependencies=[Depends(no_store)],
        route_class=BoundedRoute,
    )
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]
    User = Annotated[Principal, Depends(current_user)]
    cookies = runtime.cookies

    def with_state_cookie(out: Response, secret: str) -> Response:
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

    def failure(name: str, exc: OAuthFailure) -> Response:
        log_failure(name, exc)
        if settings.response_mode == "json":
            detail = INVALID_STATE_DETAIL if exc.code == INVALID_STATE else exc.code
            return JSONResponse({"detail": detail}, 400, headers={"X-Error-Code": exc.code})
        return RedirectResponse(_with_error(settings.default_redirect, exc.code), 307)

    @router.get(paths.authorize_path)
    async def authorize(request: Request, provider: str, redirect_to: str | None = None) -> Any:
        """Start signing in with ``provider``: a 307 to it (``{url}`` in JSON mode)."""
        with http_errors():
            await runtime.throttles.hit_address("oauth_authorize", runtime.client_ip(request))
            try:
                url, started = await flow.authorize(provider, safe_redirect_path(redirect_to))
            except OAuthFailure as exc:
                return failure(provider, exc)
        out: Response = (
            JSONResponse({"url": url})
            if settings.response_mode == "json"
            else RedirectResponse(url, 307)
        )
        return with_state_cookie(out, started.browser_secret)

    @router.get(paths.callback_path)
    async def callback(request: Request, db: Db, provider: str) -> Any:
        """Where the provider sends the browser back; signs in on success."""
        scratch = Response()
        with http_errors():
            await runtime.throttles.hit_address("oauth_callback", runtime.client_ip(request))
            try:
                done = await flow.callback(
                    request,
                    scratch,
                    db,
                    provider,
                    dict(request.query_params),
                    request.cookies.get(STATE_COOKIE),
                )
            except OAuthFailure as exc:
                out = failure(provider, exc)
            else:
                out = _success(flow, done)
        for name, value in scratch.headers.raw:
            if name == b"set-cookie":
                out.headers.raw.append((name, value))
        out.delete_cookie(
            STATE_COOKIE, path=cookies.path, secure=cookies.secure, httponly=True, samesite="lax"
        )
        return out

    @router.get("/identities")
    async def identities(principal: User, db: Db) -> list[dict[str, Any]]:
        """The providers linked to the signed-in account."""
        with http_errors():
            found = await flow.accounts.list_identities(db, principal.user)
        return [identity.public() for identity in found]

    @router.post("/{provider}/link")
    async def link(request: Request, principal: User, provider: str) -> Any:
        """Link ``provider`` to the signed-in account: ``{url}`` to send the browser to."""
        with http_errors():
            await runtime.throttles.hit_address("oauth_authorize", runtime.client_ip(request))
            url, started = await flow.authorize(provider, None, link_user_id=str(principal.user_id))
        return with_state_cookie(JSONResponse({"url": url}), started.browser_secret)

    @router.delete("/identities/{identity_id}")
    async def unlink(principal: User, db: Db, identity_id: str) -> Any:
        """Unlink one provider (refused when it is the account's last way to sign in)."""
        with http_errors():
            await flow.accounts.unlink(db, principal.user, identity_id)
        return {"detail": "Identity unlinked."}

    @router.post("/link/confirm")
    async def confirm_link(request: Request, db: Db, body: LinkConfirmIn) -> Any:
        """Confirm, from the mailed link, that a provider may sign in to this account."""
        with http_errors():
            await runtime.throttles.hit_address("oauth_link_confirm", runtime.client_ip(request))
            await flow.accounts.confirm_link(db, body.token)
        return {"detail": "Account linked."}

    return router


def _success(flow: OAuthFlow, done: SignedIn) -> Response:
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


def _with_error(url: str, code: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}error={code}"
