"""The identities table: which provider account (provider, subject) signs in to which user.

Several providers per user, one identity per provider per user, one user per identity. The
table lives beside the application's user table; ``CRUDAuth.initialize`` creates it if it is
missing, and ``identities_metadata`` lets a migration tool own it instead. The reference's
``{provider}_id`` columns on the user model keep working (read and written as well).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    inspect,
    select,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

IDENTITIES_TABLE: Final = "crudauth_oauth_identities"

identities_metadata = MetaData()
"""The ``MetaData`` holding ``identities_table``: include it in your migrations, or let
``await auth.initialize()`` create the table."""

identities_table = Table(
    IDENTITIES_TABLE,
    identities_metadata,
    Column("id", String(32), primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("user_id", String(64), nullable=False, index=True),
    Column("email", String(320), nullable=True),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    #: The provider's tokens, encrypted, only with ``OAuthCredentials(store_tokens=True)``.
    Column("tokens", Text, nullable=True),
    UniqueConstraint("provider", "subject", name="uq_crudauth_oauth_identity"),
    UniqueConstraint("user_id", "provider", name="uq_crudauth_oauth_user_provider"),
)
"""One row per provider identity linked to a user: ``(provider, subject)`` is unique, and a
user has at most one identity per provider."""


@dataclass(frozen=True)
class Identity:
    id: str
    provider: str
    subject: str
    user_id: str
    email: str | None
    linked_at: datetime

    def public(self) -> dict[str, Any]:
        """What ``GET /oauth/identities`` shows (never the tokens)."""
        return {
            "id": self.id,
            "provider": self.provider,
            "email": self.email,
            "linked_at": self.linked_at.isoformat(),
        }


def _identity(row: Any) -> Identity:
    linked = row.linked_at
    if linked.tzinfo is None:
        linked = linked.replace(tzinfo=timezone.utc)
    return Identity(row.id, row.provider, row.subject, row.user_id, row.email, linked)


class IdentityRepository:
    """Reads and writes the identities table in the application's database session."""

    table = identities_table

    async def create_table(self, db: AsyncSession) -> None:
        """Create the table if it is missing. Several workers starting at once may race to
        create it: the loser's error is fine as long as the table exists afterwards."""
        try:
            connection = await db.connection()
            await connection.run_sync(identities_metadata.create_all, checkfirst=True)
            await db.commit()
        except SQLAlchemyError:
            await db.rollback()
            connection = await db.connection()
            exists = await connection.run_sync(
                lambda sync: inspect(sync).has_table(IDENTITIES_TABLE)
            )
            await db.rollback()
            if not exists:
                raise

    async def find(self, db: AsyncSession, provider: str, subject: str) -> Identity | None:
        t = self.table
        found = await db.execute(
            select(t).where(t.c.provider == provider, t.c.subject == subject).limit(1)
        )
        row = found.first()
        return _identity(row) if row is not None else None

    async def for_user(self, db: AsyncSession, user_id: Any) -> list[Identity]:
        t = self.table
        found = await db.execute(
            select(t).where(t.c.user_id == str(user_id)).order_by(t.c.linked_at, t.c.id)
        )
        return [_identity(row) for row in found]

    async def add(
        self,
        db: AsyncSession,
        *,
        provider: str,
        subject: str,
        user_id: Any,
        email: str | None,
        tokens: str | None = None,
    ) -> bool:
        """Link and commit; False when the identity or the user's provider slot is taken."""
        values = {
            "id": secrets.token_hex(12),
            "provider": provider,
            "subject": subject,
            "user_id": str(user_id),
            "email": email,
            "linked_at": datetime.now(timezone.utc),
            "tokens": tokens,
        }
        try:
            await db.execute(self.table.insert().values(values))
            await db.commit()
        except IntegrityError:
            await db.rollback()
            return False
        return True

    async def store_tokens(
        self, db: AsyncSession, provider: str, subject: str, tokens: str
    ) -> None:
        t = self.table
        await db.execute(
            t.update().where(t.c.provider == provider, t.c.subject == subject).values(tokens=tokens)
        )
        await db.commit()

    async def tokens_of(self, db: AsyncSession, provider: str, subject: str) -> str | None:
        t = self.table
        found = await db.execute(
            select(t.c.tokens).where(t.c.provider == provider, t.c.subject == subject)
        )
        row = found.first()
        return None if row is None else row[0]

    async def remove(self, db: AsyncSession, identity_id: str, user_id: Any) -> bool:
        t = self.table
        result: Any = await db.execute(
            delete(t).where(t.c.id == identity_id, t.c.user_id == str(user_id))
        )
        await db.commit()
        return bool(result.rowcount)
