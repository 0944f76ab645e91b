"""The reference storage API (``AbstractSessionStorage`` and friends) on every backend.

Each test runs on memory, Redis, a SQLite file and PostgreSQL. Time moves with a FrozenClock
where the backend expires by crudauth's clock (memory, SQL); Redis expires keys by its own
clock, so there the TTLs are short and the test sleeps.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from crudauth.clock import FrozenClock
from crudauth.storage import (
    AbstractSessionStorage,
    DatabaseSessionStorage,
    DatabaseStore,
    MemorySessionStorage,
    RedisSessionStorage,
    compat,
    get_session_storage,
)
from tests.conftest import PG_SCHEMA, POSTGRES_URL, REDIS_TEST_URL

ROOT = Path(__file__).resolve().parents[1]

BACKENDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


class Session(BaseModel):
    user_id: int
    counter: int = 0
    note: str = ""


class Token(BaseModel):
    """A value with no owner: never indexed."""

    purpose: str


@dataclass
class Harness:
    storage: AbstractSessionStorage[Session]
    #: A span of time that is long for this backend (10 s frozen, 0.15 s real for Redis).
    unit: float
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    backend = str(request.param)
    clock = FrozenClock(time.time())

    async def move(seconds: float) -> None:
        clock.advance(seconds)

    if backend == "memory":
        yield Harness(MemorySessionStorage(clock=clock), 10.0, move)
        return
    if backend == "redis":
        client = Redis.from_url(REDIS_TEST_URL)
        namespace = f"crudauth-test:{uuid.uuid4().hex}:"
        redis_storage: RedisSessionStorage[Session] = RedisSessionStorage(
            client, namespace=namespace
        )
        await redis_storage.initialize()
        yield Harness(redis_storage, 0.15, asyncio.sleep)
        await redis_storage.close()
        await client.aclose()
        return
    # A file, not ":memory:", so that concurrent transactions each get a connection.
    url = f"sqlite+aiosqlite:///{tmp_path / 'compat.db'}" if backend == "sqlite" else POSTGRES_URL
    kwargs: dict[str, Any] = {}
    if backend == "postgres":
        kwargs["connect_args"] = {"server_settings": {"search_path": PG_SCHEMA}}
    engine = create_async_engine(url, **kwargs)
    suffix = uuid.uuid4().hex[:8]
    database = DatabaseStore(
        async_sessionmaker(engine, expire_on_commit=False),
        session_table=f"compat_sessions_{suffix}",
        store_table=f"compat_store_{suffix}",
        counter_table=f"compat_counters_{suffix}",
        clock=clock,
    )
    await database.create_tables()
    yield Harness(DatabaseSessionStorage(database), 10.0, move)
    async with engine.begin() as conn:
        await conn.run_sync(database.metadata.drop_all)
    await engine.dispose()


# -- the core methods --------------------------------------------------------------------------


async def test_create_and_get(env: Harness) -> None:
    storage = env.storage
    session_id = await storage.create(Session(user_id=1, note="hi"))
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", session_id)  # 32 random bytes, URL-safe
    assert storage.get_key(session_id) == f"session:{session_id}"
    assert await storage.get(session_id, Session) == Session(user_id=1, note="hi")
    assert await storage.exists(session_id)
    assert await storage.get("no-such-id", Session) is None
    assert not await storage.exists("no-such-id")


async def test_create_with_a_given_id_replaces(env: Harness) -> None:
    storage = env.storage
    assert await storage.create(Session(user_id=1), session_id="fixed") == "fixed"
    await storage.create(Session(user_id=1, note="second"), session_id="fixed")
    assert await storage.get("fixed", Session) == Session(user_id=1, note="second")


def test_generated_ids_are_random() -> None:
    storage: MemorySessionStorage[Session] = MemorySessionStorage()
    assert len({storage.generate_session_id() for _ in range(100)}) == 100


async def test_update_touches_only_live_values(env: Harness) -> None:
    storage = env.storage
    session_id = await storage.create(Session(user_id=1))
    assert await storage.update(session_id, Session(user_id=1, note="changed"))
    assert await storage.get(session_id, Session) == Session(user_id=1, note="changed")
    assert not await storage.update("missing", Session(user_id=1))
    assert not await storage.exists("missing")


async def test_no_resurrection_after_delete(env: Harness) -> None:
    storage = env.storage
    session_id = await storage.create(Session(user_id=1))
    assert await storage.delete(session_id)
    assert not await storage.delete(session_id)
    assert not await storage.update(session_id, Session(user_id=1, note="back?"))
    assert not await storage.extend(session_id)
    assert await storage.modify(session_id, Session, lambda s: s) is None
    assert await storage.get(session_id, Session) is None
    assert await storage.get_user_sessions(1) == []


async def test_delete_between_read_and_write_wins(
    env: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race a plain "read, then SET" update loses: the value is deleted after the update
    # read it and before it writes. The write must not bring it back.
    storage = env.storage
    session_id = await storage.create(Session(user_id=1))
    write = storage.store.compare_and_set

    async def delete_first(key: str, expected: str, value: str, ttl: float) -> bool:
        await storage.delete(session_id)
        return await write(key, expected, value, ttl)

    monkeypatch.setattr(storage.store, "compare_and_set", delete_first)
    assert not await storage.update(session_id, Session(user_id=1, note="back?"))
    assert not await storage.extend(session_id)
    assert await storage.modify(session_id, Session, lambda s: None) is None
    monkeypatch.undo()
    assert not await storage.exists(session_id)
    assert await storage.get_user_sessions(1) == []


async def test_update_keeps_or_resets_the_lifetime(env: Harness) -> None:
    storage, u = env.storage, env.unit
    kept = await storage.create(Session(user_id=1), expiration=2 * u)
    reset = await storage.create(Session(user_id=1), expiration=2 * u)
    await env.advance(u)
    assert await storage.update(kept, Session(user_id=1, note="a"), reset_expiration=False)
    assert await storage.update(reset, Session(user_id=1, note="b"))  # 2u again from now
    await env.advance(1.3 * u)
    assert await storage.get(kept, Session) is None  # its original 2u ran out
    assert await storage.get(reset, Session) == Session(user_id=1, note="b")


async def test_extend_rearms_the_lifetime(env: Harness) -> None:
    storage, u = env.storage, env.unit
    session_id = await storage.create(Session(user_id=1), expiration=2 * u)
    await env.advance(u)
    assert await storage.extend(session_id, expiration=3 * u)
    await env.advance(1.5 * u)  # past the first deadline, well inside the new one
    assert await storage.exists(session_id)
    assert not await storage.extend("missing")


async def test_expired_values_are_gone_for_every_method(env: Harness) -> None:
    storage, u = env.storage, env.unit
    session_id = await storage.create(Session(user_id=1), expiration=u)
    await env.advance(1.2 * u)
    assert await storage.get(session_id, Session) is None
    assert not await storage.exists(session_id)
    assert not await storage.update(session_id, Session(user_id=1))
    assert not await storage.extend(session_id)
    assert await storage.modify(session_id, Session, lambda s: s) is None
    assert await storage.get_and_delete(session_id, Session) is None
    assert not await storage.delete(session_id)
    assert await storage.get_user_sessions(1) == []
    assert await storage.set_if_absent(session_id, Session(user_id=1))


async def test_non_positive_expiration_is_rejected(env: Harness) -> None:
    with pytest.raises(ValueError, match="positive"):
        await env.storage.create(Session(user_id=1), expiration=0)
    with pytest.raises(ValueError, match="positive"):
        MemorySessionStorage(expiration=-1)


# -- the atomic primitives -------------------------------------------------------------------


async def test_modify_returns_the_new_value(env: Harness) -> None:
    storage = env.storage
    session_id = await storage.create(Session(user_id=1))

    def bump(s: Session) -> Session:
        return s.model_copy(update={"counter": s.counter + 1})

    def in_place(s: Session) -> None:
        s.note = "edited"

    assert await storage.modify(session_id, Session, bump) == Session(user_id=1, counter=1)
    changed = await storage.modify(session_id, Session, in_place)
    assert changed == Session(user_id=1, counter=1, note="edited")
    assert await storage.get(session_id, Session) == changed
    assert await storage.modify("missing", Session, bump) is None


async def test_modify_can_keep_the_lifetime(env: Harness) -> None:
    storage, u = env.storage, env.unit
    session_id = await storage.create(Session(user_id=1), expiration=2 * u)
    await env.advance(u)
    await storage.modify(session_id, Session, lambda s: None, reset_expiration=False)
    await env.advance(1.3 * u)
    assert not await storage.exists(session_id)


async def test_concurrent_modify_loses_no_change(env: Harness) -> None:
    storage = env.storage
    session_id = await storage.create(Session(user_id=1))

    def bump(s: Session) -> Session:
        return s.model_copy(update={"counter": s.counter + 1})

    await asyncio.gather(*(storage.modify(session_id, Session, bump) for _ in range(20)))
    final = await storage.get(session_id, Session)
    assert final is not None and final.counter == 20


async def test_concurrent_get_and_delete_has_one_winner(env: Harness) -> None:
    storage = env.storage
    session_id = await storage.create(Session(user_id=1, note="once"))
    results = await asyncio.gather(
        *(storage.get_and_delete(session_id, Session) for _ in range(10))
    )
    assert [r for r in results if r is not None] == [Session(user_id=1, note="once")]
    assert not await storage.exists(session_id)
    assert await storage.get_user_sessions(1) == []


async def test_concurrent_set_if_absent_has_one_winner(env: Harness) -> None:
    storage = env.storage
    session_id = storage.generate_session_id()
    results = await asyncio.gather(
        *(storage.set_if_absent(session_id, Session(user_id=1, counter=i)) for i in range(10))
    )
    assert results.count(True) == 1
    stored = await storage.get(session_id, Session)
    assert stored is not None and stored.counter == results.index(True)
    assert not await storage.set_if_absent(session_id, Session(user_id=1))


async def test_values_without_an_owner(env: Harness) -> None:
    tokens: AbstractSessionStorage[Token] = AbstractSessionStorage(
        env.storage.store, prefix="state:", clock=env.storage.clock
    )
    assert await tokens.set_if_absent("abc", Token(purpose="oauth"), expiration=60)
    assert await tokens.get_and_delete("abc", Token) == Token(purpose="oauth")
    assert await tokens.get_and_delete("abc", Token) is None


# -- the per-user index ------------------------------------------------------------------------


async def test_user_index_lists_live_sessions(env: Harness) -> None:
    storage = env.storage
    a, b, c = [await storage.create(Session(user_id=1)) for _ in range(3)]
    other = await storage.create(Session(user_id=2))
    assert sorted(await storage.get_user_sessions(1)) == sorted([a, b, c])
    assert await storage.get_user_sessions("2") == [other]

    assert await storage.delete(a)  # the index is pruned even without user_id
    assert await storage.delete(b, user_id=1)
    assert await storage.get_user_sessions(1) == [c]

    await storage.remove_from_user_index(1, c)
    assert await storage.get_user_sessions(1) == []
    assert await storage.exists(c)  # only the index entry went


async def test_user_index_follows_an_owner_change(env: Harness) -> None:
    storage = env.storage
    session_id = await storage.create(Session(user_id=1))
    assert await storage.update(session_id, Session(user_id=2))
    assert await storage.get_user_sessions(1) == []
    assert await storage.get_user_sessions(2) == [session_id]


async def test_user_index_outlives_its_first_deadline(
    env: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sliding session extended past its index entry's first bound must still be listed,
    # or "sign out everywhere" would miss it.
    storage, u = env.storage, env.unit
    monkeypatch.setattr(compat, "INDEX_MARGIN", u)
    session_id = await storage.create(Session(user_id=1), expiration=2 * u)  # bound: 3u
    for _ in range(3):
        await env.advance(1.2 * u)
        assert await storage.extend(session_id, expiration=2 * u)
    assert await storage.get_user_sessions(1) == [session_id]  # at 3.6u


async def test_expired_sessions_leave_the_index(env: Harness) -> None:
    storage, u = env.storage, env.unit
    short = await storage.create(Session(user_id=1), expiration=u)
    long = await storage.create(Session(user_id=1), expiration=3 * u)
    await env.advance(1.2 * u)
    assert await storage.get_user_sessions(1) == [long]
    assert short != long


# -- what is not supported -------------------------------------------------------------------


async def test_scans_raise_instead_of_returning_nothing(env: Harness) -> None:
    with pytest.raises(NotImplementedError, match="no key scans"):
        await env.storage.scan_keys("session:*")
    with pytest.raises(NotImplementedError, match="no key scans"):
        await env.storage.delete_pattern("session:*")


# -- the factory and the lifecycle -----------------------------------------------------------


def test_factory_builds_each_backend(tmp_path: Path) -> None:
    memory = get_session_storage()
    assert isinstance(memory, MemorySessionStorage)
    assert (memory.prefix, memory.expiration) == ("session:", 1800)

    redis_default = get_session_storage("redis", prefix="s:", expiration=60)
    assert isinstance(redis_default, RedisSessionStorage)
    client = redis_default.store.client  # type: ignore[attr-defined]
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("localhost", 6379, 0)
    assert kwargs.get("decode_responses", False) is False

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}")
    database = DatabaseStore(async_sessionmaker(engine))
    assert isinstance(get_session_storage("database", database=database), DatabaseSessionStorage)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"backend": "mongo"}, "unknown storage backend"),
        ({"backend": "database"}, "needs database"),
        ({"redis_url": REDIS_TEST_URL}, "apply to backend='redis'"),
        ({"backend": "redis", "redis_url": REDIS_TEST_URL, "client": object()}, "not both"),
    ],
)
def test_factory_rejects_bad_options(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_session_storage(**args)


@pytest.mark.redis
async def test_redis_owns_only_the_client_it_built() -> None:
    namespace = f"crudauth-test:{uuid.uuid4().hex}:"
    owned: AbstractSessionStorage[Session] = get_session_storage(
        "redis", redis_url=REDIS_TEST_URL, expiration=60
    )
    await owned.initialize()
    session_id = await owned.create(Session(user_id=7))
    await owned.close()

    client = Redis.from_url(REDIS_TEST_URL)
    lent: RedisSessionStorage[Session] = RedisSessionStorage(client, namespace=namespace)
    await lent.create(Session(user_id=7), session_id="lent")
    await lent.close()
    assert await client.ping()  # a client that was passed in is left open
    assert await client.exists(f"{namespace}kv:session:lent") == 1
    assert await client.exists(f"crudauth:kv:session:{session_id}") == 1
    await client.delete(f"crudauth:kv:session:{session_id}", "crudauth:kv:session_users:7")
    await client.aclose()


def test_docs_snippet_runs() -> None:
    text = (ROOT / "docs" / "storage.md").read_text()
    section = text.split("## The reference storage API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/storage.md", "exec"), {"__name__": "snippet"})  # noqa: S102


async def test_prefixes_keep_values_apart() -> None:
    a: MemorySessionStorage[Session] = MemorySessionStorage(prefix="a:")
    b = AbstractSessionStorage[Session](a.store, prefix="b:")
    await a.create(Session(user_id=1), session_id="x")
    assert await b.get("x", Session) is None
    assert await b.get_user_sessions(1) == []
