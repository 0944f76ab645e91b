"""SQL sessions: one row per session, the hot attributes in columns, the rest as JSON.

Expiry is decided with the clock crudauth is given. The per-user cap ranks by ``seq``, the
database's own order of each session's sign-in and slides, never by a worker's clock; one
user's sign-ins are serialised (an advisory lock on PostgreSQL) so that the cap holds under
concurrency.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import StoreUnavailable
from crudauth.storage.base import SessionRecord, SessionStore

if TYPE_CHECKING:
    from crudauth.storage.database import DatabaseStore

#: The record's attributes kept in their own columns; the others are the ``data`` JSON.
_HOT = ("user_id", "last_activity", "idle_timeout", "absolute_expires_at")


def _deadline_clause(table: Table, now: float) -> Any:
    return and_(
        table.c.last_activity + table.c.idle_timeout > now,
        table.c.absolute_expires_at > now,
    )


def _row_to_record(row: Any) -> SessionRecord:
    data = json.loads(row.data)
    data.update(
        user_id=row.user_id,
        last_activity=row.last_activity,
        idle_timeout=row.idle_timeout,
        absolute_expires_at=row.absolute_expires_at,
    )
    return SessionRecord.from_dict(data)


def _cold(record: SessionRecord) -> str:
    return json.dumps({k: v for k, v in record.to_dict().items() if k not in _HOT})


def _next_seq(table: Table, user_id: str) -> Any:
    """The user's next ``seq``: one past the highest of their rows, read by the database.

    ``seq`` orders a user's sessions by their latest sign-in or slide for the cap. Workers'
    clocks disagree, and one whose clock is behind would rank the session it just created
    below the others and evict it; the database's order is the same for every worker."""
    peer = table.alias("peer")
    return (
        select(func.coalesce(func.max(peer.c.seq), 0) + 1)
        .where(peer.c.user_id == user_id)
        .scalar_subquery()
    )


async def _lock_user(db: AsyncSession, user_id: str) -> None:
    # Serialise one user's logins so that the cap holds under concurrency. SQLite already
    # serialises writers; PostgreSQL gets a transaction-scoped advisory lock.
    if db.get_bind().dialect.name == "postgresql":
        lock_id = zlib.crc32(f"crudauth:{user_id}".encode())
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})


class DatabaseSessionStore(SessionStore):
    """Sessions in a SQL table."""

    kind = "database"

    def __init__(self, owner: DatabaseStore) -> None:
        self.owner = owner
        self.table = owner.sessions_table

    async def create(self, key: str, record: SessionRecord, *, max_per_user: int) -> list[str]:
        t = self.table
        async with self.owner.transaction() as db:
            await _lock_user(db, record.user_id)
            await db.execute(delete(t).where(t.c.key == key))
            await db.execute(
                insert(t).values(
                    key=key,
                    user_id=record.user_id,
                    seq=_next_seq(t, record.user_id),
                    last_activity=record.last_activity,
                    idle_timeout=record.idle_timeout,
                    absolute_expires_at=record.absolute_expires_at,
                    version=0,
                    data=_cold(record),
                )
            )
            if max_per_user <= 0:
                return []
            now = record.last_activity
            rows = (
                await db.execute(
                    select(t.c.key)
                    .where(t.c.user_id == record.user_id, _deadline_clause(t, now))
                    # A slide that commits while this sign-in holds the user's lock can tie
                    # with the new row's seq (it counted without it); the tie keeps the new
                    # session, which is the one this sign-in hands out.
                    .order_by(t.c.seq.desc(), (t.c.key == key).desc())
                    .offset(max_per_user)
                )
            ).all()
            evicted = [r.key for r in rows]
            if evicted:
                await db.execute(delete(t).where(t.c.key.in_(evicted)))
        await self.owner.wrote()
        return evicted

    async def load(self, key: str, *, now: float, slide_after: float) -> SessionRecord | None:
        t = self.table
        async with self.owner.transaction() as db:
            row = (await db.execute(select(t).where(t.c.key == key))).first()
            if row is None:
                return None
            record = _row_to_record(row)
            if record.deadline() <= now:
                await db.execute(delete(t).where(t.c.key == key))
                return None
            if now - record.last_activity >= slide_after:
                await db.execute(
                    update(t)
                    .where(t.c.key == key, t.c.last_activity < now)
                    .values(last_activity=now, seq=_next_seq(t, record.user_id))
                )
                record = replace(record, last_activity=now)
        return record

    async def update(self, key: str, changes: dict[str, Any]) -> bool:
        t = self.table
        for _ in range(20):  # optimistic compare-and-set on ``version``
            async with self.owner.transaction() as db:
                row = (await db.execute(select(t).where(t.c.key == key))).first()
                if row is None:
                    return False
                record = replace(_row_to_record(row), **changes)
                if record.deadline() <= self.owner.clock.now():
                    return False
                result = await db.execute(
                    update(t)
                    .where(t.c.key == key, t.c.version == row.version)
                    .values(
                        version=row.version + 1,
                        last_activity=record.last_activity,
                        idle_timeout=record.idle_timeout,
                        absolute_expires_at=record.absolute_expires_at,
                        data=_cold(record),
                    )
                )
                if getattr(result, "rowcount", 0) == 1:
                    return True
        raise StoreUnavailable("session update kept conflicting", store="sql")

    async def delete(self, key: str) -> bool:
        t = self.table
        async with self.owner.transaction() as db:
            result = await db.execute(delete(t).where(t.c.key == key))
        return bool(getattr(result, "rowcount", 0))

    async def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        t = self.table
        condition = t.c.user_id == user_id
        if keep is not None:
            condition = and_(condition, t.c.key != keep)
        now = self.owner.clock.now()
        async with self.owner.transaction() as db:
            live = (
                await db.execute(select(t.c.key).where(condition, _deadline_clause(t, now)))
            ).all()
            await db.execute(delete(t).where(condition))
        return len(live)

    async def list_for_user(self, user_id: str) -> list[tuple[str, SessionRecord]]:
        t = self.table
        now = self.owner.clock.now()
        async with self.owner.transaction() as db:
            rows = (
                await db.execute(select(t).where(t.c.user_id == user_id, _deadline_clause(t, now)))
            ).all()
        return [(row.key, _row_to_record(row)) for row in rows]
