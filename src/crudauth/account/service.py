"""``PrincipalAccount``: what the account routes do for a signed-in principal, without HTTP.

The work is the account service's (:mod:`crudauth.credentials`): a password change is one
transaction, the new hash and the epoch bump commit together or not at all, and only then does
the caller's session move to the new epoch while every other credential ends. This class adds
what the principal must prove first (the current password under the sign-in throttle and
lockout, a fresh sign-in) and which of its credentials stays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from crudauth.credentials import AccountService, Revoker
from crudauth.errors import SignInNotFresh
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime
from crudauth.signin.confirm import detached_request, password_confirmer
from crudauth.transports.session.manager import SessionManager

Freshness = Callable[[Principal], Awaitable[bool]]

WRONG_CURRENT = "Current password is incorrect."
NOT_FRESH = "Sign in again to continue."


async def never_fresh(principal: Principal) -> bool:
    """The default ``Freshness``: no principal may set a password."""
    return False


class _Sessions:
    """A lone session manager seen as a transport, for callers that pass ``sessions=``."""

    def __init__(self, name: str, manager: SessionManager) -> None:
        self.name = name
        self.manager = manager

    async def revoke_user(self, user_id: Any, *, keep: str | None = None) -> int:
        return await self.manager.revoke_all(user_id, keep_key=keep)


class PrincipalAccount:
    """``/me``, ``/set-password`` and ``/change-password`` for any signed-in principal.

    ``fresh(principal)`` says whether a password-less account may set a password now.
    ``accounts``: the account service to use; without it, one over ``sessions`` alone.
    """

    def __init__(
        self,
        runtime: AuthRuntime,
        *,
        sessions: SessionManager | None = None,
        session_transport: str = "session",
        fresh: Freshness = never_fresh,
        accounts: AccountService | None = None,
    ) -> None:
        if accounts is None:
            holders: Sequence[Revoker] = (
                [_Sessions(session_transport, sessions)] if sessions else []
            )
            accounts = AccountService(runtime, holders)
        self.runtime = runtime
        self.accounts = accounts
        self.session_transport = session_transport
        self.fresh = fresh

    def describe(self, principal: Principal) -> dict[str, Any]:
        """Who the principal is, and through which transport."""
        repo, user = self.runtime.repo, principal.user
        return {
            "user_id": principal.user_id,
            "username": repo.value(user, "username") if user is not None else None,
            "email": repo.value(user, "email") if user is not None else None,
            "is_superuser": principal.is_superuser,
            "scopes": sorted(principal.scopes),
            "via": principal.transport,
        }

    async def set_password(self, db: AsyncSession, principal: Principal, new_password: str) -> None:
        """Give a password to an account that has none, only right after signing in (or in
        sudo mode): a session left open on a shared computer must not be enough."""

        async def recently_signed_in(user: Any) -> None:
            if not await self.fresh(principal):
                raise SignInNotFresh(NOT_FRESH)

        await self.accounts.set_password(
            db, principal.user, new_password, confirm=recently_signed_in
        )

    async def change_password(
        self,
        db: AsyncSession,
        principal: Principal,
        current_password: str,
        new_password: str,
        *,
        request: Request | None = None,
    ) -> None:
        """Replace the password once the current one is proven; every other session ends.

        ``request`` (the route passes it) lets the password check read the client's address
        and device cookie, and names the session in the hooks' context.
        """
        handle = principal.metadata.get("session_handle")
        # The same throttle and lockout as /login: a stolen session is no password oracle.
        confirm = password_confirmer(
            self.runtime,
            request or detached_request(None),
            db,
            current_password,
            transport=principal.transport,
            wrong=WRONG_CURRENT,
        )
        await self.accounts.change_password(
            db,
            principal.user,
            new_password,
            confirm=confirm,
            keep=self._own_session(principal),
            context=self.runtime.hook_context(
                request, principal.transport, handle if isinstance(handle, str) else None
            ),
        )

    def _own_session(self, principal: Principal) -> str | None:
        """The store key of the caller's session, which moves to the new epoch and stays; a
        bearer caller keeps none."""
        key = principal.metadata.get("session_key")
        if principal.transport == self.session_transport and isinstance(key, str):
            return key
        return None
