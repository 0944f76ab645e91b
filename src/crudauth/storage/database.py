"""SQL backends (PostgreSQL, SQLite): sessions and single-use values in the app's database.

Expiry is decided with the clock crudauth is given, and every row also records its deadline so
that ``purge_expired`` can clear the dead ones in bulk. The per-user cap ranks by ``seq``, the
database's own order of each session's sign-in and slides, never by a worker's clock.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from time import perf_counter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crudauth.clock import Clock, SystemClock
from crudauth.errors import StoreUnavailable
from crudauth.metrics import instruments
from crudauth.storage.base import KeyValueStore, SessionRecord, SessionStore

#: The purge's "now", bound per batch.
_NOW = bindparam("now", type_=Float)
_SQL_ATTRIBUTES = {"store": "sql", "kind": "transaction"}
_HOT = ("user_id", "last_activity", "idle_timeout", "absolute_expires_at")
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


def _upsert(db: AsyncSession, table: Table, **values: Any) -> Any:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` for PostgreSQL and SQLite."""
    from sqlalchemy.dialects import postgresql, sqlite

    module: Any = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    statement = module.insert(table).values(**values)
    changed = {name: statement.excluded[name] for name in values if name != "key"}
    return statement.on_conflict_do_update(index_elements=["key"], set_=changed)


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
