"""The sign-in pipeline: every way of proving who you are ends in the same steps, in this order.

``SignInPipeline.complete`` reads top to bottom as the security argument of a sign-in:

1. **First factor**, before ``complete``: a proof of who this is, verified under its own
   throttle and lockout (``password.check_password``; an OAuth callback or a passkey later).
   A password's lockout slots stay taken until step 7, so a sign-in that stops halfway keeps
   counting as an attempt.
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
7. **Lockout success and device cookie**: the identifier starts afresh and this browser is
   remembered, only for a sign-in that stands.
8. **Hooks**: ``on_after_login``, once everything above has succeeded.

A new way to sign in is a first factor that ends in ``complete``; see docs/architecture.md.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from crudauth.errors import InvalidCredentials
from crudauth.ratelimit.lockout import Attempt
from crudauth.runtime import AuthRuntime
from crudauth.signin.password import check_password, finish_sign_in
from crudauth.transports.base import Issued, Transport


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


@dataclass(frozen=True)
class Challenge:
    """The second-factor step's answer when the sign-in needs another proof: ``body`` is
    sent instead of a credential, and the sign-in resumes at step 4 once the proof is in."""

    body: dict[str, Any]


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
    ) -> dict[str, Any]:
        """Steps 2 to 8 for a ``user`` whose first factor passed (``attempt``: the lockout
        slots it holds, if it is metered). ``db`` is the session ``user`` was read in."""
        state = account_state(self.runtime, user)
        challenge = await self.second_factor(Pending(request, transport, user, state, options))
        if challenge is not None:
            return challenge.body
        await transport.end_presented(request)
        issued = await transport.issue_credential(request, response, user, options)
        await self._recheck_epoch(db, state, issued)
        if attempt is not None:
            await finish_sign_in(self.runtime, request, response, attempt)
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
