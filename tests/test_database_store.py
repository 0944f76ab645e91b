"""SQL-only behaviour: SQL has no TTLs, so dead rows are purged every N writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from crudauth.clock import FrozenClock
from crudauth.storage import DatabaseStore
from tests.conftest import PG_SCHEMA, POSTGRES_URL


async def test_dead_rows_are_purged_every_n_writes(tmp_path: Path):
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'purge.db'}")
    clock = FrozenClock()
    store = DatabaseStore(async_sessionmaker(engine), clock=clock, purge_every=3)
    await store.create_tables()
    values = store.kv_store()

    async def rows() -> int:
        async with store.sessionmaker() as db:
            return int(
                (await db.execute(select(func.count()).select_from(store.store_table))).scalar_one()
            )

    await values.set("a", "1", 10)
    await values.set("b", "2", 10)
    clock.advance(11)  # both are dead now, but still on disk
    assert await rows() == 2
    await values.set("c", "3", 10)  # the third write triggers the purge
    assert await rows() == 1
    assert await values.get("c") == "3"
    await engine.dispose()


def test_a_negative_purge_interval_is_refused():
    engine = create_async_engine("sqlite+aiosqlite://")
    with pytest.raises(ValueError):
        DatabaseStore(async_sessionmaker(engine), purge_every=-1)


async def test_expired_rows_are_purged_every_cleanup_interval(tmp_path: Path):
    import asyncio

    from crudauth import CRUDAuth, SessionTransport
    from tests.conftest import SECRET, User

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'interval.db'}")
    clock = FrozenClock()
    store = DatabaseStore(async_sessionmaker(engine), clock=clock, purge_every=0)
    await store.create_tables()
    values = store.kv_store()

    async def rows() -> int:
        async with store.sessionmaker() as db:
            return int(
                (await db.execute(select(func.count()).select_from(store.store_table))).scalar_one()
            )

    async def rows_after(seconds: float) -> int:
        """The row count once it reaches 0, or after ``seconds``."""
        for _ in range(int(seconds / 0.02)):
            if await rows() == 0:
                break
            await asyncio.sleep(0.02)
        return await rows()

    auth = CRUDAuth(
        session=lambda: None,
        user_model=User,
        SECRET_KEY=SECRET,
        database_store=store,
        transports=[SessionTransport(cleanup_interval_minutes=0.001)],  # every 60 ms
    )
    try:
        await auth.initialize()
        try:
            await values.set("dead", "1", 10)
            clock.advance(11)  # dead now; purge_every=0: only the interval can remove it
            assert await rows_after(5) == 0
        finally:
            await auth.shutdown()
        await values.set("dead-after-shutdown", "1", 10)
        clock.advance(11)
        assert await rows_after(0.3) == 1  # the purge stopped with the app
    finally:
        await engine.dispose()


async def test_the_cap_s_ranking_adds_no_statement_to_a_slide_or_a_sign_in(tmp_path: Path):
    from sqlalchemy import event

    from crudauth.testing import make_record, new_key

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'rank.db'}")
    clock = FrozenClock()
    store = DatabaseStore(async_sessionmaker(engine), clock=clock)
    await store.create_tables()
    sessions = store.session_store()
    sent: list[str] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: sent.append(statement.split()[0]),
    )
    key = new_key()
    await sessions.create(key, make_record(clock), max_per_user=5)
    # The database numbers the sign-in inside its INSERT: no separate read of the sequence.
    assert sent == ["DELETE", "INSERT", "SELECT"]
    sent.clear()
    assert await sessions.load(key, now=clock.now() + 61, slide_after=60) is not None
    assert sent == ["SELECT", "UPDATE"]  # and the slide inside its UPDATE
    await engine.dispose()


@pytest.mark.postgres
async def test_concurrent_sets_of_one_key_never_fail_on_postgres():
    engine = create_async_engine(
        POSTGRES_URL, connect_args={"server_settings": {"search_path": PG_SCHEMA}}
    )
    store = DatabaseStore(
        async_sessionmaker(engine),
        store_table="concurrent_set_store",
        session_table="concurrent_set_sessions",
        counter_table="concurrent_set_counters",
    )
    await store.create_tables()
    values = store.kv_store()
    await asyncio.gather(*(values.set("reset:alice", str(i), 60) for i in range(30)))
    assert await values.get("reset:alice") is not None
    async with engine.begin() as conn:
        await conn.run_sync(store.metadata.drop_all)
    await engine.dispose()
