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
