"""Account routes for any signed-in principal: ``GET /me``, ``/set-password``, ``/change-password``.

Each handler reads the request, calls one :class:`~crudauth.account.service.PrincipalAccount`
method and answers; the checks and the transaction live there and in the account service
(:mod:`crudauth.credentials`).
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.account.service import NOT_FRESH as NOT_FRESH
from crudauth.account.service import WRONG_CURRENT as WRONG_CURRENT
from crudauth.account.service import Freshness as Freshness
from crudauth.account.service import PrincipalAccount, never_fresh
from crudauth.credentials import AccountService
from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store
from crudauth.http.request import BoundedRoute
from crudauth.passwords import MAX_PASSWORD_BYTES
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime
from crudauth.transports.session.manager import SessionManager


class SetPasswordIn(BaseModel):
    new_password: str = Field(max_length=MAX_PASSWORD_BYTES)


class ChangePasswordIn(BaseModel):
    current_password: str = Field(max_length=MAX_PASSWORD_BYTES)
    new_password: str = Field(max_length=MAX_PASSWORD_BYTES)


def build_account_router(
    runtime: AuthRuntime,
    current_user: Callable[..., Any],
    *,
    sessions: SessionManager | None = None,
    session_transport: str = "session",
    fresh: Freshness = never_fresh,
    accounts: AccountService | None = None,
) -> APIRouter:
    """``fresh(principal)`` says whether a password-less account may set a password now.

    ``accounts``: the account service to use (``CRUDAuth`` passes its own); without it, one
    over ``sessions`` alone is built.
    """
    account = PrincipalAccount(
        runtime,
        sessions=sessions,
        session_transport=session_transport,
        fresh=fresh,
        accounts=accounts,
    )
    router = APIRouter(tags=["account"], dependencies=[Depends(no_store)], route_class=BoundedRoute)
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]
    Caller = Annotated[Principal, Depends(current_user)]

    @router.get("/me")
    async def me(principal: Caller) -> dict[str, Any]:
        """Who the caller is, and through which transport."""
        return account.describe(principal)

    @router.post("/set-password")
    async def set_password(body: SetPasswordIn, db: Db, principal: Caller) -> dict[str, str]:
        """Give a password to an account that has none (say, one made through OAuth).

        Only right after signing in (or in sudo mode): a session left open on a shared computer
        must not be enough to attach a password to someone's account.
        """
        with http_errors():
            await account.set_password(db, principal, body.new_password)
            return {"detail": "Password set."}

    @router.post("/change-password")
    async def change_password(
        body: ChangePasswordIn, request: Request, db: Db, principal: Caller
    ) -> dict[str, str]:
        """Replace the password; every other session of the account ends."""
        with http_errors():
            await account.change_password(
                db, principal, body.current_password, body.new_password, request=request
            )
            return {"detail": "Password changed."}

    return router
