"""One refresh token, four worker processes, one Redis: exactly one new pair (SECURITY S5).

The losers of the race prove that a copy of the token exists, so the family is revoked,
including the winner's fresh refresh token (RFC 9700 §4.14.2).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest

from tests.conftest import POSTGRES_URL, REDIS_TEST_URL
from tests.multiworker import Workers, drop_keys, fresh_counters, postgres_schema, together

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    with postgres_schema("crudauth_mwb") as name:
        yield name


@pytest.fixture(scope="module")
def workers(schema: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    env = {
        "DATABASE_URL": POSTGRES_URL,
        "DATABASE_SCHEMA": schema,
        "REDIS_URL": REDIS_TEST_URL,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "RATE_LIMIT_PREFIX": f"crudauth:test-{uuid.uuid4().hex[:10]}:rl:",
    }
    pool = Workers("tests.apps.bearer_app:app", env, count=4)
    pool.start(tmp_path_factory.mktemp("bearer-workers"))
    yield pool
    pool.stop()
    drop_keys(REDIS_TEST_URL, f"{env['RATE_LIMIT_PREFIX']}*")


@pytest.fixture(autouse=True)
def _fresh_counters(workers: Workers) -> None:
    # Every sign-in here comes from 127.0.0.1: each test starts with that address's budget.
    fresh_counters(workers.env["RATE_LIMIT_PREFIX"])


@pytest.fixture
async def clients(workers: Workers) -> AsyncIterator[list[httpx.AsyncClient]]:
    pool = [httpx.AsyncClient(base_url=url, timeout=10) for url in workers.urls()]
    yield pool
    for client in pool:
        await client.aclose()


async def _tokens(clients: list[httpx.AsyncClient]) -> dict[str, str]:
    name = f"u{uuid.uuid4().hex[:12]}"
    r = await clients[0].post(
        "/register", json={"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    r = await clients[1].post("/token", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    tokens: dict[str, str] = r.json()
    return tokens


def _refresh(client: httpx.AsyncClient, token: str) -> Callable[[], Awaitable[httpx.Response]]:
    return lambda: client.post("/refresh", json={"refresh_token": token})


async def test_an_access_token_works_on_every_worker(clients):
    tokens = await _tokens(clients)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    answers = await together([lambda c=c: c.get("/me", headers=headers) for c in clients])
    assert [a.status_code for a in answers] == [200] * len(clients)


async def test_a_rotation_on_one_worker_holds_on_all(clients):
    tokens = await _tokens(clients)
    token = tokens["refresh_token"]
    for client in clients * 2:  # each worker rotates the token the previous one issued
        r = await client.post("/refresh", json={"refresh_token": token})
        assert r.status_code == 200, r.text
        token = r.json()["refresh_token"]


@pytest.mark.parametrize("generation", [0, 1])
async def test_one_refresh_token_at_four_workers_gives_one_pair_then_revokes(clients, generation):
    for _ in range(5):
        token = (await _tokens(clients))["refresh_token"]
        if generation:
            r = await clients[0].post("/refresh", json={"refresh_token": token})
            token = r.json()["refresh_token"]
        answers = await together([_refresh(c, token) for c in clients])
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 401, 401, 401], codes
        winner = next(a for a in answers if a.status_code == 200).json()
        # The family is revoked everywhere: the winner's new refresh token is dead too.
        again = await together([_refresh(c, winner["refresh_token"]) for c in clients])
        assert [a.status_code for a in again] == [401] * len(clients)
        # The access token already issued stays valid until it expires (bounded by access_ttl).
        headers = {"Authorization": f"Bearer {winner['access_token']}"}
        assert (await clients[3].get("/me", headers=headers)).status_code == 200


async def test_a_replay_on_one_worker_revokes_the_family_on_all(clients):
    tokens = await _tokens(clients)
    first = await clients[2].post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    spent = tokens["refresh_token"]
    # Replaying the spent token on another worker revokes the family for all of them.
    assert (await clients[3].post("/refresh", json={"refresh_token": spent})).status_code == 401
    live = first.json()["refresh_token"]
    answers = await together([_refresh(c, live) for c in clients])
    assert [a.status_code for a in answers] == [401] * len(clients)


async def test_after_a_flushall_no_earlier_refresh_token_works_on_any_worker(clients):
    import redis.asyncio

    unused = (await _tokens(clients))["refresh_token"]
    spent = (await _tokens(clients))["refresh_token"]
    r = await clients[1].post("/refresh", json={"refresh_token": spent})
    assert r.status_code == 200
    live = r.json()["refresh_token"]
    assert (await clients[2].post("/refresh", json={"refresh_token": spent})).status_code == 401
    store = redis.asyncio.Redis.from_url(REDIS_TEST_URL)
    try:
        await store.flushdb()  # the data loss: the revocation and every record are gone
    finally:
        await store.aclose()
    for token in (unused, spent, live):
        answers = await together([_refresh(c, token) for c in clients])
        assert [a.status_code for a in answers] == [401] * len(clients)
    fresh = (await _tokens(clients))["refresh_token"]  # signing in again works everywhere
    assert (await clients[3].post("/refresh", json={"refresh_token": fresh})).status_code == 200
