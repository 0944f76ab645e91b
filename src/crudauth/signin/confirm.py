"""Confirming a signed-in user's password: the sign-in's throttle and lockout, then one check.

Change-password and sudo ask for the password again. An attacker holding a stolen session must
not get a free password oracle out of that, so the check goes through exactly the same path as
``/login`` (address throttle, lockout slots reserved before hashing, one verification) and its
failures count against the same identifier.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from crudauth.errors import IncorrectPassword, InvalidCredentials, InvalidRequest
from crudauth.passwords import is_unusable_password
from crudauth.runtime import AuthRuntime
from crudauth.signin.pipeline import check_password


def login_identifier(runtime: AuthRuntime, user: Any) -> str | None:
    """The first configured login field that this user has a value for."""
    for field in runtime.identity.login:
        value = runtime.repo.value(user, field)
        if isinstance(value, str) and value:
            return value
    return None


def has_usable_password(runtime: AuthRuntime, user: Any) -> bool:
    return not is_unusable_password(runtime.repo.value(user, "hashed_password"))


async def confirm_password(
    runtime: AuthRuntime,
    request: Request,
    db: AsyncSession,
    user: Any,
    password: str,
    *,
    transport: str,
    wrong: str,
) -> None:
    """Return if ``password`` is ``user``'s; raise ``IncorrectPassword(wrong)`` if not.

    ``LockedOut`` and ``RateLimited`` propagate as they do from ``/login``.
    """
    identifier = login_identifier(runtime, user)
    if identifier is None or not has_usable_password(runtime, user):
        raise InvalidRequest("This account has no password.", code="no_password")
    try:
        sign_in = await check_password(
            runtime, request, db, identifier, password, transport=transport, account_known=True
        )
    except InvalidCredentials:
        raise IncorrectPassword(wrong) from None
    if runtime.repo.user_id(sign_in.user) != runtime.repo.user_id(user):
        # The identifier named another account (never expected: login fields are unique).
        raise IncorrectPassword(wrong)
    await runtime.lockout.succeeded(sign_in.attempt)


def password_confirmer(
    runtime: AuthRuntime,
    request: Request,
    db: AsyncSession,
    password: str,
    *,
    transport: str,
    wrong: str,
) -> Callable[[Any], Awaitable[None]]:
    """``confirm_password`` for this request, as the account service's ``confirm`` step."""

    async def confirm(user: Any) -> None:
        await confirm_password(
            runtime, request, db, user, password, transport=transport, wrong=wrong
        )

    return confirm


def detached_request(client_ip: str | None) -> Request:
    """A request that carries only a client address already resolved, for a password check
    made outside a route (no headers, so no proxy chain to read and no device cookie)."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [],
        "query_string": b"",
        "client": (client_ip, 0) if client_ip else None,
    }
    return Request(scope)
