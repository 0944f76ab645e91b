"""The password sign-in every transport shares: throttle, lockout, check, hooks, device cookie.

Order matters and is the security argument:
1. the per-address volume throttle (cheap, fails closed);
2. a lockout slot on the address and on the identifier, reserved *before* any hashing;
3. exactly one password verification, whatever the account's state: an account whose own
   budget is spent is checked against no hash and refused as a wrong password (see
   ``crudauth.ratelimit.lockout`` on why that lock is never shown as one);
4. on success the identifier starts afresh and this browser gets a signed device cookie that
   exempts it from its identifier's lock next time.

Hooks receive the identifier as typed but escaped (``escape_identifier``): printable, one
line, bounded, so an application that logs it cannot be made to write a forged line.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Form
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from crudauth.errors import InvalidCredentials, LockedOut
from crudauth.http.headers import request_cookie
from crudauth.identity.identifiers import MAX_EMAIL_LENGTH, escape_identifier
from crudauth.passwords import MAX_PASSWORD_FIELD
from crudauth.ratelimit.device import DeviceToken
from crudauth.ratelimit.lockout import Attempt
from crudauth.runtime import AuthRuntime

#: Field caps of the sign-in form (422 above them, before any lookup or hashing). Generous:
#: up to them, an identifier over 320 characters or a password over 1024 bytes is refused as
#: a wrong password, after the same work as any other attempt.
MAX_IDENTIFIER: Final = MAX_EMAIL_LENGTH
MAX_FIELD: Final = 1024


class LoginForm:
    """The sign-in form of ``/login`` and ``/token``: OAuth2's password form plus
    ``remember_me``. ``client_id``, ``client_secret`` and ``grant_type`` are accepted for
    OAuth2 clients and ignored."""

    def __init__(
        self,
        username: Annotated[str, Form(max_length=MAX_IDENTIFIER)],
        password: Annotated[str, Form(max_length=MAX_PASSWORD_FIELD)],
        remember_me: Annotated[bool, Form()] = False,
        scope: Annotated[str, Form(max_length=MAX_FIELD)] = "",
        client_id: Annotated[str | None, Form(max_length=MAX_FIELD)] = None,
        client_secret: Annotated[str | None, Form(max_length=MAX_FIELD)] = None,
        grant_type: Annotated[str | None, Form(max_length=MAX_FIELD)] = None,
    ) -> None:
        self.username = username
        self.password = password
        self.remember_me = remember_me
        self.scopes = scope.split()


@dataclass(frozen=True)
class PasswordSignIn:
    """A verified user and the lockout slots its attempt still holds."""

    user: Any
    attempt: Attempt


def device_cookie_name(runtime: AuthRuntime) -> str:
    # __Host- pins the cookie to this exact origin when it can be Secure with Path=/.
    secure_root = runtime.cookies.secure and runtime.cookies.path == "/"
    return "__Host-crudauth_device" if secure_root else "crudauth_device"


def account_budget(
    runtime: AuthRuntime, attempt: Attempt, device: DeviceToken | None = None
) -> Callable[[Any], Awaitable[bool]]:
    """The authenticator's ``before_verify``: a slot on the account the identifier found
    (this browser's own slot if its device cookie lists the account's current epoch)."""

    async def reserve(user: Any) -> bool:
        return await runtime.lockout.reserve_account(
            attempt,
            runtime.repo.user_id(user),
            device.subjects if device else (),
            device.device_id if device else None,
            epoch=int(runtime.repo.value(user, "token_version", 0) or 0),
        )

    return reserve


async def check_password(
    runtime: AuthRuntime,
    request: Request,
    db: AsyncSession,
    identifier: str,
    password: str,
    *,
    transport: str,
    account_known: bool = False,
) -> PasswordSignIn:
    """Verify a password sign-in under the throttle and the lockout; raise on refusal.

    ``account_known``: the caller is signed in to the account ``identifier`` names, so a
    lock of that account is shown to it as one (429), not as a wrong password."""
    ip = runtime.client_ip(request)
    context = runtime.hook_context(request, transport)
    await runtime.throttles.hit_address("login_ip", ip)
    device = runtime.devices.read(request_cookie(request.scope, device_cookie_name(runtime)))
    subject = runtime.lockout.subject(identifier)
    device_id = device.device_id if device and subject in device.subjects else None
    try:
        attempt = await runtime.lockout.begin(
            ip, identifier, device_id, account_known=account_known
        )
        user = await runtime.authenticator.authenticate(
            db, identifier, password, before_verify=account_budget(runtime, attempt, device)
        )
    except LockedOut as exc:
        await runtime.hooks.fire(
            "on_lockout",
            escape_identifier(identifier),
            retry_after=exc.retry_after,
            context=context,
        )
        raise
    except InvalidCredentials as exc:
        # One hook for every 401, an account-budget refusal ("account_locked") included:
        # ``on_lockout`` is for a lock the client is told about, so an app's work there (an
        # alert, a mail) cannot set this refusal apart from a wrong password.
        await runtime.hooks.fire(
            "on_login_failed",
            escape_identifier(identifier),
            user=runtime.repo.to_dict(exc.user) if exc.user is not None else None,
            reason=exc.reason,
            context=context,
        )
        raise
    return PasswordSignIn(user, attempt)


async def finish_sign_in(
    runtime: AuthRuntime, request: Request, response: Response, sign_in: PasswordSignIn
) -> None:
    """Release the lockout slots and remember this browser for the identifier."""
    await runtime.lockout.succeeded(sign_in.attempt)
    if not runtime.lockout.config.device_cookie:
        return
    name = device_cookie_name(runtime)
    current = runtime.devices.read(request_cookie(request.scope, name))
    token = runtime.devices.issue(current, sign_in.attempt.subject)
    if sign_in.attempt.account_device_tag is not None:
        token = runtime.devices.issue(
            runtime.devices.read(token), sign_in.attempt.account_device_tag
        )
    response.set_cookie(
        name,
        token,
        max_age=int(runtime.devices.lifetime),
        path=runtime.cookies.path,
        secure=runtime.cookies.secure,
        httponly=True,
        samesite=runtime.cookies.samesite,
    )
