"""Every store backend passes the same behavioural suite: memory, Redis, Redis Cluster, SQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from crudauth.clock import FrozenClock
from crudauth.ratelimit import DatabaseRateLimiterBackend, MemoryRateLimiterBackend
from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.redis import RedisBackend
from crudauth.storage import (
    DatabaseStore,
    KeyValueStore,
    MemoryKeyValueStore,
    MemorySessionStore,
    SessionStore,
)
from crudauth.storage.redis import RedisKeyValueStore, RedisSessionStore
from crudauth.testing import (
    Advance,
    KeyValueStoreConformance,
    RateLimiterConformance,
    SessionStoreConformance,
)
from tests import redis_cluster
from tests.conftest import PG_SCHEMA, POSTGRES_URL, REDIS_TEST_URL

BACKENDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def cluster() -> Iterator[None]:
    procs, workdir = redis_cluster.start()
    try:
        yield
    finally:
        redis_cluster.stop(procs, workdir)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "cluster":
        request.getfixturevalue("cluster")
    return str(request.param)


@pytest.fixture
def clock() -> FrozenClock:
    # Near real time, so that Redis's own TTLs and the frozen clock agree.
    return FrozenClock(time.time())


@pytest.fixture
def advance(backend: str, clock: FrozenClock) -> Advance:
    async def move(seconds: float) -> None:
        clock.advance(seconds)
        if backend in ("redis", "cluster"):
            await asyncio.sleep(seconds)  # Redis expires keys by its own clock

    return move


@pytest.fixture
async def parts(
    backend: str, clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[tuple[SessionStore, KeyValueStore]]:
    namespace = f"crudauth-test:{uuid.uuid4().hex}:"
    if backend == "memory":
        yield MemorySessionStore(clock), MemoryKeyValueStore(clock), MemoryRateLimiterBackend(clock)
        return
    if backend in ("redis", "cluster"):
        client = (
            Redis.from_url(REDIS_TEST_URL)
            if backend == "redis"
            else RedisCluster(host="127.0.0.1", port=redis_cluster.PORTS[0])
        )
        sessions = RedisSessionStore(client, namespace=namespace)
        values = RedisKeyValueStore(client, namespace=namespace)
        await sessions.initialize()
        limiter = RedisBackend(client, prefix=namespace + "rl:")
        yield sessions, values, limiter
        await client.aclose()
        return
    # A file, not ":memory:": an in-memory SQLite database is one shared connection, which
    # cannot hold the concurrent transactions the suite runs.
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}" if backend == "sqlite" else POSTGRES_URL
    kwargs = {}
    if backend == "postgres":
        kwargs["connect_args"] = {"server_settings": {"search_path": PG_SCHEMA}}
    engine = create_async_engine(url, **kwargs)
    suffix = uuid.uuid4().hex[:8]
    store = DatabaseStore(
        async_sessionmaker(engine, expire_on_commit=False),
        session_table=f"sessions_{suffix}",
        store_table=f"store_{suffix}",
        counter_table=f"counters_{suffix}",
        clock=clock,
    )
    await store.create_tables()
    yield store.session_store(), store.kv_store(), DatabaseRateLimiterBackend(store, "t:")
    async with engine.begin() as conn:
        await conn.run_sync(store.metadata.drop_all)
    await engine.dispose()


Parts = tuple[SessionStore, KeyValueStore, RateLimiterBackend]


class TestSessionStores(SessionStoreConformance):
    @pytest.fixture
    def store(self, parts: Parts) -> SessionStore:
        return parts[0]


class TestKeyValueStores(KeyValueStoreConformance):
    @pytest.fixture
    def store(self, parts: Parts) -> KeyValueStore:
        return parts[1]


class TestRateLimiters(RateLimiterConformance):
    @pytest.fixture
    def limiter(self, parts: Parts) -> RateLimiterBackend:
        return parts[2]
