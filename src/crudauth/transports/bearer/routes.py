"""``POST /refresh``, the cookie-mode ``POST /logout`` and the JWKS; ``POST /token`` is the
sign-in pipeline's (``crudauth.signin.routes``)."""

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import InvalidRefreshToken, InvalidToken
from crudauth.exceptions import UnauthorizedException
from crudauth.http.errors import http_errors, to_http
from crudauth.http.origins import no_store, refuse_cross_site
from crudauth.http.request import BoundedRoute, request_cookie
from crudauth.transports.bearer.tokens import MAX_TOKEN_BYTES

if TYPE_CHECKING:
    from crudauth.transports.bearer.results import RefreshedTokens
    from crudauth.transports.bearer.transport import BearerTransport

REFRESH_MISSING = "Refresh token missing"


class RefreshIn(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=MAX_TOKEN_BYTES)


def _cleared(transport: "BearerTransport") -> dict[str, str]:
    """The ``Set-Cookie`` header that deletes the refresh cookie."""
    scratch = Response()
    transport.clear_cookies(scratch)
    return {"set-cookie": scratch.headers["set-cookie"]}


async def _refreshed(
    transport: "BearerTransport", db: AsyncSession, presented: str, request: Request
) -> "RefreshedTokens":
    """``transport.refresh``; a refused token is a 401 that, in cookie mode, also drops the
    refresh cookie (a dead one is useless to keep)."""
    try:
        return await transport.refresh(db, presented, request)
    except InvalidToken as exc:
        error = to_http(InvalidRefreshToken(exc.reason))
        if transport.refresh_mode == "cookie":
            error.headers = {**(error.headers or {}), **_cleared(transport)}
        raise error from None


def build_bearer_router(transport: "BearerTransport") -> APIRouter:
    runtime = transport.runtime
    router = APIRouter(tags=["auth"], route_class=BoundedRoute)
    private = [Depends(no_store)]
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]
    cookie_mode = transport.refresh_mode == "cookie"

    @router.post("/refresh", dependencies=private)
    async def refresh(
        request: Request,
        response: Response,
        db: Db,
        body: Annotated[RefreshIn | None, Body()] = None,
    ) -> dict[str, Any]:
        """Trade a refresh token for a new pair; the spent one is dead from now on."""
        presented = transport.read_refresh(request, body.refresh_token if body else None)
        if presented is None:
            raise UnauthorizedException(REFRESH_MISSING, headers={"WWW-Authenticate": "Bearer"})
        with http_errors():
            await runtime.throttles.hit_address("refresh", runtime.client_ip(request))
            if cookie_mode:
                refuse_cross_site(request, runtime.origins)
            result = await _refreshed(transport, db, presented, request)
        answer = dict(result.tokens)
        if cookie_mode:
            transport.set_refresh_cookie(response, answer.pop("refresh_token"), result.expires_at)
        return answer

    if cookie_mode and not transport.sibling_session:

        @router.post("/logout", dependencies=private)
        async def logout(request: Request, response: Response) -> dict[str, str]:
            """Revoke this browser's refresh-token family and clear its cookie."""
            with http_errors():
                refuse_cross_site(request, runtime.origins)
                presented = request_cookie(request.scope, transport.refresh_cookie_name)
                if presented:
                    await transport.revoke_refresh_token(presented)
                transport.clear_cookies(response)
                return {"detail": "Logged out"}

    if transport.algorithm != "HS256":

        @router.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, list[dict[str, str]]]:
            """The public keys that verify this server's access tokens."""
            return transport.jwks()

    return router
