"""A database that cannot be used is an outage: 503 with ``Retry-After``, never a 500 and never
"anonymous", and the app recovers by itself when the database is back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from crudauth import CookieConfig, CRUDAuth, Principal
from tests.conftest import SECRET, Base, CountingHasher, User

UNREACHABLE = {
    "postgres refuses": "postgresql+asyncpg://postgres@127.0.0.1:1/test",
    "sqlite cannot open": "sqlite+aiosqlite:////nonexistent-directory/crudauth.db",
}


class Switchable:
    """A session dependency whose engine the test swaps."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def __call__(self) -> AsyncIterator[AsyncSession]:
        async with async_sessionmaker(self.engine, expire_on_commit=False)() as db:
            yield db


async def app_with(database: Switchable) -> tuple[FastAPI, CRUDAuth]:
    auth = CRUDAuth(
        session=database,
        user_model=User,
        SECRET_KEY=SECRET,
        cookies=CookieConfig(secure=False),
        password_hasher=CountingHasher(),
        warn_on_memory_backend=False,
    )
    app = FastAPI()
    app.include_router(auth.router)

    @app.get("/private")
    async def private(p: Principal = Depends(auth.current_user())) -> dict[str, Any]:
        return {"user_id": p.user_id}

    @app.get("/maybe")
    async def maybe(p: Principal | None = Depends(auth.current_user(optional=True))) -> Any:
        return {"user_id": p.user_id if p else None}

    return app, auth


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"]
    assert r.headers["x-error-code"] == "store_unavailable"


@pytest.mark.parametrize("url", list(UNREACHABLE.values()), ids=list(UNREACHABLE))
async def test_a_database_that_cannot_be_reached_answers_503_and_recovers(url, tmp_path):
    good = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    bad = create_async_engine(url)
    async with good.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    database = Switchable(good)
    app, auth = await app_with(database)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    try:
        body = {"username": "alice", "email": "alice@example.com", "password": "correct horse 1"}
        assert (await client.post("/register", json=body)).status_code in (200, 201, 202)
        form = {"username": "alice", "password": "correct horse 1"}
        assert (await client.post("/login", data=form)).status_code == 200

        database.engine = bad
        assert_unavailable(await client.get("/private"))
        assert_unavailable(await client.get("/maybe"))  # never "anonymous"
        assert_unavailable(await client.get("/me"))
        client.cookies.clear()
        assert_unavailable(await client.post("/login", data=form))

        database.engine = good  # back: no restart needed
        assert (await client.post("/login", data=form)).status_code == 200
        assert (await client.get("/private")).json() == {"user_id": 1}
    finally:
        await client.aclose()
        await auth.shutdown()
        await good.dispose()
        await bad.dispose()


async def test_an_exhausted_connection_pool_answers_503(tmp_path):
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    app, auth = await app_with(Switchable(engine))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    try:
        body = {"username": "alice", "email": "alice@example.com", "password": "correct horse 1"}
        assert (await client.post("/register", json=body)).status_code in (200, 201, 202)
        form = {"username": "alice", "password": "correct horse 1"}
        assert (await client.post("/login", data=form)).status_code == 200
        async with engine.connect() as held:  # the only connection, taken elsewhere
            await held.exec_driver_sql("select 1")
            assert_unavailable(await client.get("/private"))
        assert (await client.get("/private")).status_code == 200
    finally:
        await client.aclose()
        await auth.shutdown()
        await engine.dispose()
