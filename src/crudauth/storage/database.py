"""SQL backends (PostgreSQL, SQLite): sessions and single-use values in the app's database.

``DatabaseStore`` owns the tables, the short transactions every store call runs in, and the
purge. Expiry is decided with the clock crudauth is given, and every row also records its
deadline so that ``purge_expired`` can clear the dead ones in bulk. The stores themselves are
in ``database_sessions.py`` and ``database_kv.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from time import perf_counter

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    select,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crudauth.clock import Clock, SystemClock
from crudauth.errors import StoreUnavailable
from crudauth.metrics import instruments
from crudauth.storage.database_kv import DatabaseKeyValueStore
from crudauth.storage.database_sessions import DatabaseSessionStore

__all__ = ["MAX_KEY_LENGTH", "DatabaseKeyValueStore", "DatabaseSessionStore", "DatabaseStore"]

#: The purge's "now", bound per batch.
_NOW = bindparam("now", type_=Float)
_SQL_ATTRIBUTES = {"store": "sql", "kind": "transaction"}
MAX_KEY_LENGTH = 255


class DatabaseStore:
    """The tables behind the SQL backends, and factories for the stores that use them.

    ``sessions`` is an ``async_sessionmaker``; the stores open their own short transactions.
    Call ``await store.create_tables()`` once (or include ``store.metadata`` in migrations).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        metadata: MetaData | None = None,
        session_table: str = "crudauth_sessions",
        store_table: str = "crudauth_store",
        counter_table: str = "crudauth_counters",
        clock: Clock | None = None,
        purge_every: int = 1000,
    ) -> None:
        if purge_every < 0:
            raise ValueError("purge_every must be >= 0 (0 turns automatic purging off)")
        self.sessionmaker = sessions
        self.metadata = metadata if metadata is not None else MetaData()
        self._clock = clock
        self.purge_every = purge_every
        self._writes = 0
        self.sessions_table = Table(
            session_table,
            self.metadata,
            Column("key", String(MAX_KEY_LENGTH), primary_key=True),
            Column("user_id", String(255), nullable=False, index=True),
            Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
            Column("last_activity", Float, nullable=False),
            Column("idle_timeout", Float, nullable=False),
            Column("absolute_expires_at", Float, nullable=False),
            Column("version", Integer, nullable=False, default=0),
            Column("data", Text, nullable=False),
        )
        self.store_table = Table(
            store_table,
            self.metadata,
            Column("key", String(MAX_KEY_LENGTH), primary_key=True),
            Column("value", Text, nullable=False),
            Column("expires_at", Float, nullable=False, index=True),
        )

        self.counter_table = Table(
            counter_table,
            self.metadata,
            Column("key", String(MAX_KEY_LENGTH), primary_key=True),
            Column("count", Integer, nullable=False),
            Column("expires_at", Float, nullable=True, index=True),
        )

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = SystemClock()
        return self._clock

    def adopt_clock(self, clock: Clock) -> None:
        """Use ``clock`` unless one was given at construction (``CRUDAuth`` passes its own)."""
        if self._clock is None:
            self._clock = clock

    async def create_tables(self) -> None:
        async with self.sessionmaker() as db:
            conn = await db.connection()
            await conn.run_sync(self.metadata.create_all)
            await db.commit()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        started = perf_counter()
        try:
            async with self.sessionmaker() as db, db.begin():
                yield db
        except (DBAPIError, OSError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise StoreUnavailable("database store unavailable", store="sql") from exc
        finally:
            instruments().store_duration.record(perf_counter() - started, _SQL_ATTRIBUTES)

    def session_store(self) -> DatabaseSessionStore:
        return DatabaseSessionStore(self)

    def kv_store(self) -> DatabaseKeyValueStore:
        return DatabaseKeyValueStore(self)

    async def wrote(self) -> None:
        """Count a write; every ``purge_every`` writes, clear the dead rows (SQL has no TTL)."""
        self._writes += 1
        if self.purge_every and self._writes % self.purge_every == 0:
            await self.purge_expired()

    async def purge_expired(self) -> int:
        """Delete dead rows; returns how many."""
        now = self.clock.now()
        s, kv = self.sessions_table, self.store_table
        async with self.transaction() as db:
            a = await db.execute(
                delete(s).where(
                    (s.c.last_activity + s.c.idle_timeout <= now) | (s.c.absolute_expires_at <= now)
                )
            )
            b = await db.execute(delete(kv).where(kv.c.expires_at <= now))
            c = self.counter_table
            d = await db.execute(delete(c).where(c.c.expires_at <= now))
        return sum(int(getattr(r, "rowcount", 0) or 0) for r in (a, b, d))

    async def purge_in_batches(
        self, *, batch_size: int = 1000, progress: Callable[[int], None] | None = None
    ) -> int:
        """``purge_expired`` a batch at a time (short transactions on a large table);
        ``progress`` receives the running total after each batch. Returns the total."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        s, kv, c = self.sessions_table, self.store_table, self.counter_table
        total = 0
        for table, dead in (
            (s, (s.c.last_activity + s.c.idle_timeout <= _NOW) | (s.c.absolute_expires_at <= _NOW)),
            (kv, kv.c.expires_at <= _NOW),
            (c, c.c.expires_at <= _NOW),
        ):
            while True:
                now = self.clock.now()
                batch = select(table.c.key).where(dead).limit(batch_size).scalar_subquery()
                async with self.transaction() as db:
                    result = await db.execute(
                        delete(table).where(table.c.key.in_(batch)), {"now": now}
                    )
                deleted = int(getattr(result, "rowcount", 0) or 0)
                total += deleted
                if progress is not None and deleted:
                    progress(total)
                if deleted < batch_size:
                    break
        return total
