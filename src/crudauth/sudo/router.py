"""``POST /sudo`` and the ``require_sudo`` gate."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import AccessDenied, SudoRequired
from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store
from crudauth.http.request import BoundedRoute
from crudauth.passwords import MAX_PASSWORD_BYTES
from crudauth.principal import Principal
from crudauth.sudo.manager import SESSION_ONLY, SudoManager
from crudauth.transports.session.transport import SessionTransport

REAUTH_REQUIRED = "Re-authentication required."


class SudoIn(BaseModel):
    """The password, or (with two-factor sign-in on) a TOTP or recovery code."""

    password: str | None = Field(default=None, max_length=MAX_PASSWORD_BYTES)
    code: str | None = Field(default=None, max_length=64)


def sudo_gate(
    manager: SudoManager, current_user: Callable[..., Any]
) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets through only a session inside its sudo window."""

    async def require_sudo(principal: Annotated[Principal, Depends(current_user)]) -> Principal:
        with http_errors():
            if principal.transport != manager.transport:
                raise AccessDenied(SESSION_ONLY)
            if not await manager.is_elevated(principal):
                raise SudoRequired(REAUTH_REQUIRED)
            return principal

    return require_sudo


def build_sudo_router(
    manager: SudoManager, transport: SessionTransport, current_user: Callable[..., Any]
) -> APIRouter:
    router = APIRouter(tags=["account"], dependencies=[Depends(no_store)], route_class=BoundedRoute)
    Db = Annotated[AsyncSession, Depends(manager.runtime.session_dependency)]

    @router.post("/sudo")
    async def sudo(
        body: SudoIn,
        request: Request,
        response: Response,
        db: Db,
        principal: Annotated[Principal, Depends(current_user)],
    ) -> dict[str, Any]:
        """Confirm the password (or a second-factor code) to enter sudo mode in this session.

        The session moves to a new id and CSRF token (both cookies are set again, and the new
        token is in the body), so a copy of the old cookie gains nothing.
        """
        with http_errors():
            until = await manager.elevate(
                principal, body.password, code=body.code, db=db, request=request
            )
            session_id, csrf, live = await manager.renew(principal)
            max_age = transport.cookie_max_age(live.record.remember_me)
            transport.cookies.set(response, session_id, csrf, max_age)
            return {
                "detail": "Sudo mode enabled.",
                "sudo_until": until.isoformat(),
                "csrf_token": csrf,
            }

    return router
