"""Modules a request crosses: ``.venv/bin/python bench/crossings.py``.

Serves ``POST /login``, ``POST /token`` and an authenticated ``GET`` (session, then bearer) in
process (memory stores, SQLite, both transports configured), after one warm-up request of each
kind, under ``sys.setprofile``, and prints how many distinct ``crudauth`` modules had a function
called while each request ran (and which), and how many Python and C function calls it made
(all code, and crudauth's own): counts that do not move with the machine's load. A measure of
how far a reader follows a request and of the work it does, not of speed (see
``instructions.py`` and ``run.py``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import (
    AuthUserMixin,
    BearerTransport,
    CookieConfig,
    CRUDAuth,
    Principal,
    SessionTransport,
)


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "users"


def modules_during(seen: set[str], calls: list[int]) -> Any:
    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls[0] += 1
            name = frame.f_globals.get("__name__", "")
            if name.startswith("crudauth"):
                calls[1] += 1
                seen.add(name)
        elif event == "c_call":
            calls[2] += 1

    return profile


async def main() -> None:
    engine = create_async_engine("sqlite+aiosqlite://")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    maker = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with maker() as db:
            yield db

    auth = CRUDAuth(
        session=get_session,
        user_model=User,
        SECRET_KEY="crossings-only-" + "k" * 40,
        transports=[SessionTransport(), BearerTransport(refresh="body")],
        cookies=CookieConfig(secure=False),
        warn_on_memory_backend=False,
    )
    app = FastAPI()
    app.include_router(auth.router)

    @app.get("/private")
    async def private(p: Principal = Depends(auth.current_user())) -> dict[str, Any]:
        return {"id": p.user_id}

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    pw = "correct horse battery staple"
    account = {"username": "alice", "email": "a@example.com", "password": pw}
    r = await client.post("/register", json=account)
    assert r.status_code in (200, 201), r.text
    form = {"username": "alice", "password": pw}
    # warm up every path once (imports, caches)
    await client.post("/login", data=form)
    t = (await client.post("/token", data=form)).json()
    await client.get("/private")
    await client.get("/private", headers={"Authorization": f"Bearer {t['access_token']}"})
    client.cookies.clear()

    async def measure(label: str, call: Any) -> None:
        seen: set[str] = set()
        calls = [0, 0, 0]
        sys.setprofile(modules_during(seen, calls))
        try:
            r = await call()
        finally:
            sys.setprofile(None)
        assert r.status_code == 200, (label, r.status_code, r.text)
        names = " ".join(sorted(m.removeprefix("crudauth.") for m in seen))
        print(
            f"{label:24} modules {len(seen):3d} | Python calls {calls[0]:5d} "
            f"(crudauth {calls[1]:4d}) | C calls {calls[2]:5d} | {names}"
        )

    await measure("POST /login", lambda: client.post("/login", data=form))
    await measure("GET /private (session)", lambda: client.get("/private"))
    client.cookies.clear()
    tokens: dict[str, Any] = {}

    async def token() -> Any:
        r = await client.post("/token", data=form)
        tokens.update(r.json())
        return r

    await measure("POST /token", token)
    await measure(
        "GET /private (bearer)",
        lambda: client.get(
            "/private", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ),
    )
    await client.aclose()
    await auth.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
