"""A refresh family whose record is gone is dead, for every generation, on every store.

Losing the store's data (a Redis ``FLUSHALL``, a memory store's restart, rows deleted from the
SQL table) must not undo a revocation: a family replayed after the loss stays refused, and the
refused token writes nothing that could start the family again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from crudauth import BearerTransport
from crudauth.storage import DatabaseStore
from tests.bearer_support import claims_of, get_tokens, sign_up
from tests.conftest import REDIS_TEST_URL, Env

Wipe = Callable[[], Awaitable[None]]


async def _flush_redis() -> None:
    client = AsyncRedis.from_url(REDIS_TEST_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture(
    params=[pytest.param("redis", marks=pytest.mark.redis), "memory", "sql"],
)
async def lossy(
    request: pytest.FixtureRequest, make_env: Any, tmp_path: Path
) -> AsyncIterator[tuple[Env, Wipe]]:
    """An app whose token store is Redis, memory or SQL, and how to lose that store's data."""
    transports = [BearerTransport(refresh="body")]
    engine = None
    wipe: Wipe
    if request.param == "redis":
        env = await make_env(transports=transports, redis_url=REDIS_TEST_URL)
        wipe = _flush_redis
    elif request.param == "memory":
        env = await make_env(transports=transports)
        values: dict[str, Any] = env.auth.tokens._values  # type: ignore[attr-defined]

        async def wipe() -> None:  # what a restart of a memory store leaves
            values.clear()

    else:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
        store = DatabaseStore(async_sessionmaker(engine, expire_on_commit=False))
        await store.create_tables()
        env = await make_env(transports=transports, database_store=store)

        async def wipe() -> None:
            async with store.sessionmaker() as db:
                await db.execute(delete(store.store_table))
                await db.commit()

    await sign_up(env.client)
    yield env, wipe
    if engine is not None:
        await engine.dispose()


async def refresh(env: Env, token: str) -> Any:
    return await env.client.post("/refresh", json={"refresh_token": token})


async def test_a_revoked_family_stays_revoked_after_the_store_loses_its_data(lossy):
    env, wipe = lossy
    g0 = (await get_tokens(env.client))["refresh_token"]
    r = await refresh(env, g0)
    assert r.status_code == 200
    g1 = r.json()["refresh_token"]
    assert (await refresh(env, g0)).status_code == 401  # reuse: the family is revoked
    await wipe()
    for token in (g0, g1):
        r = await refresh(env, token)
        assert r.status_code == 401, r.text
        assert r.json() == {"detail": "Invalid or expired refresh token"}


async def test_every_refresh_token_issued_before_the_loss_is_refused(lossy):
    env, wipe = lossy
    unused = (await get_tokens(env.client))["refresh_token"]
    rotated = (await refresh(env, (await get_tokens(env.client))["refresh_token"])).json()
    await wipe()
    for token in (unused, rotated["refresh_token"]):
        assert (await refresh(env, token)).status_code == 401
    fresh = (await get_tokens(env.client))["refresh_token"]  # signing in again works
    assert (await refresh(env, fresh)).status_code == 200


async def test_a_token_without_a_family_record_creates_none(lossy):
    env, wipe = lossy
    g0 = (await get_tokens(env.client))["refresh_token"]
    await wipe()
    transport = env.auth.transports[0]
    key = transport.families.key(claims_of(g0)["fam"])
    for _ in range(2):
        assert (await refresh(env, g0)).status_code == 401
        assert await env.auth.tokens.get(key) is None


async def test_the_family_is_recorded_before_the_token_answer(lossy):
    env, _ = lossy
    g0 = (await get_tokens(env.client))["refresh_token"]
    transport = env.auth.transports[0]
    assert await env.auth.tokens.get(transport.families.key(claims_of(g0)["fam"])) is not None


async def test_issue_tokens_records_the_family_when_awaited_or_soon_after(lossy):
    env, wipe = lossy
    async with env.sessionmaker() as db:
        user = await env.auth.repo.get(db, 1)
    awaited = await env.auth.issue_tokens(user)
    assert (await refresh(env, awaited["refresh_token"])).status_code == 200
    plain = env.auth.issue_tokens(user)  # not awaited: recorded by a task on the loop
    assert (await refresh(env, plain["refresh_token"])).status_code == 200
    await wipe()
    assert (await refresh(env, plain["refresh_token"])).status_code == 401


def test_issue_tokens_outside_an_event_loop_gives_a_refresh_token_that_is_refused(caplog):
    import asyncio
    import logging

    from tests.conftest import SECRET, User

    async def no_session() -> Any:
        yield None

    from crudauth import CRUDAuth

    auth = CRUDAuth(
        session=no_session,
        user_model=User,
        SECRET_KEY=SECRET,
        transports=[BearerTransport(refresh="body")],
        warn_on_memory_backend=False,
    )
    user = User(id=1, username="alice", email="alice@example.com", token_version=0)
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        tokens = auth.issue_tokens(user)
    assert "refresh token will be refused" in caplog.text
    transport = auth.transports[0]
    family = claims_of(tokens["refresh_token"])["fam"]
    assert asyncio.run(auth.tokens.get(transport.families.key(family))) is None
