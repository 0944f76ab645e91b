"""Account routes for any signed-in principal: ``GET /me``, ``/set-password``, ``/change-password``.

A password change is one transaction: the new hash and the epoch bump (``token_version + 1``)
commit together or not at all. Only after the commit does the current session move to the new
epoch and every other session end; if the commit fails, the old password and every session
still work, and nothing half-changed is left behind.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import InvalidRequest, SignInNotFresh
from crudauth.http.errors import http_errors
from crudauth.http.guards import no_store
from crudauth.http.limits import BoundedRoute
from crudauth.passwords import MAX_PASSWORD_BYTES
from crudauth.policy import PasswordContext, Source
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime
from crudauth.transports.confirm import confirm_password, has_usable_password
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


def build_account_router(
    runtime: AuthRuntime,
    current_user: Callable[..., Any],
    *,
    sessions: SessionManager | None = None,
    session_transport: str = "session",
    fresh: Freshness = _never_fresh,
) -> APIRouter:
    """``fresh(principal)`` says whether a password-less account may set a password now."""
    router = APIRouter(tags=["account"], dependencies=[Depends(no_store)], route_class=BoundedRoute)
    repo = runtime.repo
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]
    Caller = Annotated[Principal, Depends(current_user)]

    async def check_policy(password: str, user: Any, source: Source) -> None:
        context = PasswordContext(
            source=source,
            username=repo.value(user, "username"),
            email=repo.value(user, "email"),
            user=user,
        )
        await runtime.password_policy.check(password, context, "new_password")

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
        with http_errors():
            user = principal.user
            if has_usable_password(runtime, user):
                raise InvalidRequest(
                    "A password is already set. Use /change-password.", code="password_set"
                )
            if not await fresh(principal):
                raise SignInNotFresh(NOT_FRESH)
            await check_policy(body.new_password, user, "set")
            new_hash = await runtime.hasher.hash_async(body.new_password)
            await repo.update(db, user, {"hashed_password": new_hash})
            return {"detail": "Password set."}

    @router.post("/change-password")
    async def change_password(
        body: ChangePasswordIn, request: Request, db: Db, principal: Caller
    ) -> dict[str, str]:
        """Replace the password; every other session of the account ends."""
        with http_errors():
            user = principal.user
            await runtime.throttles.hit("change_password", f"user:{principal.user_id}")
            if not has_usable_password(runtime, user):
                raise InvalidRequest(
                    "This account has no password. Use /set-password.", code="no_password"
                )
            await check_policy(body.new_password, user, "change")
            # The same throttle and lockout as /login: a stolen session is no password oracle.
            await confirm_password(
                runtime,
                request,
                db,
                user,
                body.current_password,
                transport=principal.transport,
                wrong=WRONG_CURRENT,
            )
            new_hash = await runtime.hasher.hash_async(body.new_password)
            try:
                setattr(user, repo.attr_name("hashed_password"), new_hash)
                version = await repo.bump_token_version(db, user, commit=False)
                await db.commit()
            except BaseException:
                await db.rollback()
                raise
            await end_other_sessions(principal, version)
            await runtime.credentials_changed(principal.user_id)
            handle = principal.metadata.get("session_handle")
            await runtime.hooks.fire(
                "on_after_password_changed",
                repo.to_dict(user),
                db=db,
                context=runtime.hook_context(
                    request, principal.transport, handle if isinstance(handle, str) else None
                ),
            )
            return {"detail": "Password changed."}

    async def end_other_sessions(principal: Principal, version: int) -> None:
        if sessions is None:
            return
        key = principal.metadata.get("session_key")
        kept = None
        # The caller's own session moves to the new epoch; update() never revives it.
        if (
            principal.transport == session_transport
            and isinstance(key, str)
            and await sessions.store.update(key, {"token_version": version})
        ):
            kept = key
        await sessions.revoke_all(principal.user_id, keep_key=kept)

    return router
