"""The OAuth routes: thin, each one parses, calls the flow or the account service, answers."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store
from crudauth.http.redirects import safe_redirect_path
from crudauth.http.request import BoundedRoute
from crudauth.oauth import responses
from crudauth.oauth.flow import OAuthFlow
from crudauth.oauth.responses import INVALID_STATE_DETAIL as INVALID_STATE_DETAIL
from crudauth.oauth.state import STATE_COOKIE
from crudauth.oauth.types import OAuthFailure
from crudauth.principal import Principal


class LinkConfirmIn(BaseModel):
    token: str = Field(max_length=128)


def build_oauth_router(flow: OAuthFlow, current_user: Any) -> APIRouter:
    """The sign-in routes (authorize, callback) and the signed-in user's identity routes."""
    router = APIRouter(
        prefix=flow.settings.paths.prefix,
        tags=["oauth"],
        dependencies=[Depends(no_store)],
        route_class=BoundedRoute,
    )
    _sign_in_routes(router, flow)
    _identity_routes(router, flow, current_user)
    return router


def _sign_in_routes(router: APIRouter, flow: OAuthFlow) -> None:
    runtime, settings = flow.runtime, flow.settings
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]

    @router.get(settings.paths.authorize_path)
    async def authorize(request: Request, provider: str, redirect_to: str | None = None) -> Any:
        """Start signing in with ``provider``: a 307 to it (``{url}`` in JSON mode)."""
        with http_errors():
            await runtime.throttles.hit_address("oauth_authorize", runtime.client_ip(request))
            try:
                url, started = await flow.authorize(provider, safe_redirect_path(redirect_to))
            except OAuthFailure as exc:
                return responses.failure(settings, provider, exc)
        out = responses.started(settings, url)
        return responses.with_state_cookie(out, started.browser_secret, runtime.cookies)

    @router.get(settings.paths.callback_path)
    async def callback(request: Request, db: Db, provider: str) -> Any:
        """Where the provider sends the browser back; signs in on success."""
        scratch = Response()
        with http_errors():
            await runtime.throttles.hit_address("oauth_callback", runtime.client_ip(request))
            params, secret = dict(request.query_params), request.cookies.get(STATE_COOKIE)
            try:
                done = await flow.callback(request, scratch, db, provider, params, secret)
            except OAuthFailure as exc:
                out = responses.failure(settings, provider, exc)
            else:
                out = responses.success(flow, done)
        return responses.callback_answer(out, scratch, runtime.cookies)


def _identity_routes(router: APIRouter, flow: OAuthFlow, current_user: Any) -> None:
    runtime = flow.runtime
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]
    User = Annotated[Principal, Depends(current_user)]

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
        out = JSONResponse({"url": url})
        return responses.with_state_cookie(out, started.browser_secret, runtime.cookies)

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
