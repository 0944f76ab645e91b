"""SQL single-use values: one row per key, with its deadline; consume is one
``DELETE ... RETURNING``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.storage.base import KeyValueStore

if TYPE_CHECKING:
    from crudauth.storage.database import DatabaseStore


def _upsert(db: AsyncSession, table: Table, **values: Any) -> Any:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` for PostgreSQL and SQLite."""
    from sqlalchemy.dialects import postgresql, sqlite

    module: Any = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    statement = module.insert(table).values(**values)
    changed = {name: statement.excluded[name] for name in values if name != "key"}
    return statement.on_conflict_do_update(index_elements=["key"], set_=changed)


class DatabaseKeyValueStore(KeyValueStore):
    """Single-use values in a SQL table; consume is one ``DELETE ... RETURNING``."""

    kind = "database"

    def __init__(self, owner: DatabaseStore) -> None:
        self.owner = owner
        self.table = owner.store_table

    async def set(self, key: str, value: str, ttl: float) -> None:
        t = self.table
        expires = self.owner.clock.now() + ttl
        async with self.owner.transaction() as db:
            # One upsert: a DELETE then INSERT pair races under READ COMMITTED.
            await db.execute(_upsert(db, t, key=key, value=value, expires_at=expires))
        await self.owner.wrote()

    async def get(self, key: str) -> str | None:
        t = self.table
        now = self.owner.clock.now()
        async with self.owner.transaction() as db:
            row = (
                await db.execute(select(t.c.value).where(t.c.key == key, t.c.expires_at > now))
            ).first()
        return None if row is None else str(row.value)

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        t = self.table
        now = self.owner.clock.now()
        try:
            async with self.owner.transaction() as db:
                await db.execute(delete(t).where(t.c.key == key, t.c.expires_at <= now))
                await db.execute(insert(t).values(key=key, value=value, expires_at=now + ttl))
        except IntegrityError:
            return False  # a live row exists: someone else stored it first
        await self.owner.wrote()
        return True

    async def get_and_delete(self, key: str) -> str | None:
        t = self.table
        now = self.owner.clock.now()
        async with self.owner.transaction() as db:
            row = (
                await db.execute(
                    delete(t).where(t.c.key == key).returning(t.c.value, t.c.expires_at)
                )
            ).first()
        if row is None or row.expires_at <= now:
            return None
        return str(row.value)

    async def compare_and_set(self, key: str, expected: str, value: str, ttl: float) -> bool:
        t = self.table
        now = self.owner.clock.now()
        async with self.owner.transaction() as db:
            result = await db.execute(
                update(t)
                .where(t.c.key == key, t.c.value == expected, t.c.expires_at > now)
                .values(value=value, expires_at=now + ttl)
            )
        return getattr(result, "rowcount", 0) == 1

    async def delete(self, key: str) -> bool:
        t = self.table
        now = self.owner.clock.now()
        async with self.owner.transaction() as db:
            row = (
                await db.execute(delete(t).where(t.c.key == key).returning(t.c.expires_at))
            ).first()
        return row is not None and row.expires_at > now
