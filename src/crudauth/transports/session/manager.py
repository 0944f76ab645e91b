"""``SessionManager``: server-side sessions with a CSRF binding, over a ``SessionStore``.

- A session id is 256 random bits. The store only ever sees HMAC(session-id key, id), so a dump
  of the store yields nothing a browser could present.
- The public handle (for device lists) is derived from the store key under another purpose key:
  it names a session without being usable as one.
- The CSRF token is 256 random bits; the record keeps only its HMAC, so checking it costs no
  extra store read.
- Expiry is checked against the injected clock on every read; the idle window slides at most
  once per ``slide_interval`` so that a busy user does not cost a write per request.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

from crudauth.clock import Clock
from crudauth.errors import CSRFFailure
from crudauth.keys import KeyRing, Purpose, TokenShape
from crudauth.storage.base import SessionRecord, SessionStore, StartedLoad

#: A session id and a CSRF token: ``new_token``'s 43 characters.
TOKEN_SHAPE: Final = TokenShape(min_length=43, max_length=43)
MISSING_CSRF: Final = "Missing CSRF token"
INVALID_CSRF: Final = "Invalid CSRF token"
CROSS_ORIGIN: Final = "Cross-origin request refused"
#: A ``slide_after`` no record reaches (finite: every store, Lua included, compares it).
NEVER_SLIDE: Final = 1e18


def new_token() -> str:
    """256 bits from the CSPRNG, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(32)


def well_formed(token: object) -> TypeGuard[str]:
    """True if ``token`` could be one of ``new_token``'s (checked before any hashing)."""
    return TOKEN_SHAPE.check(token)


@dataclass(frozen=True)
class SessionSettings:
    """Lifetimes, in seconds, and the per-user cap."""

    idle_timeout: float = 30 * 60
    remember_me_idle_timeout: float = 30 * 86400
    absolute_timeout: float = 12 * 3600
    remember_me_absolute_timeout: float = 30 * 86400
    max_sessions_per_user: int = 5

    def slide_interval(self, idle: float) -> float:
        return min(60.0, idle / 10)


@dataclass(frozen=True)
class LiveSession:
    """A validated session: its store key and record."""

    key: str
    record: SessionRecord

    @property
    def handle(self) -> str:
        return self.record.handle


class SessionManager:
    """Creates, validates and revokes sessions."""

    def __init__(
        self, store: SessionStore, keys: KeyRing, clock: Clock, settings: SessionSettings
    ) -> None:
        self.store = store
        self.keys = keys
        self.clock = clock
        self.settings = settings

    # -- naming ----------------------------------------------------------------------------

    def storage_key(self, session_id: str, index: int = 0) -> str:
        return self.keys.digest(Purpose.SESSION_ID, session_id, index)

    def session_handle(self, storage_key: str) -> str:
        return self.keys.digest(Purpose.SESSION_HANDLE, storage_key)[:32]

    def csrf_digest(self, token: str) -> str:
        return self.keys.digest(Purpose.CSRF, token)

    # -- lifecycle -------------------------------------------------------------------------

    async def create_session(
        self,
        user_id: Any,
        *,
        token_version: int | None = None,
        remember_me: bool = False,
        ip_address: str | None = None,
        user_agent: str | None = None,
        metadata: dict[str, Any] | None = None,
        expiration_seconds: float | None = None,
    ) -> tuple[str, str, LiveSession]:
        """Start a session; return ``(session_id, csrf_token, live_session)``."""
        now = self.clock.now()
        s = self.settings
        idle = expiration_seconds or (s.remember_me_idle_timeout if remember_me else s.idle_timeout)
        absolute = s.remember_me_absolute_timeout if remember_me else s.absolute_timeout
        session_id, csrf = new_token(), new_token()
        key = self.storage_key(session_id)
        record = SessionRecord(
            user_id=str(user_id),
            handle=self.session_handle(key),
            csrf_digest=self.csrf_digest(csrf),
            created_at=now,
            last_activity=now,
            idle_timeout=float(idle),
            absolute_expires_at=now + float(absolute),
            token_version=token_version,
            remember_me=remember_me,
            ip_address=ip_address,
            user_agent=(user_agent or "")[:512] or None,
            metadata=dict(metadata or {}),
        )
        await self.store.create(key, record, max_per_user=s.max_sessions_per_user)
        return session_id, csrf, LiveSession(key, record)

    async def validate(
        self, session_id: str | None, current_key: str | None = None, *, slide: bool = True
    ) -> LiveSession | None:
        """The live session for a presented id, sliding its idle window when due (never with
        ``slide=False``). ``current_key`` is ``storage_key(session_id)`` when the caller has
        it already."""
        if not well_formed(session_id):
            return None
        return await self._validate_from(
            session_id, 0, self.clock.now(), current_key, NEVER_SLIDE if not slide else None
        )

    def start_validation(self, key: str) -> tuple[StartedLoad, float] | None:
        """``validate``'s read under the current key (``storage_key(session_id)``), sent
        without waiting for the answer; ``None`` if the store cannot (then ``validate``).
        Finish with ``finish_validation``, or ``discard()`` the started load."""
        now = self.clock.now()
        started = self.store.start_load(key, now=now, slide_after=self._slide_after)
        return None if started is None else (started, now)

    async def finish_validation(
        self, session_id: str, key: str, started: StartedLoad, now: float
    ) -> LiveSession | None:
        """What ``validate`` returns, from a read begun by ``start_validation``."""
        record = await started.record()
        if record is None:
            return await self._validate_from(session_id, 1, now)
        if record.absolute_expires_at > now:  # (``_checked``'s common case, without a coroutine)
            return LiveSession(key, record)
        return await self._checked(key, record, now)

    async def _validate_from(
        self,
        session_id: str,
        first: int,
        now: float,
        current_key: str | None = None,
        slide_after: float | None = None,
    ) -> LiveSession | None:
        if slide_after is None:
            slide_after = self._slide_after
        for index in range(first, self.keys.size):  # fallbacks matter only after a rotation
            if index == 0 and current_key is not None:
                key = current_key
            else:
                key = self.storage_key(session_id, index)
            record = await self.store.load(key, now=now, slide_after=slide_after)
            if record is not None:
                return await self._checked(key, record, now)
        return None

    async def _checked(self, key: str, record: SessionRecord, now: float) -> LiveSession | None:
        if record.absolute_expires_at > now:  # the store checks too; never trust one layer
            return LiveSession(key, record)
        await self.store.delete(key)
        return None

    @property
    def _slide_after(self) -> float:
        # One interval for every record keeps the decision inside the store's atomic step.
        return self.settings.slide_interval(self.settings.idle_timeout)

    def check_csrf(self, session: LiveSession, header_value: str | None) -> None:
        """Raise ``CSRFFailure`` unless ``header_value`` is this session's CSRF token."""
        if not header_value:
            raise CSRFFailure(MISSING_CSRF)
        if not well_formed(header_value):
            raise CSRFFailure(INVALID_CSRF)
        # Every key of the ring, so that rotating SECRET_KEY does not break live sessions.
        if not self.keys.matches(Purpose.CSRF, header_value, session.record.csrf_digest):
            raise CSRFFailure(INVALID_CSRF)

    async def rotate_csrf(self, session: LiveSession) -> str | None:
        """Issue a new CSRF token for ``session``; ``None`` if it no longer exists."""
        token = new_token()
        if not await self.store.update(session.key, {"csrf_digest": self.csrf_digest(token)}):
            return None
        return token

    async def revoke_key(self, key: str) -> bool:
        return await self.store.delete(key)

    async def revoke(self, session_id: str) -> bool:
        """End the session a client presents (if any)."""
        if not well_formed(session_id):
            return False
        deleted = [
            await self.store.delete(k) for k in self.keys.digests(Purpose.SESSION_ID, session_id)
        ]
        return any(deleted)

    async def revoke_all(self, user_id: Any, *, keep_key: str | None = None) -> int:
        return await self.store.delete_for_user(str(user_id), keep=keep_key)

    async def list_for_user(self, user_id: Any) -> list[tuple[str, SessionRecord]]:
        return await self.store.list_for_user(str(user_id))

    async def revoke_by_handle(self, user_id: Any, handle: str) -> bool:
        for key, record in await self.store.list_for_user(str(user_id)):
            if hmac.compare_digest(record.handle, handle):
                return await self.store.delete(key)
        return False
