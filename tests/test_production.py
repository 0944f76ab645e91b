"""The production wiring of the seed: where state lives, lifecycle, warnings and failures."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from crudauth import AuthHooks, CookieConfig, CRUDAuth, SessionTransport
from crudauth.errors import ConfigurationError, StoreUnavailable
from crudauth.ratelimit import MemoryRateLimiterBackend, redis_rate_limiter
from crudauth.ratelimit.redis import RedisBackend
from crudauth.storage import DatabaseStore
from crudauth.storage.redis import RedisKeyValueStore, RedisSessionStore
from tests.conftest import REDIS_TEST_URL, Base, User
from tests.multiworker import free_port

REDIS_URL = REDIS_TEST_URL
STRONG = secrets.token_urlsafe(48)
PASSWORD = "correct horse battery staple"


@pytest.fixture
async def db() -> AsyncIterator[Any]:
    engine = create_async_engine("sqlite+aiosqlite://")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    maker = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with maker() as session:
            yield session

    yield get_session, maker
    await engine.dispose()


def _app(auth: CRUDAuth) -> FastAPI:
    app = FastAPI()
    app.include_router(auth.router)
    return app


async def _sign_in(client: httpx.AsyncClient, name: str = "alice") -> httpx.Response:
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    assert (await client.post("/register", json=body)).status_code == 200
    response = await client.post("/login", data={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response


def _client(app: FastAPI, scheme: str = "https") -> httpx.AsyncClient:
    # A client address of its own (a documentation range, never a network target): every test
    # here shares one Redis database, and registration is throttled per address.
    address = f"198.51.100.{secrets.randbelow(254) + 1}"
    transport = httpx.ASGITransport(app=app, client=(address, 5000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://t")


def _memory_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "in-memory backend" in r.getMessage()]


@pytest.mark.redis
async def test_the_seeds_form_puts_every_store_in_redis(db, caplog):
    get_session, _ = db
    caplog.set_level(logging.WARNING, logger="crudauth")
    auth = CRUDAuth(
        session=get_session,
        user_model=User,
        SECRET_KEY=STRONG,
        transports=[SessionTransport(backend="redis", redis_url=REDIS_URL)],
        rate_limiter=redis_rate_limiter(REDIS_URL),
    )
    assert _memory_warnings(caplog) == []
    assert isinstance(auth.sessions.store, RedisSessionStore)
    assert isinstance(auth.tokens, RedisKeyValueStore)
    assert isinstance(auth.rate_limiter, RedisBackend)
    await auth.initialize()
    await auth.initialize()  # idempotent
    try:
        async with _client(_app(auth)) as client:
            login = await _sign_in(client)
            assert (await client.get("/me")).status_code == 200
        session_id = login.cookies["session_id"]
        storage_key = auth.sessions.storage_key(session_id)
        inspector = Redis.from_url(REDIS_URL)
        try:
            raw = await inspector.hgetall(f"crudauth:session:{storage_key}")
            assert raw, "the session record is not in Redis"
            # Only a keyed hash of the id is stored: the cookie value appears nowhere.
            assert session_id.encode() not in b"".join([*raw.keys(), *raw.values()])
            assert not [k async for k in inspector.scan_iter(f"*{session_id}*")]
        finally:
            await inspector.aclose()
    finally:
        await auth.shutdown()


@pytest.mark.redis
async def test_redis_url_moves_sessions_tokens_and_counters(db, caplog):
    get_session, _ = db
    caplog.set_level(logging.WARNING, logger="crudauth")
    auth = CRUDAuth(session=get_session, user_model=User, SECRET_KEY=STRONG, redis_url=REDIS_URL)
    assert _memory_warnings(caplog) == []
    assert isinstance(auth.sessions.store, RedisSessionStore)
    assert isinstance(auth.tokens, RedisKeyValueStore)
    assert isinstance(auth.rate_limiter, RedisBackend)
    await auth.initialize()
    async with _client(_app(auth)) as client:
        await _sign_in(client)
        assert (await client.get("/me")).status_code == 200
    await auth.shutdown()


@pytest.mark.redis
async def test_a_caller_owned_redis_client_is_never_closed(db):
    get_session, _ = db
    client = Redis.from_url(REDIS_URL)
    auth = CRUDAuth(session=get_session, user_model=User, SECRET_KEY=STRONG, redis_client=client)
    await auth.initialize()
    await auth.shutdown()
    assert await client.ping() is True
    await client.aclose()


async def test_the_memory_default_warns_once_naming_each_part(db, caplog):
    get_session, _ = db
    caplog.set_level(logging.WARNING, logger="crudauth")
    auth = CRUDAuth(session=get_session, user_model=User, SECRET_KEY=STRONG)
    [message] = _memory_warnings(caplog)
    for part in ("sessions/CSRF", "lockout/throttle counters", "single-use tokens"):
        assert part in message
    assert isinstance(auth.rate_limiter, MemoryRateLimiterBackend)
    await auth.initialize()  # a no-op for memory, and harmless
    await auth.shutdown()


async def test_warn_on_memory_backend_false_silences_the_warning(db, caplog):
    get_session, _ = db
    caplog.set_level(logging.WARNING, logger="crudauth")
    CRUDAuth(session=get_session, user_model=User, SECRET_KEY=STRONG, warn_on_memory_backend=False)
    assert _memory_warnings(caplog) == []


async def test_database_store_keeps_sessions_in_sql(db, caplog):
    get_session, maker = db
    caplog.set_level(logging.WARNING, logger="crudauth")
    store = DatabaseStore(maker)
    await store.create_tables()
    auth = CRUDAuth(session=get_session, user_model=User, SECRET_KEY=STRONG, database_store=store)
    assert _memory_warnings(caplog) == []
    async with _client(_app(auth)) as client:
        await _sign_in(client)
        assert (await client.get("/me")).status_code == 200
    assert auth.sessions.store.kind == "database"


@pytest.mark.parametrize(
    "options",
    [
        {"redis_url": REDIS_URL, "redis_client": object()},
        {"redis_url": REDIS_URL, "database_store": "store"},
        {"rate_limiter": MemoryRateLimiterBackend(), "rate_limit_prefix": "x:"},
        {"trusted_proxy_hops": -1},
    ],
)
async def test_conflicting_backend_options_are_refused_at_construction(db, options):
    get_session, maker = db
    if options.get("database_store") == "store":
        options["database_store"] = DatabaseStore(maker)
    with pytest.raises(ConfigurationError):
        CRUDAuth(session=get_session, user_model=User, SECRET_KEY=STRONG, **options)


async def test_initialize_fails_loudly_when_redis_is_unreachable(db):
    get_session, _ = db
    auth = CRUDAuth(
        session=get_session,
        user_model=User,
        SECRET_KEY=STRONG,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    with pytest.raises(StoreUnavailable, match="cannot reach Redis"):
        await auth.initialize()
    await auth.shutdown()


@pytest.mark.parametrize("via", ["flag", "environment"])
async def test_production_refuses_weak_configurations(db, monkeypatch, via):
    get_session, _ = db
    flag: dict[str, Any] = {"production": True}
    if via == "environment":
        monkeypatch.setenv("CRUDAUTH_ENV", "production")
        flag = {}
    base = {"session": get_session, "user_model": User, **flag}
    with pytest.raises(ConfigurationError, match="memory"):
        CRUDAuth(SECRET_KEY=STRONG, **base)
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        CRUDAuth(SECRET_KEY="change-me", redis_url=REDIS_URL, **base)
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        CRUDAuth(SECRET_KEY="x" * 20, redis_url=REDIS_URL, **base)
    with pytest.raises(ConfigurationError, match="secure"):
        CRUDAuth(SECRET_KEY=STRONG, redis_url=REDIS_URL, cookies=CookieConfig(secure=False), **base)
    CRUDAuth(SECRET_KEY=STRONG, redis_url=REDIS_URL, **base)


# -- Redis failing under traffic --------------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes], int]]:
    """A Redis server of this test's own, so that stopping it disturbs nobody else."""
    port = free_port()

    def launch() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
        ).returncode:
            assert time.monotonic() < deadline, "private redis did not start"
            time.sleep(0.05)
        return proc

    holder: dict[str, Any] = {"proc": launch(), "launch": launch}
    yield f"redis://127.0.0.1:{port}/0", holder, port  # type: ignore[misc]
    for p in (holder["proc"],):
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.terminate()
            p.wait(timeout=10)


@pytest.mark.redis
async def test_a_stalled_redis_answers_503_then_recovers_by_itself(db, private_redis, caplog):
    get_session, _ = db
    url, holder, _ = private_redis
    auth = CRUDAuth(session=get_session, user_model=User, SECRET_KEY=STRONG, redis_url=url)
    await auth.initialize()
    async with _client(_app(auth)) as client:
        await _sign_in(client)
        os.kill(holder["proc"].pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            stalled = await client.get("/me")
            assert time.monotonic() - started < 5
        finally:
            os.kill(holder["proc"].pid, signal.SIGCONT)
        assert stalled.status_code == 503
        assert "Traceback" not in stalled.text and "redis" not in stalled.text.lower()
        assert stalled.headers["Retry-After"]
        assert (await client.get("/me")).status_code == 200  # same session, no restart needed
    assert any("unavailable" in r.getMessage() for r in caplog.records)
    await auth.shutdown()


@pytest.mark.redis
async def test_a_dead_redis_is_never_anonymous_and_a_new_one_is_picked_up(db, private_redis):
    get_session, _ = db
    url, holder, _ = private_redis
    auth = CRUDAuth(session=get_session, user_model=User, SECRET_KEY=STRONG, redis_url=url)
    await auth.initialize()
    async with _client(_app(auth)) as client:
        await _sign_in(client)
        holder["proc"].terminate()
        holder["proc"].wait(timeout=10)
        assert (await client.get("/me")).status_code == 503
        r = await client.post("/login", data={"username": "alice", "password": PASSWORD})
        assert r.status_code == 503
        holder["proc"] = holder["launch"]()
        deadline = time.monotonic() + 10
        while True:
            r = await client.post("/login", data={"username": "alice", "password": PASSWORD})
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 200
        assert (await client.get("/me")).status_code == 200
    await auth.shutdown()


# -- the real client address ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "127.0.0.1"),  # default: the header is ignored
        (1, "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # one proxy: its view of the client
        (2, "198.51.100.1, 203.0.113.9", "198.51.100.1"),
        (1, "not-an-ip", "127.0.0.1"),  # junk is never trusted
        (5, "203.0.113.9", "203.0.113.9"),  # fewer entries than hops: the leftmost
    ],
)
async def test_trusted_proxy_hops_picks_the_client_address(db, hops, forwarded, expected):
    get_session, _ = db
    seen: list[str | None] = []
    auth = CRUDAuth(
        session=get_session,
        user_model=User,
        SECRET_KEY=STRONG,
        trusted_proxy_hops=hops,
        warn_on_memory_backend=False,
        hooks=AuthHooks(on_after_login=lambda user, **kw: seen.append(kw["context"].ip_address)),
    )
    transport = httpx.ASGITransport(app=_app(auth), client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        body = {"username": "bob", "email": "bob@example.com", "password": PASSWORD}
        await client.post("/register", json=body)
        r = await client.post(
            "/login",
            data={"username": "bob", "password": PASSWORD},
            headers={"X-Forwarded-For": forwarded},
        )
        assert r.status_code == 200
    assert seen == [expected]
