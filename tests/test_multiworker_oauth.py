"""OAuth over four server processes against the real OpenID Connect provider: the state is
shared (Redis or SQL), bound to the browser, and consumed once however many workers see it."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from crudauth import DatabaseStore
from tests.conftest import POSTGRES_URL, REDIS_TEST_URL
from tests.multiworker import (
    ROUNDS,
    Workers,
    cookie_header,
    drop_keys,
    forwarded_for,
    postgres_schema,
    session_cookies,
    together,
)
from tests.oidc_support import ALICE, POST_CLIENT_ID, OIDCProvider, complete_login

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

REGISTERED = "http://testserver"


def create_store_tables(schema: str) -> None:
    from tests.apps.common import make_engine

    async def run() -> None:
        engine = make_engine(POSTGRES_URL, schema)
        try:
            from sqlalchemy.ext.asyncio import async_sessionmaker

            await DatabaseStore(async_sessionmaker(engine)).create_tables()
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="module", params=["redis", "sql"])
def workers(
    request: pytest.FixtureRequest,
    oidc_provider: OIDCProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Workers]:
    client = oidc_provider.client(POST_CLIENT_ID)
    prefix = f"crudauth:test-{uuid.uuid4().hex[:10]}:rl:"
    with postgres_schema("crudauth_oauthmw") as schema:
        if request.param == "sql":
            create_store_tables(schema)
        pool = Workers(
            "tests.apps.oauth_app:app",
            {
                "DATABASE_URL": POSTGRES_URL,
                "DATABASE_SCHEMA": schema,
                "REDIS_URL": REDIS_TEST_URL,
                "RATE_LIMIT_PREFIX": prefix,
                "SECRET_KEY": secrets.token_urlsafe(48),
                "STORE": request.param,
                "OIDC_ISSUER": oidc_provider.issuer,
                "OIDC_CLIENT_ID": client.client_id,
                "OIDC_CLIENT_SECRET": client.client_secret,
            },
            count=4,
        )
        pool.start(tmp_path_factory.mktemp(f"oauth-workers-{request.param}"), timeout=120)
        try:
            yield pool
        finally:
            pool.stop()
            drop_keys(REDIS_TEST_URL, f"{prefix}*")


@pytest.fixture
async def clients(workers: Workers) -> AsyncIterator[list[httpx.AsyncClient]]:
    clients = [httpx.AsyncClient(base_url=url, timeout=20) for url in workers.urls()]
    yield clients
    for client in clients:
        await client.aclose()


async def provider_callback(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """Authorize on ``client``'s worker and sign in at the provider: the callback's path and
    query, and the browser's state cookie."""
    start = await client.get("/oauth/corp/authorize", headers=forwarded_for())
    assert start.status_code == 307, start.text
    callback = await complete_login(start.headers["location"], ALICE.email, ALICE.password)
    assert callback.startswith(f"{REGISTERED}/oauth/corp/callback?")
    return callback.removeprefix(REGISTERED), {"oauth_state": start.cookies["oauth_state"]}


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_authorize_on_one_worker_and_the_callback_on_another_signs_in(clients, round_):
    path, state_cookie = await provider_callback(clients[0])
    answer = await clients[1].get(path, headers={**cookie_header(state_cookie), **forwarded_for()})
    assert answer.status_code == 307, answer.text
    assert answer.headers["location"] == f"{REGISTERED}/"
    me = await clients[2].get("/me", headers=cookie_header(session_cookies(answer)))
    assert me.status_code == 200 and me.json()["email"] == ALICE.email


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_one_state_sent_to_four_workers_at_once_makes_exactly_one_session(clients, round_):
    path, state_cookie = await provider_callback(clients[0])
    headers = {**cookie_header(state_cookie), **forwarded_for()}
    answers = await together([lambda c=c: c.get(path, headers=headers) for c in clients])
    locations = sorted(a.headers.get("location", str(a.status_code)) for a in answers)
    assert locations == [f"{REGISTERED}/"] + [f"{REGISTERED}/?error=invalid_state"] * 3
    sessions = [session_cookies(a) for a in answers if session_cookies(a).get("session_id")]
    assert len(sessions) == 1
    me = await clients[3].get("/me", headers=cookie_header(sessions[0]))
    assert me.status_code == 200
