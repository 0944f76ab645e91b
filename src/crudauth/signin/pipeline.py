"""The sign-in pipeline: every way of proving who you are ends in the same steps, in this order.

``SignInPipeline.complete`` reads top to bottom as the security argument of a sign-in:

1. **First factor**: a proof of who this is, verified under its own throttle and lockout
   (``check_password`` below; an OAuth callback or a passkey later, each ending in
   ``complete``). For a password, in this order: the per-address volume throttle (cheap,
   fails closed); a lockout slot on the address and on the identifier, reserved *before* any
   hashing; exactly one password verification whatever the account's state (an account
   whose own budget is spent is checked against no hash and refused as a wrong password, see
   ``crudauth.ratelimit.lockout`` on why that lock is never shown as one). The slots stay
   taken until step 7, so a sign-in that stops halfway still counts as an attempt.
2. **Account state**: the account is active, and its epoch (``token_version``) is read once.
3. **Second factor**: a step that may answer a challenge instead of a credential. The default
   passes through; MFA plugs in here. Nothing has been issued or ended yet.
4. **End the presented credential**: whatever this browser presented ends before a new one is
   issued (no session fixation). Only now, after the proof: junk credentials posted from
   another page of the same site cannot sign the user out.
5. **Issue** through the transport: a session and its cookies, or a token pair.
6. **Epoch re-check**: a credential change (reset, change of password) commits the new epoch,
   then ends the user's sessions. A sign-in that read the row before that commit and issued
   after the sweep would hold a session at the old epoch, which ``load_user=False`` would
   accept: one query after issuing closes the gap (the sweep ran later and ended it, or the
   new epoch shows and the pipeline ends it).
7. **Lockout success and device cookie**: the identifier starts afresh and this browser gets
   a signed device cookie that exempts it from its identifier's lock next time; only for a
   sign-in that stands.
8. **Hooks**: ``on_after_login``, once everything above has succeeded.

Hooks receive the identifier as typed but escaped (``escape_identifier``): printable, one
line, bounded, so an application that logs it cannot be made to write a forged line.

A new way to sign in is a first factor that ends in ``complete``; see docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from crudauth.audit.log import Events
from crudauth.errors import InvalidCredentials, LockedOut
from crudauth.hooks import HookContext
from crudauth.http.request import request_cookie
from crudauth.identity.identifiers import escape_identifier
from crudauth.metrics import instruments
from crudauth.ratelimit.lockout import Attempt, DeviceToken
from crudauth.runtime import AuthRuntime
from crudauth.transports.base import Issued, Transport
from crudauth.transports.shared import CookieWriter

# -- 1. the password first factor ------------------------------------------------------------


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
        refused(runtime, context, identifier, None, Events.LOCKOUT_ENGAGED, "locked_out")
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
        refused(runtime, context, identifier, exc.user, Events.SIGNIN_FAILED, exc.reason)
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


# -- 2 and 3. account state, the second-factor seam ----------------------------------------


@dataclass(frozen=True)
class AccountState:
    """What step 2 read: whose account, and the epoch its credential will be bound to."""

    user_id: Any
    epoch: int


@dataclass(frozen=True)
class Pending:
    """A sign-in whose first factor and account state passed, before anything is issued."""

    request: Request
    transport: Transport
    user: Any
    state: AccountState
    #: The options the credential will be issued with (``remember_me``, ``scopes``).
    options: Mapping[str, Any]
    #: How the first factor was proven: ``"password"``, ``"oauth"``, ...
    first_factor: str = "password"


@dataclass(frozen=True)
class Challenge:
    """The second-factor step's answer when the sign-in needs another proof: ``body`` is
    sent instead of a credential, and the sign-in resumes at step 4 once the proof is in."""

    body: dict[str, Any]
    #: Takes over what the stopped sign-in leaves: the response (to bind the challenge to this
    #: client, with a cookie) and the lockout slots the first factor holds (they stay taken
    #: until the challenge is answered, so a sign-in stopped here still counts).
    hold: Callable[[Response, Attempt | None], Awaitable[None]] | None = None


#: Step 3: ``None`` lets the sign-in through; a ``Challenge`` stops it before anything is
#: issued; raising refuses it.
SecondFactorStep = Callable[[Pending], Awaitable[Challenge | None]]


async def no_second_factor(pending: Pending) -> Challenge | None:
    """The default step 3: no account is asked for a second factor."""
    return None


def account_state(runtime: AuthRuntime, user: Any) -> AccountState:
    """Step 2. The password check has already refused a disabled account, in the same
    constant work as a wrong password; this is the check every first factor passes."""
    row = runtime.repo.auth_row(user)
    if not row.is_active:
        raise InvalidCredentials("inactive", user)
    return AccountState(row.user_id, row.token_version)


class SignInPipeline:
    """Steps 2 to 8 of every sign-in, and the password sign-in that feeds them."""

    def __init__(
        self, runtime: AuthRuntime, second_factor: SecondFactorStep = no_second_factor
    ) -> None:
        self.runtime = runtime
        self.second_factor = second_factor

    async def password(
        self,
        request: Request,
        response: Response,
        db: AsyncSession,
        transport: Transport,
        identifier: str,
        password: str,
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Sign in with a password through ``transport``; return the response body."""
        verified = await check_password(
            self.runtime, request, db, identifier, password, transport=transport.name
        )
        return await self.complete(
            request, response, db, transport, verified.user, options, attempt=verified.attempt
        )

    async def complete(
        self,
        request: Request,
        response: Response,
        db: AsyncSession,
        transport: Transport,
        user: Any,
        options: Mapping[str, Any],
        *,
        attempt: Attempt | None = None,
        first_factor: str = "password",
    ) -> dict[str, Any]:
        """Steps 2 to 8 for a ``user`` whose first factor passed (``attempt``: the lockout
        slots it holds, if it is metered). ``db`` is the session ``user`` was read in."""
        state = account_state(self.runtime, user)
        pending = Pending(request, transport, user, state, options, first_factor)
        challenge = await self.second_factor(pending)
        if challenge is not None:
            if challenge.hold is not None:
                await challenge.hold(response, attempt)
            return challenge.body
        return await self.resume(
            request, response, db, transport, user, options, state=state, attempt=attempt
        )

    async def resume(
        self,
        request: Request,
        response: Response,
        db: AsyncSession,
        transport: Transport,
        user: Any,
        options: Mapping[str, Any],
        *,
        state: AccountState,
        attempt: Attempt | None = None,
    ) -> dict[str, Any]:
        """Steps 4 to 8: a sign-in past its second factor (straight from ``complete``, or
        once a challenge is answered), bound to the epoch ``state`` read at step 2."""
        await transport.end_presented(request)
        issued = await transport.issue_credential(request, response, user, options)
        await self._recheck_epoch(db, state, issued)
        if attempt is not None:
            await finish_sign_in(self.runtime, request, response, attempt)
        signed_in(self.runtime, request, transport.name, state.user_id)
        await self.runtime.hooks.fire(
            "on_after_login",
            self.runtime.repo.to_dict(user),
            request=request,
            context=self.runtime.hook_context(request, transport.name, issued.session_handle),
        )
        return issued.body

    async def _recheck_epoch(self, db: AsyncSession, state: AccountState, issued: Issued) -> None:
        """Step 6: end a credential born at an epoch a credential change has left behind."""
        if issued.withdraw is None:
            return
        # A query of its own, not the identity map: the committed epoch.
        if await self.runtime.repo.current_epoch(db, state.user_id) != state.epoch:
            await issued.withdraw()
            raise InvalidCredentials("credentials changed during sign-in")


# -- 7. lockout success and device cookie --------------------------------------------------


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
    CookieWriter(runtime.cookies).set(response, name, token, max_age=int(runtime.devices.lifetime))


# -- observation -------------------------------------------------------------------------


# What a sign-in tells the audit log and the metrics, in one place for every first factor.
def refused(
    runtime: AuthRuntime,
    context: HookContext,
    identifier: str,
    user: Any,
    event: str,
    reason: str,
) -> None:
    """A refused sign-in (``signin.failed`` or ``lockout.engaged``). The log and the operator
    may tell an account-budget refusal from a wrong password; the client never can."""
    user_id = runtime.repo.user_id(user) if user is not None else None
    runtime.audit.emit(event, context, user_id=user_id, identifier=identifier, reason=reason)
    locked = event == Events.LOCKOUT_ENGAGED
    attributes = {"outcome": "locked_out" if locked else "failed", "reason": reason}
    instruments().signin_attempts.add(1, attributes)
    if locked:
        instruments().lockouts.add(1)


def signed_in(runtime: AuthRuntime, request: Request, transport: str, user_id: Any) -> None:
    """A sign-in that stands (after step 7 of the pipeline)."""
    context = runtime.hook_context(request, transport)
    runtime.audit.emit(Events.SIGNIN_SUCCEEDED, context, user_id=user_id)
    instruments().signin_attempts.add(1, {"outcome": "succeeded", "reason": "ok"})
