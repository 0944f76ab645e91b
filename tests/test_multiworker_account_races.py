"""Account races over four server processes sharing one Redis (SECURITY.md §3: S4, S11, S12).

Each scenario runs ``ROUNDS`` times: once in the default suite, 20 times with
``CRUDAUTH_LONG=1``. Every request of a burst is released at once by a start barrier.
"""

from __future__ import annotations

import uuid
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
    sqlite_database,
    together,
)
from tests.race_support import PASSWORD, RacePool, new_account, race_pool, sign_in, unsafe_headers

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

RESET_MAILS_PER_TARGET = 5  # the silent per-address limit of password_reset_request, an hour


@pytest.fixture(scope="module")
def postgres_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RacePool]:
    with (
        postgres_schema("crudauth_arace") as schema,
        race_pool(
            {"DATABASE_URL": POSTGRES_URL, "DATABASE_SCHEMA": schema},
            tmp_path_factory.mktemp("account-races-pg"),
        ) as pool,
    ):
        yield pool


@pytest.fixture(scope="module")
def sqlite_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RacePool]:
    directory = tmp_path_factory.mktemp("account-races-sqlite")
    with (
        sqlite_database(directory) as url,
        race_pool({"DATABASE_URL": url}, directory) as pool,
    ):
        yield pool


async def _clients(pool: RacePool) -> list[httpx.AsyncClient]:
    return [httpx.AsyncClient(base_url=url, timeout=30) for url in pool.workers.urls()]


@pytest.fixture
async def clients(postgres_pool: RacePool) -> AsyncIterator[list[httpx.AsyncClient]]:
    fresh_counters(postgres_pool.prefix)  # each test independent of those before it
    clients = await _clients(postgres_pool)
    yield clients
    for client in clients:
        await client.aclose()


async def _email(client: httpx.AsyncClient, cookies: dict[str, str]) -> str:
    r = await client.get("/me", headers=cookie_header(cookies))
    assert r.status_code == 200, r.text
    return str(r.json()["email"])


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_of_two_concurrent_email_changes_exactly_one_lands_and_only_its_own(
    clients, postgres_pool, round_
):
    name, original = await new_account(clients[0])
    cookies = await sign_in(clients[0], name)
    first, second = (f"{tag}-{uuid.uuid4().hex[:10]}@example.com" for tag in ("a", "b"))

    def change(client: httpx.AsyncClient, to: str):
        body = {"new_email": to, "password": PASSWORD}
        return lambda: client.post(
            "/email/change-request", json=body, headers=unsafe_headers(cookies)
        )

    requested = await together([change(clients[1], first), change(clients[2], second)])
    assert [r.status_code for r in requested] == [200, 200], [r.text for r in requested]
    tokens = {to: await postgres_pool.token("change_email", to) for to in (first, second)}

    def confirm(client: httpx.AsyncClient, to: str):
        return lambda: client.post("/email/change-confirm", json={"token": tokens[to]})

    order = [first, second, first, second]
    answers = await together([confirm(c, to) for c, to in zip(clients, order, strict=True)])
    codes = [a.status_code for a in answers]
    assert sorted(codes) == [200, 400, 400, 400], codes
    winner = order[codes.index(200)]
    assert await _email(clients[3], cookies) == winner
    # Either token again, on any worker: refused, and the address stays the winner's.
    again = await together([confirm(c, to) for c, to in zip(clients, order, strict=True)])
    assert [a.status_code for a in again] == [400] * 4
    assert await _email(clients[0], cookies) == winner != original


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_a_hundred_reset_requests_for_one_account_send_at_most_the_limit(
    clients, postgres_pool, round_
):
    _, email = await new_account(clients[0])

    def ask(client: httpx.AsyncClient):
        return lambda: client.post(
            "/password/reset-request", json={"email": email}, headers=forwarded_for()
        )

    answers = await together([ask(clients[i % 4]) for i in range(100)], timeout=60)
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1  # one body for sent and unsent alike
    # The per-target count is shared by every worker: the limit in total, not per worker.
    sent = await postgres_pool.settled_mails("reset_password", email, RESET_MAILS_PER_TARGET)
    assert sent == RESET_MAILS_PER_TARGET, sent


def _spellings(tag: str) -> list[str]:
    """Ten spellings of one address: case, and NFKC (fullwidth letters, a ligature-free fold)."""
    forms = [
        f"Bob.{tag}@example.com",
        f"bob.{tag}@example.com",
        f"\uff42\uff4f\uff42.{tag}@example.com",  # fullwidth "bob": NFKC folds it to ASCII
        f"BOB.{tag}@EXAMPLE.COM",
        f"  bob.{tag}@Example.com ",
    ]
    return [forms[i % len(forms)] for i in range(10)]


@pytest.fixture(params=["postgres", "sqlite"])
def any_pool(request: pytest.FixtureRequest) -> RacePool:
    pool: RacePool = request.getfixturevalue(f"{request.param}_pool")
    fresh_counters(pool.prefix)  # each test independent of those before it
    return pool


async def test_ten_concurrent_sign_ups_for_one_address_make_exactly_one_account(any_pool):
    pool = any_pool
    clients = await _clients(pool)
    try:
        for _ in range(ROUNDS):
            tag = uuid.uuid4().hex[:10]
            names = [f"s{tag}{i}" for i in range(10)]

            def sign_up(client: httpx.AsyncClient, name: str, email: str):
                body = {"username": name, "email": email, "password": PASSWORD}
                return lambda: client.post("/register", json=body, headers=forwarded_for())

            calls = [
                sign_up(clients[i % 4], name, email)
                for i, (name, email) in enumerate(zip(names, _spellings(tag), strict=True))
            ]
            answers = await together(calls, timeout=60)
            assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
            assert len({a.content for a in answers}) == 1  # the generic reply, whoever won
            logins = await together(
                [
                    lambda c=clients[i % 4], n=n: c.post(
                        "/login",
                        data={"username": n, "password": PASSWORD},
                        headers=forwarded_for(),
                    )
                    for i, n in enumerate(names)
                ]
            )
            assert sorted(a.status_code for a in logins) == [200] + [401] * 9
    finally:
        for client in clients:
            await client.aclose()
