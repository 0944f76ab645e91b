"""Account routes for any signed-in principal: ``GET /me``, ``/set-password``, ``/change-password``.

The work is the account service's (:mod:`crudauth.credentials`): a password change is one
transaction, the new hash and the epoch bump commit together or not at all, and only then does
the caller's session move to the new epoch while every other credential ends. These handlers
read the request, prove what the request must prove (the current password under the sign-in
throttle and lockout, a fresh sign-in) and answer.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.credentials import AccountService, Revoker
from crudauth.errors import SignInNotFresh
from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store
from crudauth.http.request import BoundedRoute
from crudauth.passwords import MAX_PASSWORD_BYTES
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime
from crudauth.signin.confirm import password_confirmer
from crudauth.transports.session.manager import SessionManager

Freshness = Callable[[Principal], Awaitable[bool]]

WRONG_CURRENT = "Current password is incorrect."
NOT_FRESH = "Sign in again to continue."


class SetPasswordIn(BaseModel):
    new_password: str = Field(max_length=MAX_PASSWORD_BYTES)


class ChangePasswordIn(BaseModel):
    current_password: str = Field(max_length=MAX_PASSWORD_BYTES)
    new_password: str = Field(max_length=MAX_PASSWORD_BYTES)


async def _never_fresh(principal: Principal) -> bool:
    return False


def _own_session(principal: Principal, session_transport: str) -> str | None:
    """The store key of the caller's session, which moves to the new epoch and stays; a
    bearer caller keeps none."""
    key = principal.metadata.get("session_key")
    return key if principal.transport == session_transport and isinstance(key, str) else None


class _Sessions:
    """A lone session manager seen as a transport, for callers that pass ``sessions=``."""

    def __init__(self, name: str, manager: SessionManager) -> None:
        self.name = name
        self.manager = manager

    async def revoke_user(self, user_id: Any, *, keep: str | None = None) -> int:
        return await self.manager.revoke_all(user_id, keep_key=keep)


def build_account_router(
    runtime: AuthRuntime,
    current_user: Callable[..., Any],
    *,
    sessions: SessionManager | None = None,
    session_transport: str = "session",
    fresh: Freshness = _never_fresh,
    accounts: AccountService | None = None,
) -> APIRouter:
    """``fresh(principal)`` says whether a password-less account may set a password now.

    ``accounts``: the account service to use (``CRUDAuth`` passes its own); without it, one
    over ``sessions`` alone is built.
    """
    if accounts is None:
        holders: Sequence[Revoker] = [_Sessions(session_transport, sessions)] if sessions else []
        accounts = AccountService(runtime, holders)
    service = accounts
    router = APIRouter(tags=["account"], dependencies=[Depends(no_store)], route_class=BoundedRoute)
    repo = runtime.repo
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]
    Caller = Annotated[Principal, Depends(current_user)]

    @router.get("/me")
    async def me(principal: Caller) -> dict[str, Any]:
        """Who the caller is, and through which transport."""
        user = principal.user
        return {
            "user_id": principal.user_id,
            "username": repo.value(user, "username") if user is not None else None,
            "email": repo.value(user, "email") if user is not None else None,
            "is_superuser": principal.is_superuser,
            "scopes": sorted(principal.scopes),
            "via": principal.transport,
        }

    @router.post("/set-password")
    async def set_password(body: SetPasswordIn, db: Db, principal: Caller) -> dict[str, str]:
        """Give a password to an account that has none (say, one made through OAuth).

        Only right after signing in (or in sudo mode): a session left open on a shared computer
        must not be enough to attach a password to someone's account.
        """

        async def recently_signed_in(user: Any) -> None:
            if not await fresh(principal):
                raise SignInNotFresh(NOT_FRESH)

        with http_errors():
            await service.set_password(
                db, principal.user, body.new_password, confirm=recently_signed_in
            )
            return {"detail": "Password set."}

    @router.post("/change-password")
    async def change_password(
        body: ChangePasswordIn, request: Request, db: Db, principal: Caller
    ) -> dict[str, str]:
        """Replace the password; every other session of the account ends."""

        handle = principal.metadata.get("session_handle")
        with http_errors():
            await service.change_password(
                db,
                principal.user,
                body.new_password,
                # The same throttle and lockout as /login: a stolen session is no password oracle.
                confirm=password_confirmer(
                    runtime,
                    request,
                    db,
                    body.current_password,
                    transport=principal.transport,
                    wrong=WRONG_CURRENT,
                ),
                keep=_own_session(principal, session_transport),
                context=runtime.hook_context(
                    request, principal.transport, handle if isinstance(handle, str) else None
                ),
            )
            return {"detail": "Password changed."}

    return router
