"""What an operator does to accounts, sessions and keys, without HTTP: the ``crudauth``
command calls these, and so can an admin screen or a worker.

Each change goes through the account service (``CRUDAuth.accounts``), so it commits first,
ends what must end, and emits its audit event with ``actor="admin"``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.auth import CRUDAuth
from crudauth.errors import DuplicateValue, InvalidInput, NotFound
from crudauth.identity.identifiers import (
    MAX_EMAIL_LENGTH,
    MAX_USERNAME_LENGTH,
    canonical_email,
    clean_identifier,
)
from crudauth.keys import Purpose
from crudauth.policy import PasswordContext
from crudauth.storage.base import SessionRecord
from crudauth.transports.session.transport import SessionTransport

Progress = Callable[[int], None]


def generate_secret() -> str:
    """A new ``SECRET_KEY``: 48 random bytes, URL-safe (64 characters)."""
    return secrets.token_urlsafe(48)


@dataclass(frozen=True)
class SessionLine:
    """One live session as ``sessions list`` shows it (never its id or its key)."""

    handle: str
    transport: str
    created_at: datetime
    last_activity: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class KeyStatus:
    """What the key ring holds and when a fallback stops mattering."""

    keys: int
    kids: list[str]
    #: The longest a credential signed by a retired key can still be presented.
    longest_lifetime: timedelta
    safe_to_drop_at: datetime | None


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


class Operations:
    """Operator actions over one ``CRUDAuth``."""

    def __init__(self, auth: CRUDAuth) -> None:
        self.auth = auth
        self.repo = auth.repo

    # -- users -------------------------------------------------------------------------------

    async def find_user(self, db: AsyncSession, user: str) -> Any:
        """The account named by a login identifier (username, email) or, failing that, an id."""
        found = await self.repo.find_by_login(db, user)
        if found is None:
            try:
                found = await self.repo.get(db, user)
            except (ValueError, TypeError):
                found = None
        if found is None:
            raise NotFound(f"no account {user!r}")
        return found

    async def create_user(
        self,
        db: AsyncSession,
        *,
        password: str,
        username: str | None = None,
        email: str | None = None,
        superuser: bool = False,
    ) -> Any:
        """Create an active account under the password policy (``PasswordRejected``)."""
        values: dict[str, Any] = dict(self.auth.new_user_defaults)
        if username:
            limit = min(
                self.repo.max_length("username") or MAX_USERNAME_LENGTH, MAX_USERNAME_LENGTH
            )
            values["username"] = clean_identifier(username, "username", limit)
        if email:
            limit = min(self.repo.max_length("email") or MAX_EMAIL_LENGTH, MAX_EMAIL_LENGTH)
            values["email"] = canonical_email(clean_identifier(email, "email", limit))
        for field in ("username", "email"):
            if field in values and await self.repo.find_by(db, field, values[field]) is not None:
                raise DuplicateValue(field, f"an account with this {field} exists")
        context = PasswordContext(source="register", username=username, email=email)
        await self.auth.password_policy.check(password, context, "password")
        values["hashed_password"] = await self.auth.runtime.hasher.hash_async(password)
        values["is_active"] = True
        if superuser:
            values["is_superuser"] = True
        try:
            return await self.repo.create(db, values)
        except IntegrityError as exc:
            # Never the statement or its parameters: they hold the new password's hash.
            await db.rollback()
            raise InvalidInput(
                "the account could not be created: a value is taken or a required column "
                f"has none ({type(exc.orig).__name__})"
            ) from None

    async def set_password(self, db: AsyncSession, user: Any, password: str) -> None:
        """Replace (or give) the password on the operator's authority; every session ends."""
        accounts = self.auth.accounts
        if accounts.has_usable_password(user):
            await accounts.change_password(db, user, password)
        else:
            await accounts.set_password(db, user, password)

    async def deactivate(self, db: AsyncSession, user: Any) -> int:
        """Refuse every sign-in of ``user`` and end its credentials (returns how many ended)."""
        await self.repo.update(db, user, {"is_active": False})
        return await self.revoke(db, user, reason="deactivated")

    async def revoke(self, db: AsyncSession, user: Any, *, reason: str = "revoke_user") -> int:
        """End every session, refresh family and bearer token of ``user``: the epoch bump
        ends the tokens, then every transport drops what it keeps."""
        await self.repo.bump_token_version(db, user)
        return await self.auth.accounts.revoke_user(self.repo.user_id(user), reason=reason)

    async def unlock(self, db: AsyncSession, identifier: str) -> bool:
        """Clear the sign-in lock of ``identifier`` and, when it names an account, of that
        account and all its identifiers. True when an account was found."""
        user = await self.repo.find_by_login(db, identifier)
        if user is None:
            await self.auth.runtime.lockout.clear(identifier)
            return False
        await self.auth.accounts.unlock(user, identifiers=[identifier])
        return True

    # -- sessions ----------------------------------------------------------------------------

    async def list_sessions(self, user: Any) -> list[SessionLine]:
        """The live sessions of ``user`` on every session transport, newest activity first."""
        lines = []
        user_id = self.repo.user_id(user)
        for transport in self.auth.transports:
            if transport.keeps_sessions:
                manager = cast("SessionTransport", transport).manager
                for _, record in await manager.list_for_user(user_id):
                    lines.append(self._line(transport.name, record))
        return sorted(lines, key=lambda line: line.last_activity, reverse=True)

    @staticmethod
    def _line(transport: str, record: SessionRecord) -> SessionLine:
        expires = min(record.absolute_expires_at, record.last_activity + record.idle_timeout)
        return SessionLine(
            handle=record.handle,
            transport=transport,
            created_at=_at(record.created_at),
            last_activity=_at(record.last_activity),
            expires_at=_at(expires),
            ip_address=record.ip_address,
            user_agent=record.user_agent,
        )

    async def purge(self, *, batch_size: int = 1000, progress: Progress | None = None) -> int:
        """Delete the SQL store's expired rows in batches; ``progress`` gets the running total.
        Raises ``NotFound`` without a SQL store (Redis expires keys by itself)."""
        store = self.auth.runtime.database_store
        if store is None:
            raise NotFound("no SQL store is configured (database_store=); Redis expires by itself")
        return await store.purge_in_batches(batch_size=batch_size, progress=progress)

    # -- keys --------------------------------------------------------------------------------

    def key_status(self, rotated_at: datetime | None = None) -> KeyStatus:
        """The key ring, and when fallbacks can go: once every credential a retired key could
        have signed has expired (the longest session, refresh token or recovery link)."""
        ring = self.auth.runtime.keys
        lifetimes = [0.0]
        for transport in self.auth.transports:
            settings = getattr(transport, "settings", None)
            if settings is not None:
                lifetimes += [settings.absolute_timeout, settings.remember_me_absolute_timeout]
            lifetimes.append(float(getattr(transport, "refresh_ttl", 0.0)))
        emails = self.auth.emails
        if emails is not None:
            lifetimes += [emails.verify_ttl, emails.reset_ttl, emails.change_ttl]
        longest = timedelta(seconds=max(lifetimes))
        return KeyStatus(
            keys=ring.size,
            kids=[ring.kid(Purpose.ACCESS_TOKEN, i) for i in range(ring.size)],
            longest_lifetime=longest,
            safe_to_drop_at=rotated_at + longest if rotated_at is not None else None,
        )
