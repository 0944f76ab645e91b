"""Two-factor sign-in over four server processes sharing one Redis and one PostgreSQL schema
(SECURITY.md §3, S6): a code is accepted once per account and step, and wrong codes are counted
once, wherever they land. Every burst is released at once by a start barrier.

Each scenario runs ``ROUNDS`` times: once in the default suite, 20 times with
``CRUDAUTH_LONG=1``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pyotp
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import POSTGRES_URL, REDIS_TEST_URL
from tests.mfa_support import MfaBase, wrong_code
from tests.multiworker import (
    ROUNDS,
    Workers,
    cookie_header,
    drop_keys,
    forwarded_for,
    fresh_counters,
    session_cookies,
    together,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

PASSWORD = "correct horse battery staple"
THRESHOLD = 10  # tests/apps/mfa_app.py: LockoutConfig(max_attempts=10)


async def _schema(statement: str, name: str, create: bool = False) -> None:
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
            if create:
                await conn.execute(text(f"SET search_path TO {name}"))
                await conn.run_sync(MfaBase.metadata.create_all)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    schema = f"crudauth_mfa_{uuid.uuid4().hex[:10]}"
    prefix = f"crudauth:test-{uuid.uuid4().hex[:10]}:rl:"
    asyncio.run(_schema(f"CREATE SCHEMA {schema}", schema, create=True))
    pool = Workers(
        "tests.apps.mfa_app:app",
        {
            "DATABASE_URL": POSTGRES_URL,
            "DATABASE_SCHEMA": schema,
            "REDIS_URL": REDIS_TEST_URL,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "MFA_KEY": Fernet.generate_key().decode(),
            "RATE_LIMIT_PREFIX": prefix,
        },
        count=4,
    )
    pool.start(tmp_path_factory.mktemp("mfa-races"), timeout=120)  # a loaded machine
    try:
        yield pool
    finally:
        pool.stop()
        drop_keys(REDIS_TEST_URL, f"{prefix}*")
        asyncio.run(_schema(f"DROP SCHEMA {schema} CASCADE", schema))


@pytest.fixture(autouse=True)
def _fresh_counters(workers: Workers) -> None:
    # Enrolment confirms the password from 127.0.0.1: each test starts with that address's
    # budget, however many tests ran before it in this process (``--count``).
    fresh_counters(workers.env["RATE_LIMIT_PREFIX"])


@pytest.fixture
async def clients(workers: Workers) -> AsyncIterator[list[httpx.AsyncClient]]:
    clients = [httpx.AsyncClient(base_url=url, timeout=20) for url in workers.urls()]
    yield clients
    for client in clients:
        await client.aclose()


async def enrolled_account(client: httpx.AsyncClient) -> tuple[str, str]:
    """A new account with TOTP on; its name and secret. The enrolment claims the previous
    step, so the current code is still unspent."""
    name = f"u{uuid.uuid4().hex[:12]}"
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    r = await client.post("/register", json=body, headers=forwarded_for())
    assert r.status_code == 200, r.text
    r = await client.post(
        "/login", data={"username": name, "password": PASSWORD}, headers=forwarded_for()
    )
    assert r.status_code == 200, r.text
    cookies = session_cookies(r)
    headers = {**cookie_header(cookies), "X-CSRF-Token": cookies["csrf_token"]}
    r = await client.post("/mfa/totp/setup", json={"password": PASSWORD}, headers=headers)
    secret = r.json()["secret"]
    previous = pyotp.TOTP(secret).at(time.time() - 30)
    r = await client.post("/mfa/totp/confirm", json={"code": previous}, headers=headers)
    assert r.status_code == 200, r.text
    assert (await client.post("/logout", headers=headers)).status_code == 200
    return name, secret


async def pending(client: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str]]:
    """A sign-in stopped at its challenge: the token and the binding cookie."""
    r = await client.post(
        "/login", data={"username": name, "password": PASSWORD}, headers=forwarded_for()
    )
    assert r.status_code == 200 and r.json()["mfa_required"], r.text
    return r.json()["challenge"], session_cookies(r)


def answer(client: httpx.AsyncClient, challenge: str, cookies: dict[str, str], code: str):
    return lambda: client.post(
        "/mfa/verify",
        json={"challenge": challenge, "code": code},
        headers={**cookie_header(cookies), **forwarded_for()},
    )


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_one_code_on_four_workers_at_once_makes_one_session(clients, round_):
    name, secret = await enrolled_account(clients[0])
    challenges = [await pending(clients[i], name) for i in range(4)]
    code = pyotp.TOTP(secret).now()
    answers = await together(
        [
            answer(c, token, cookies, code)
            for c, (token, cookies) in zip(clients, challenges, strict=True)
        ]
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 401, 401, 401], [a.text for a in answers]
    assert sum("session_id=" in a.headers.get("set-cookie", "") for a in answers) == 1


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_one_challenge_on_four_workers_at_once_is_answered_once(clients, round_):
    name, secret = await enrolled_account(clients[0])
    token, cookies = await pending(clients[0], name)
    code = pyotp.TOTP(secret).now()
    answers = await together([answer(c, token, cookies, code) for c in clients])
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 200 and statuses.count(200) == 1, [a.text for a in answers]
    assert set(statuses[1:]) <= {400, 401}


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_twenty_wrong_codes_over_four_workers_lock_at_the_threshold(clients, round_):
    name, secret = await enrolled_account(clients[0])
    token, cookies = await pending(clients[0], name)  # the password holds one slot
    bad = wrong_code(secret, time.time())
    answers = await together([answer(clients[i % 4], token, cookies, bad) for i in range(20)])
    statuses = [a.status_code for a in answers]
    assert statuses.count(401) == THRESHOLD - 1, statuses  # not 4 x the threshold
    assert statuses.count(429) == 20 - (THRESHOLD - 1), statuses
    right = await answer(clients[1], token, cookies, pyotp.TOTP(secret).now())()
    assert right.status_code == 429  # locked for every worker, even for the right code
