"""Session races over four server processes sharing one Redis (SECURITY.md §3: S9, S13, S14).

Each scenario runs ``ROUNDS`` times: once in the default suite, 20 times with
``CRUDAUTH_LONG=1``. Every request of a burst is released at once by a start barrier.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import POSTGRES_URL
from tests.multiworker import (
    ROUNDS,
    cookie_header,
    forwarded_for,
    fresh_counters,
    postgres_schema,
    session_cookies,
    together,
)
from tests.race_support import (
    PASSWORD,
    RacePool,
    new_account,
    race_pool,
    sign_in,
    unsafe_headers,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

MAX_SESSIONS = 5  # SessionTransport's max_sessions_per_user default


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RacePool]:
    with (
        postgres_schema("crudauth_srace") as schema,
        race_pool(
            {"DATABASE_URL": POSTGRES_URL, "DATABASE_SCHEMA": schema},
            tmp_path_factory.mktemp("session-races"),
        ) as pool,
    ):
        yield pool


@pytest.fixture(autouse=True)
def _fresh_counters(pool: RacePool) -> None:
    fresh_counters(pool.prefix)  # each test independent of those that ran before it


@pytest.fixture
async def clients(pool: RacePool) -> AsyncIterator[list[httpx.AsyncClient]]:
    clients = [httpx.AsyncClient(base_url=url, timeout=20) for url in pool.workers.urls()]
    yield clients
    for client in clients:
        await client.aclose()


async def _statuses(clients: list[httpx.AsyncClient], cookies: dict[str, str]) -> list[int]:
    answers = await together(
        [lambda c=c: c.get("/me", headers=cookie_header(cookies)) for c in clients]
    )
    return [a.status_code for a in answers]


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_a_logout_during_a_request_on_another_worker_stays_a_logout(clients, round_):
    name, _ = await new_account(clients[0])
    cookies = await sign_in(clients[0], name)
    # Request A holds the session on worker 1 while worker 2 signs it out.
    held = asyncio.create_task(
        clients[1].get("/_test/slow?seconds=1", headers=cookie_header(cookies))
    )
    await asyncio.sleep(0.3)
    logout = await clients[2].post("/logout", headers=unsafe_headers(cookies))
    assert logout.status_code == 200, logout.text
    in_flight = await held
    assert in_flight.status_code == 200  # it was let in before the logout
    # Whatever A's response sets, neither it nor the old cookie is a session afterwards.
    reissued = session_cookies(in_flight)
    assert await _statuses(clients, cookies) == [401] * 4
    if reissued.get("session_id"):
        assert await _statuses(clients, {**cookies, **reissued}) == [401] * 4


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_twenty_concurrent_sign_ins_leave_exactly_the_cap_alive(clients, round_):
    name, _ = await new_account(clients[0])

    def login(client: httpx.AsyncClient):
        body = {"username": name, "password": PASSWORD}
        return lambda: client.post("/login", data=body, headers=forwarded_for())

    answers = await together([login(clients[i % 4]) for i in range(20)])
    # The lockout reserves a slot per identifier and per account before hashing, so at most
    # max_attempts (5) sign-ins of one account are evaluated at once. The others are refused
    # unevaluated: 429 by the identifier's budget, or 401 by the account's (which a client that
    # does not know the account is told as a wrong password). Every success frees its slots,
    # so at least the first five get through.
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 401, 429} and codes.count(200) >= MAX_SESSIONS, codes
    alive = [await _statuses(clients, session_cookies(a)) for a in answers if a.status_code == 200]
    # Each session is live on all four workers or on none.
    assert all(len(set(codes)) == 1 for codes in alive), alive
    assert sum(codes[0] == 200 for codes in alive) == MAX_SESSIONS, alive


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_sudo_in_one_session_opens_nothing_for_another_on_any_worker(clients, round_):
    name, _ = await new_account(clients[0])
    granted = await sign_in(clients[0], name)
    other = await sign_in(clients[1], name)
    r = await clients[2].post("/sudo", json={"password": PASSWORD}, headers=unsafe_headers(granted))
    assert r.status_code == 200, r.text
    granted = {**granted, **session_cookies(r)}  # sudo moves the session to a new id

    def sensitive(client: httpx.AsyncClient, cookies: dict[str, str]):
        return lambda: client.get("/_test/sensitive", headers=cookie_header(cookies))

    calls = [sensitive(c, other) for c in clients * 4] + [sensitive(c, granted) for c in clients]
    answers = await together(calls)
    codes = [a.status_code for a in answers]
    assert codes == [403] * 16 + [200] * 4, codes
