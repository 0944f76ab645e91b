"""Several real server processes sharing one Redis and one PostgreSQL database.

The seed promises that with Redis, sessions and one-time tokens hold across every worker; with
the memory default they do not (which is why crudauth warns). Each concurrency test repeats.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from tests.conftest import POSTGRES_URL, REDIS_TEST_URL
from tests.multiworker import (
    Workers,
    cookie_header,
    fresh_counters,
    postgres_schema,
    session_cookies,
    together,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    with postgres_schema("crudauth_mw") as name:
        yield name


def _env(schema: str) -> dict[str, str]:
    return {
        "DATABASE_URL": POSTGRES_URL,
        "DATABASE_SCHEMA": schema,
        "REDIS_URL": REDIS_TEST_URL,
        "SECRET_KEY": secrets.token_urlsafe(48),
    }


@pytest.fixture(scope="module")
def redis_workers(schema: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    workers = Workers("tests.apps.seed_app:app", _env(schema), count=4)
    workers.start(tmp_path_factory.mktemp("redis-workers"))
    yield workers
    workers.stop()


@pytest.fixture(autouse=True)
def _fresh_counters(redis_workers: Workers) -> None:
    # The seed's app keeps the default prefix; every request here comes from 127.0.0.1, so
    # each test starts with that address's budget, whatever ran before it in this process.
    fresh_counters("crudauth:rl:")


@pytest.fixture
async def clients(redis_workers: Workers) -> AsyncIterator[list[httpx.AsyncClient]]:
    pool = [httpx.AsyncClient(base_url=url, timeout=10) for url in redis_workers.urls()]
    yield pool
    for client in pool:
        await client.aclose()


@pytest.fixture(scope="module")
def account(redis_workers: Workers) -> str:
    # One account for the module: registration is throttled per address (5 an hour), and
    # every request here comes from 127.0.0.1.
    name = f"u{uuid.uuid4().hex[:12]}"
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    # Other modules of this run may have used 127.0.0.1's registration budget in this Redis.
    redis.Redis.from_url(REDIS_TEST_URL).delete("crudauth:rl:t:register:ip:127.0.0.1")
    r = httpx.post(f"{redis_workers.urls()[0]}/register", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return name


async def _signed_in(clients: list[httpx.AsyncClient], name: str) -> tuple[dict[str, str], int]:
    r = await clients[1].post("/login", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return session_cookies(r), r.json()["id"]


async def test_a_session_made_on_one_worker_works_on_all(clients, account):
    for _ in range(3):
        cookies, _ = await _signed_in(clients, account)
        answers = await together(
            [lambda c=c, h=cookie_header(cookies): c.get("/me", headers=h) for c in clients * 3]
        )
        assert [a.status_code for a in answers] == [200] * len(answers)


async def test_logout_on_one_worker_ends_the_session_everywhere(clients, account):
    for _ in range(3):
        cookies, _ = await _signed_in(clients, account)
        headers = {**cookie_header(cookies), "X-CSRF-Token": cookies["csrf_token"]}
        assert (await clients[2].post("/logout", headers=headers)).status_code == 200
        answers = await together(
            [lambda c=c, h=cookie_header(cookies): c.get("/me", headers=h) for c in clients]
        )
        assert [a.status_code for a in answers] == [401] * len(clients)


async def test_revoking_all_sessions_on_one_worker_takes_effect_everywhere(clients, account):
    cookies, user_id = await _signed_in(clients, account)
    revoked = (await clients[3].post(f"/_test/users/{user_id}/revoke-all")).json()["revoked"]
    assert revoked >= 1
    for client in clients:
        assert (await client.get("/me", headers=cookie_header(cookies))).status_code == 401


async def test_a_single_use_token_is_redeemed_exactly_once_across_workers(clients):
    for attempt in range(5):
        name = f"t{attempt}-{uuid.uuid4().hex}"
        assert (await clients[0].put(f"/_test/tokens/{name}")).status_code == 200
        answers = await together(
            [lambda c=c, u=f"/_test/tokens/{name}/redeem": c.post(u) for c in clients * 4]
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [200] + [400] * 15, codes


async def test_the_memory_backend_does_not_share_state(
    schema: str, tmp_path_factory: pytest.TempPathFactory
):
    workers = Workers("tests.apps.memory_app:app", _env(schema), count=2)
    workers.start(tmp_path_factory.mktemp("memory-workers"))
    try:
        async with (
            httpx.AsyncClient(base_url=workers.urls()[0]) as first,
            httpx.AsyncClient(base_url=workers.urls()[1]) as second,
        ):
            name = f"m{uuid.uuid4().hex[:12]}"
            body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
            assert (await first.post("/register", json=body)).status_code == 200
            r = await first.post("/login", data={"username": name, "password": PASSWORD})
            cookies = session_cookies(r)
            assert (await first.get("/me", headers=cookie_header(cookies))).status_code == 200
            # The other process has never heard of this session: per-process state.
            assert (await second.get("/me", headers=cookie_header(cookies))).status_code == 401
            await first.put("/_test/tokens/x")
            assert (await second.post("/_test/tokens/x/redeem")).status_code == 400
    finally:
        workers.stop()
    # ...which is exactly what the startup warning says, in every worker's log.
    assert workers.output().count("in-memory backend active") == 2
