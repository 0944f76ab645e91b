"""``SudoManager``: grant, check and drop sudo mode for one session.

A grant is a timestamp in the session's own record (``metadata["sudo_elevated_until"]``), so
- it is bound to the session that re-authenticated, never to the user: another device of the
  same user stays outside sudo (SECURITY S14);
- it ends with the session: logout, revocation, expiry or an epoch bump drop it too;
- every worker sees it, because it lives in the shared session store.

Failures are counted per user before the password is checked, with keys of their own
(``sudo:fail:<user>``, ``sudo:lock:<user>``), in addition to the sign-in lockout that every
password check goes through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from crudauth.audit.log import Events
from crudauth.errors import (
    AccessDenied,
    ConfigurationError,
    IncorrectPassword,
    InvalidInput,
    InvalidSession,
    SudoLocked,
)
from crudauth.principal import Principal
from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.runtime import AuthRuntime
from crudauth.signin.confirm import confirm_password
from crudauth.sudo.config import SudoConfig
from crudauth.transports.session.manager import LiveSession, SessionManager, new_token

STAMP: Final = "sudo_elevated_until"
SESSION_ONLY: Final = "Sudo requires a session-backed login."
WRONG_PASSWORD: Final = "Incorrect password."  # noqa: S105 - an error text, not a secret
WRONG_CODE: Final = "Invalid code."

CodeVerifier = Callable[[AsyncSession, Any, str], Awaitable[bool]]
"""``(db, user, code) -> bool``: checks a second-factor code (provided by the MFA feature)."""


class SudoManager:
    """Elevates a session after a re-authentication; answers whether a session is elevated."""

    def __init__(
        self,
        runtime: AuthRuntime,
        sessions: SessionManager,
        config: SudoConfig,
        limiter: RateLimiterBackend,
        *,
        transport: str = "session",
        code_verifier: CodeVerifier | None = None,
    ) -> None:
        self.runtime = runtime
        self.sessions = sessions
        self.config = config
        self.limiter = limiter
        self.transport = transport
        self.code_verifier = code_verifier

    # -- reading ---------------------------------------------------------------------------

    async def _live(self, principal: Principal) -> LiveSession:
        session_id = principal.metadata.get("session_id")
        if principal.transport != self.transport or not isinstance(session_id, str):
            raise AccessDenied(SESSION_ONLY)
        # Read the record afresh: a grant given or dropped a moment ago by another worker counts.
        live = await self.sessions.validate(session_id)
        if live is None or live.key != principal.metadata.get("session_key"):
            raise InvalidSession("session ended")
        return live

    async def elevated_until(self, principal: Principal) -> datetime | None:
        """When this principal's grant ends, or ``None`` if it holds none (or is not a session)."""
        try:
            live = await self._live(principal)
        except (AccessDenied, InvalidSession):
            return None
        until = live.record.metadata.get(STAMP)
        if not isinstance(until, (int, float)) or until <= self.runtime.clock.now():
            return None
        return datetime.fromtimestamp(until, tz=timezone.utc)

    async def is_elevated(self, principal: Principal) -> bool:
        return await self.elevated_until(principal) is not None

    # -- granting --------------------------------------------------------------------------

    async def elevate(
        self,
        principal: Principal,
        password: str | None = None,
        *,
        code: str | None = None,
        db: AsyncSession | None = None,
        request: Request | None = None,
    ) -> datetime:
        """Re-authenticate and elevate *this* session; return when the grant ends.

        A password goes through the sign-in lockout, so ``db`` and ``request`` are needed with
        it. ``code`` needs a code verifier (MFA). Raises ``AccessDenied`` for a principal that
        is not a session, ``SudoLocked`` when locked, ``IncorrectPassword`` when wrong.
        """
        if (password is None) == (code is None):
            raise InvalidInput("Give either a password or a code.")
        if code is not None and self.code_verifier is None:
            raise InvalidInput("Two-factor sign-in is not enabled: confirm with the password.")
        if db is None:
            raise ConfigurationError("SudoManager.elevate needs db=")
        live = await self._live(principal)
        user_id = str(principal.user_id)
        if self.config.rate_limit is not None:
            await self.runtime.throttles.hit("sudo", f"user:{user_id}", self.config.rate_limit)
        attempt = await self._count_attempt(user_id)
        try:
            await self._verify(principal, password, code, db, request)
        except IncorrectPassword:
            if attempt >= self.config.max_attempts:
                await self._lock(user_id)  # raises SudoLocked
            raise
        await self.limiter.reset(self._fail_key(user_id))
        now = self.runtime.clock.now()
        until = now + float(self.config.window_seconds)
        metadata = {**live.record.metadata, STAMP: until}
        if not await self.sessions.store.update(live.key, {"metadata": metadata}):
            raise InvalidSession("session ended")
        context = self.runtime.hook_context(request, self.transport, live.handle)
        self.runtime.audit.emit(
            Events.SUDO_GRANTED,
            context,
            user_id=principal.user_id,
            actor="user",
            details={"method": "password" if password is not None else "code"},
        )
        user = principal.user
        if user is not None:
            await self.runtime.hooks.fire(
                "on_after_sudo", self.runtime.repo.to_dict(user), request=request, context=context
            )
        return datetime.fromtimestamp(until, tz=timezone.utc)

    async def _verify(
        self,
        principal: Principal,
        password: str | None,
        code: str | None,
        db: AsyncSession,
        request: Request | None,
    ) -> None:
        user = principal.user
        if user is None:
            raise InvalidSession("no user")
        if password is not None:
            if request is None:
                raise ConfigurationError("SudoManager.elevate(password=...) needs request=")
            await confirm_password(
                self.runtime,
                request,
                db,
                user,
                password,
                transport=self.transport,
                wrong=WRONG_PASSWORD,
            )
            return
        assert code is not None and self.code_verifier is not None  # checked by elevate
        if not await self.code_verifier(db, user, code):
            raise IncorrectPassword(WRONG_CODE)

    # -- failures --------------------------------------------------------------------------

    def _fail_key(self, user_id: str) -> str:
        return f"sudo:fail:{user_id}"

    def _lock_key(self, user_id: str) -> str:
        return f"sudo:lock:{user_id}"

    async def _count_attempt(self, user_id: str) -> int:
        """Count this attempt *before* checking it, so parallel guesses cannot overshoot."""
        locked_for = await self.limiter.get_ttl(self._lock_key(user_id))
        if locked_for > 0:
            await self.drop_all(user_id)
            raise SudoLocked(locked_for)
        attempt = await self.limiter.increment(
            self._fail_key(user_id), 1, float(self.config.failure_window_seconds)
        )
        if attempt > self.config.max_attempts:
            await self._lock(user_id)
        return attempt

    async def _lock(self, user_id: str) -> None:
        seconds = float(self.config.lockout_seconds)
        await self.limiter.increment(self._lock_key(user_id), 1, seconds)
        await self.limiter.reset(self._fail_key(user_id))
        await self.drop_all(user_id)
        raise SudoLocked(seconds)

    # -- dropping --------------------------------------------------------------------------

    async def drop(self, principal: Principal) -> None:
        """End this session's grant, if it has one."""
        live = await self._live(principal)
        await self._unstamp(live.key, live.record.metadata)

    async def drop_all(self, user_id: Any) -> None:
        """End every grant the user holds, on every device."""
        for key, record in await self.sessions.list_for_user(user_id):
            await self._unstamp(key, record.metadata)

    async def _unstamp(self, key: str, metadata: dict[str, Any]) -> None:
        if STAMP in metadata:
            rest = {k: v for k, v in metadata.items() if k != STAMP}
            await self.sessions.store.update(key, {"metadata": rest})

    # -- a new session id after re-authentication -----------------------------------------

    async def renew(self, principal: Principal) -> tuple[str, str, LiveSession]:
        """Move this session (grant included) to a new id and CSRF token (ASVS 7.2.4).

        A copy of the old cookie, if one was stolen, is worth nothing afterwards. The old record
        is deleted first so that the per-user cap never evicts another device.
        """
        live = await self._live(principal)
        session_id, csrf = new_token(), new_token()
        key = self.sessions.storage_key(session_id)
        record = replace(
            live.record,
            handle=self.sessions.session_handle(key),
            csrf_digest=self.sessions.csrf_digest(csrf),
            metadata=dict(live.record.metadata),
        )
        if not await self.sessions.store.delete(live.key):
            raise InvalidSession("session ended")
        await self.sessions.store.create(
            key, record, max_per_user=self.sessions.settings.max_sessions_per_user
        )
        return session_id, csrf, LiveSession(key, record)
