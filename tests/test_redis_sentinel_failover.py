"""Redis Sentinel: ``CRUDAuth(redis_client=Sentinel(...).master_for(...))`` through a failover.

A master, a replica and three sentinels run on loopback ports (tests/redis_sentinel.py). After
signing in, the master is killed; until the sentinels promote the replica every request either
succeeds or answers 503 (never 500, never anonymous), and afterwards the sessions written
before the failover, and replicated (WAIT), are still signed in.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from redis.asyncio.sentinel import Sentinel

from crudauth import CookieConfig, CRUDAuth, Principal
from tests.conftest import User
from tests.multiworker import free_port
from tests.redis_sentinel import SERVICE, SentinelSet, sentinel_set
from tests.test_production import db  # noqa: F401 - fixture

pytestmark = pytest.mark.redis

PASSWORD = "correct horse battery staple"
USERS = 6
#: The bound on the whole failover (the sentinels need about 2 s with the timings used).
RECOVERY_SECONDS = 30


def _auth(get_session: Any, sentinels: list[tuple[str, int]]) -> tuple[CRUDAuth, Any]:
    sentinel = Sentinel(sentinels, socket_timeout=1)
    client = sentinel.master_for(SERVICE, socket_timeout=2, socket_connect_timeout=1)
    auth = CRUDAuth(
        session=get_session,
        user_model=User,
        SECRET_KEY=secrets.token_urlsafe(48),
        redis_client=client,
        cookies=CookieConfig(secure=False),
    )
    return auth, client


@pytest.fixture
async def app(db: Any) -> AsyncIterator[tuple[SentinelSet, FastAPI]]:  # noqa: F811
    """An app on a Sentinel-managed client, and the servers (a failover spends them)."""
    with sentinel_set() as found:
        auth, client = _auth(db[0], found.sentinels)
        await auth.initialize()
        app = FastAPI()
        app.include_router(auth.router)

        @app.get("/maybe")
        async def maybe(
            principal: Principal | None = Depends(auth.current_user(optional=True)),
        ) -> dict[str, str | None]:
            return {"user": None if principal is None else str(principal.user_id)}

        try:
            yield found, app
        finally:
            await auth.shutdown()
            await client.aclose()  # the application's client: crudauth does not close it


def _client(app: FastAPI, n: int) -> httpx.AsyncClient:
    # A documentation-range client address per user: only a value, never a network target.
    transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n + 1}", 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def _signed_in(app: FastAPI, n: int) -> tuple[httpx.AsyncClient, str]:
    client = _client(app, n)
    name = f"f{n}{secrets.token_hex(4)}"
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    assert (await client.post("/register", json=body)).status_code == 200
    r = await client.post("/login", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client, str(r.json()["id"])


def test_a_sentinel_managed_client_stays_on_redis_py_for_every_command(db):  # noqa: F811
    # The per-request path pipelines its commands on a lane of its own only for a plain
    # client; a Sentinel-managed one (its pool asks the sentinels where the master is before
    # each connection) gets no lane, so every command follows the master through a failover.
    auth, _ = _auth(db[0], [("127.0.0.1", free_port())])  # nothing is contacted before initialize
    assert auth.sessions.store.lane is None
    assert auth.tokens.lane is None


async def _observe(clients: list[tuple[httpx.AsyncClient, str]]) -> list[tuple[int, int]]:
    """One round: each session's /me and /maybe, checked as they come."""
    seen = []
    for client, user_id in clients:
        for path in ("/me", "/maybe"):
            r = await client.get(path)
            assert r.status_code in (200, 503), (path, r.status_code, r.text)
            if r.status_code == 503:
                assert r.headers["Retry-After"]
            else:
                key = "user_id" if path == "/me" else "user"
                assert str(r.json()[key]) == user_id, (path, r.text)  # never anonymous
            seen.append((r.status_code, path == "/me"))
    return seen


async def test_sessions_replicated_before_a_failover_survive_it_and_no_request_fails_open(app):
    sentinels, application = app
    clients = [await _signed_in(application, n) for n in range(USERS)]
    assert sentinels.replicated() == 1  # every session is on the replica too
    old_master = sentinels.master_address()

    sentinels.kill_master()
    started = time.monotonic()
    codes: list[int] = []
    recovered_at = None
    while time.monotonic() - started < RECOVERY_SECONDS:
        round_ = await _observe(clients)
        codes += [code for code, _ in round_]
        if sentinels.master_address() != old_master and all(c == 200 for c, _ in round_):
            recovered_at = time.monotonic() - started
            break
        await asyncio.sleep(0.05)
    assert recovered_at is not None, f"no recovery within {RECOVERY_SECONDS} s: {codes[-8:]}"
    assert sentinels.master_address() == ("127.0.0.1", sentinels.replica_port)

    # On the new master: every session still signed in, sign-in, sign-out and refusal work.
    assert [c for c, _ in await _observe(clients)] == [200] * 2 * USERS
    fresh, _ = await _signed_in(application, USERS)
    assert (await fresh.get("/me")).status_code == 200
    csrf = fresh.cookies.get("csrf_token")
    assert (await fresh.post("/logout", headers={"X-CSRF-Token": csrf or ""})).status_code == 200
    assert (await fresh.get("/me")).status_code == 401
    tally = {code: codes.count(code) for code in sorted(set(codes))}
    print(f"failover: recovered {recovered_at:.2f} s after the kill; answers meanwhile {tally}")
    for client, _ in clients:
        await client.aclose()
    await fresh.aclose()
