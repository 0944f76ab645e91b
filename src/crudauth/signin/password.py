"""The password first factor: throttle, lockout, one verification; and, once the whole sign-in
stands, the lockout's success and the device cookie.

Order matters and is the security argument:
1. the per-address volume throttle (cheap, fails closed);
2. a lockout slot on the address and on the identifier, reserved *before* any hashing;
3. exactly one password verification, whatever the account's state: an account whose own
   budget is spent is checked against no hash and refused as a wrong password (see
   ``crudauth.ratelimit.lockout`` on why that lock is never shown as one);
4. on success (``finish_sign_in``, called by the pipeline after the credential is issued) the
   identifier starts afresh and this browser gets a signed device cookie that exempts it from
   its identifier's lock next time.

Hooks receive the identifier as typed but escaped (``escape_identifier``): printable, one
line, bounded, so an application that logs it cannot be made to write a forged line.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from crudauth.errors import InvalidCredentials, LockedOut
from crudauth.http.headers import request_cookie
from crudauth.identity.identifiers import escape_identifier
from crudauth.ratelimit.device import DeviceToken
from crudauth.ratelimit.lockout import Attempt
from crudauth.runtime import AuthRuntime


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
    request: Request | None,
    db: AsyncSession,
    identifier: str,
    password: str,
    *,
    transport: str,
    account_known: bool = False,
) -> PasswordSignIn:
    """Verify a password sign-in under the throttle and the lockout; raise on refusal.

    ``account_known``: the caller is signed in to the account ``identifier`` names, so a
    lock of that account is shown to it as one (429), not as a wrong password. Without a
    ``request`` (a programmatic check) there is no address to throttle or lock and no device
    cookie: only the identifier and the account are counted."""
    ip = runtime.client_ip(request) if request is not None else None
    context = runtime.hook_context(request, transport)
    await runtime.throttles.hit_address("login_ip", ip)
    device = _device(runtime, request)
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


def _device(runtime: AuthRuntime, request: Request | None) -> DeviceToken | None:
    """This browser's signed device token, if it presents a valid one."""
    if request is None:
        return None
    return runtime.devices.read(request_cookie(request.scope, device_cookie_name(runtime)))


async def finish_sign_in(
    runtime: AuthRuntime, request: Request, response: Response, attempt: Attempt
) -> None:
    """Release the lockout slots and remember this browser for the identifier."""
    await runtime.lockout.succeeded(attempt)
    if not runtime.lockout.config.device_cookie:
        return
    name = device_cookie_name(runtime)
    current = runtime.devices.read(request_cookie(request.scope, name))
    token = runtime.devices.issue(current, attempt.subject)
    if attempt.account_device_tag is not None:
        token = runtime.devices.issue(runtime.devices.read(token), attempt.account_device_tag)
    response.set_cookie(
        name,
        token,
        max_age=int(runtime.devices.lifetime),
        path=runtime.cookies.path,
        secure=runtime.cookies.secure,
        httponly=True,
        samesite=runtime.cookies.samesite,
    )
