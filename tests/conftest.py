"""Shared fixtures: a tiny app over SQLite (or PostgreSQL) built with the public API."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import String, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crudauth import AuthUserMixin, CookieConfig, CRUDAuth, FrozenClock, PasswordHasher, Principal

# Fixtures for the OAuth tests: the OIDC provider, the GitHub stub and the rogue provider.
pytest_plugins = ["tests.oidc_support"]

SECRET = "test-secret-key-that-is-long-enough-0123456789"
POSTGRES_URL = os.environ.get(
    "CRUDAUTH_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "users"

    bio: Mapped[str | None] = mapped_column(String(200), nullable=True)


class CountingHasher(PasswordHasher):
    """Counts every verification and hash, for timing-equalisation tests."""

    def __init__(self) -> None:
        # The lowest argon2 cost keeps the suite fast; production parameters are tested apart.
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verifications = 0
        self.hashes = 0

    def verify(self, password: str, hashed: str | None) -> Any:
        self.verifications += 1
        return super().verify(password, hashed)

    def hash(self, password: str) -> str:
        self.hashes += 1
        return super().hash(password)


@dataclass
class Env:
    app: FastAPI
    auth: CRUDAuth
    client: httpx.AsyncClient
    clock: FrozenClock
    hasher: CountingHasher
    sessionmaker: async_sessionmaker[AsyncSession]


AppFactory = Callable[..., Any]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every app test runs on SQLite and on the real PostgreSQL server."""
    return "sqlite+aiosqlite://" if request.param == "sqlite" else POSTGRES_URL


def _engine(url: str) -> AsyncEngine:
    if url.startswith("postgresql"):
        # One schema per test process, so parallel runs on the shared server never collide.
        return create_async_engine(
            url, connect_args={"server_settings": {"search_path": PG_SCHEMA}}
        )
    return create_async_engine(url)


PG_SCHEMA = f"crudauth_test_{os.getpid()}"

# Each test process gets its own Redis database (1-15), flushed when the run starts, so that
# counters left by an earlier run (a register throttle, a lockout) never leak into this one.
REDIS_TEST_DB = int(os.environ.get("CRUDAUTH_TEST_REDIS_DB", 1 + os.getpid() % 15))
REDIS_TEST_URL = f"redis://127.0.0.1:6379/{REDIS_TEST_DB}"


@pytest.fixture(scope="session", autouse=True)
def _fresh_redis_database() -> None:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1)
        client.flushdb()
        client.close()
    except redis.RedisError:
        pass  # no server: the redis-marked tests will fail loudly on their own


@pytest.fixture(scope="session", autouse=True)
def _postgres_schema() -> Iterator[None]:
    """Create this process's PostgreSQL schema once, and drop it at the end."""
    created = False

    async def run(sql: str) -> None:
        engine = create_async_engine(POSTGRES_URL)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    try:
        asyncio.run(run(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}"))
        created = True
    except OSError:
        pass  # no server: the postgres-marked tests will fail loudly on their own
    yield
    if created:
        asyncio.run(run(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))


@pytest.fixture
async def make_env(database_url: str) -> AsyncIterator[AppFactory]:
    engines = []
    clients = []
    auths: list[CRUDAuth] = []
    redis_used = False

    async def factory(**options: Any) -> Env:
        engine = _engine(database_url)
        engines.append(engine)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

        async def get_session() -> AsyncIterator[AsyncSession]:
            async with sessionmaker() as db:
                yield db

        clock = FrozenClock()
        hasher = CountingHasher()
        if ("redis_url" in options or "redis_client" in options) and "rate_limiter" not in options:
            # Counters of their own: every test of a run shares one Redis database.
            options.setdefault("rate_limit_prefix", f"crudauth-test:{uuid.uuid4().hex}:rl:")
        options.setdefault("cookies", CookieConfig(secure=False))
        options.setdefault("warn_on_memory_backend", False)
        auth = CRUDAuth(
            session=get_session,
            user_model=User,
            SECRET_KEY=SECRET,
            clock=clock,
            password_hasher=hasher,
            **options,
        )
        auths.append(auth)
        nonlocal redis_used
        redis_used = (
            redis_used
            or auth.runtime.redis_client is not None
            or any(store.kind == "redis" for t in auth.transports for store in t.stores().values())
        )
        app = FastAPI()
        app.include_router(auth.router)

        @app.get("/private")
        async def private(p: Principal = Depends(auth.current_user())) -> dict[str, Any]:
            return {"user_id": p.user_id, "via": p.transport}

        @app.post("/private")
        async def private_post(p: Principal = Depends(auth.current_user())) -> dict[str, Any]:
            return {"user_id": p.user_id}

        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        clients.append(client)
        return Env(app, auth, client, clock, hasher, sessionmaker)

    yield factory
    for client in clients:
        await client.aclose()
    for auth in auths:  # the Redis client and lanes it opened, as an app's lifespan would
        await auth.shutdown()
    for engine in engines:
        await engine.dispose()
    if redis_used:
        # Sessions of user 1, 2, ... at FrozenClock times (2027) would outrank a later test's
        # real-time sign-in of the same user id under the per-user cap: leave nothing behind.
        client = AsyncRedis.from_url(REDIS_TEST_URL)
        try:
            await client.flushdb()
        finally:
            await client.aclose()


async def register(
    client: httpx.AsyncClient,
    username: str = "alice",
    email: str = "alice@example.com",
    password: str = "correct horse battery",
) -> httpx.Response:
    return await client.post(
        "/register", json={"username": username, "email": email, "password": password}
    )


async def login(
    client: httpx.AsyncClient,
    username: str = "alice",
    password: str = "correct horse battery",
    **extra: Any,
) -> httpx.Response:
    return await client.post("/login", data={"username": username, "password": password, **extra})
