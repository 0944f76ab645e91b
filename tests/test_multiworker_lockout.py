"""Lockout and throttles across four server processes sharing one Redis (SECURITY.md §3)."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from tests.conftest import POSTGRES_URL, REDIS_TEST_URL
from tests.multiworker import (
    ROUNDS,
    Workers,
    client_address,
    cookie_header,
    drop_keys,
    fresh_counters,
    postgres_schema,
    session_cookies,
    together,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

PASSWORD = "correct horse battery staple"
REDIS_URL = REDIS_TEST_URL
THRESHOLD = 5  # LockoutConfig().max_attempts


@pytest.fixture(scope="module")
def counter_key() -> str:
    return f"crudauth-test:verifications:{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def workers(counter_key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    with postgres_schema("crudauth_lock") as schema:
        yield from _workers(schema, counter_key, tmp_path_factory)


def _workers(
    schema: str, counter_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    env = {
        "DATABASE_URL": POSTGRES_URL,
        "DATABASE_SCHEMA": schema,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "HASH_COUNTER_KEY": counter_key,
        "RATE_LIMIT_PREFIX": f"crudauth:test-{uuid.uuid4().hex[:10]}:rl:",
    }
    pool = Workers("tests.apps.lockout_app:app", env, count=4)
    pool.start(tmp_path_factory.mktemp("lockout-workers"))
    yield pool
    pool.stop()
    drop_keys(REDIS_URL, f"{env['RATE_LIMIT_PREFIX']}*")


@pytest.fixture(autouse=True)
def _fresh_counters(workers: Workers) -> None:
    fresh_counters(workers.env["RATE_LIMIT_PREFIX"])  # each test independent of earlier ones


@pytest.fixture
async def clients(workers: Workers) -> AsyncIterator[list[httpx.AsyncClient]]:
    # A fresh connection per request: a kept-alive one that the server closes after its idle
    # timeout (5 s) races the next burst's request and fails it with ReadError.
    fresh = httpx.Limits(max_keepalive_connections=0)
    pool = [httpx.AsyncClient(base_url=url, timeout=60, limits=fresh) for url in workers.urls()]
    yield pool
    for client in pool:
        await client.aclose()


@pytest.fixture
def verifications(counter_key: str) -> Iterator[callable]:
    sync = redis.Redis.from_url(REDIS_URL)
    sync.delete(counter_key)

    def read() -> int:
        return int(sync.get(counter_key) or 0)

    yield read
    sync.delete(counter_key)
    sync.close()


async def _account(client: httpx.AsyncClient) -> str:
    name = f"u{uuid.uuid4().hex[:12]}"
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    r = await client.post("/register", json=body, headers={"X-Forwarded-For": client_address()})
    assert r.status_code == 200, r.text
    return name


def _login(client: httpx.AsyncClient, name: str, password: str, address: str, **headers: str):
    return lambda: client.post(
        "/login",
        data={"username": name, "password": password},
        headers={"X-Forwarded-For": address, **headers},
    )


async def test_parallel_guessing_evaluates_at_most_the_threshold(clients, verifications):
    for _ in range(3):
        name = await _account(clients[0])
        before = verifications()
        addresses = [f"203.0.113.{i}" for i in range(1, 51)]
        calls = [_login(clients[i % 4], name, f"wrong-{i}", addresses[i % 50]) for i in range(200)]
        answers = await together(calls, timeout=120)  # a bound, not a timing claim
        evaluated = verifications() - before
        assert evaluated <= THRESHOLD, evaluated
        codes = sorted(a.status_code for a in answers)
        assert codes == [401] * evaluated + [429] * (200 - evaluated), {
            c: codes.count(c) for c in set(codes)
        }
        # Even the right password now gets the lock answer, without being checked.
        locked = await _login(clients[3], name, PASSWORD, client_address())()
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
        assert verifications() - before == evaluated


async def test_the_right_password_hidden_in_a_burst_wins_only_inside_the_threshold(
    clients, verifications
):
    for _ in range(3):
        name = await _account(clients[0])
        before = verifications()
        calls = [_login(clients[i % 4], name, f"wrong-{i}", client_address()) for i in range(25)]
        calls.append(_login(clients[1], name, PASSWORD, client_address()))
        answers = await together(calls)
        evaluated = verifications() - before
        right = answers[-1].status_code
        assert right in (200, 429)
        # Refused: the burst evaluated at most the threshold. Admitted: it was one of the first
        # THRESHOLD, and its success cleared the identifier and the account (as the owner's
        # sign-in does), so guesses still in flight after it start a fresh budget: at most
        # THRESHOLD more. Which of the two happens depends on arrival order across workers.
        assert evaluated <= (2 * THRESHOLD if right == 200 else THRESHOLD), (right, evaluated)
        # A success frees its slot and clears the identifier: at most one more evaluation.
        assert sum(a.status_code != 429 for a in answers) == evaluated


async def test_n_workers_times_m_requests_allow_exactly_the_limit(clients, workers):
    bucket = client_address()
    for round_ in range(3):
        fresh_counters(workers.env["RATE_LIMIT_PREFIX"])
        calls = [
            lambda c=c: c.get("/_test/limited", headers={"X-Forwarded-For": bucket})
            for c in clients * 10
        ]
        answers = await together(calls)
        assert sum(a.status_code == 200 for a in answers) == 10, round_
        assert all(a.status_code in (200, 429) for a in answers)
        assert all("Retry-After" in a.headers for a in answers if a.status_code == 429)


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(clients):
    bucket = client_address()
    # One trusted hop: the proxy's own view (the rightmost entry) is the client; anything the
    # client wrote further left is ignored, so rotating it does not get a fresh bucket.
    calls = [
        lambda c=c, i=i: c.get(
            "/_test/limited", headers={"X-Forwarded-For": f"10.9.{i}.1, {bucket}"}
        )
        for i, c in enumerate(clients * 5)
    ]
    answers = await together(calls)
    assert sum(a.status_code == 200 for a in answers) == 10


async def test_a_known_browser_signs_in_while_an_attacker_holds_the_account_locked(clients):
    name = await _account(clients[0])
    home = "198.51.100.77"
    first = await _login(clients[0], name, PASSWORD, home)()
    assert first.status_code == 200
    device = {k: v for k, v in session_cookies(first).items() if "device" in k}
    assert device, "no device cookie was issued"
    attack = [_login(clients[i % 4], name, f"guess-{i}", f"203.0.113.{i}") for i in range(30)]
    await together(attack)
    stranger = await _login(clients[1], name, PASSWORD, "198.51.100.200")()
    assert stranger.status_code == 429  # the account is locked for everyone else
    owner = await _login(clients[2], name, PASSWORD, home, **cookie_header(device))()
    assert owner.status_code == 200, owner.text  # ...but not for the browser it knows


class _Monitor:
    """Every command Redis executes, in its own order, while the block runs (Redis MONITOR).

    Only this database's commands are kept; the commands a Lua script runs are listed with
    ``client_type == "lua"``, in the order Redis ran them.
    """

    def __init__(self) -> None:
        self.marker = f"crudauth-test-stop-{uuid.uuid4().hex}"
        self.commands: list[dict] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        db = client.connection_pool.connection_kwargs.get("db", 0)
        try:
            with client.monitor() as monitor:
                self._ready.set()
                for entry in monitor.listen():
                    if entry["db"] == db:
                        self.commands.append(entry)
                    if self.marker in entry["command"]:
                        return
        finally:
            client.close()

    def __enter__(self) -> _Monitor:
        self._thread.start()
        assert self._ready.wait(5)
        time.sleep(0.1)  # MONITOR is registered once the server has answered it
        return self

    def __exit__(self, *exc: object) -> None:
        sync = redis.Redis.from_url(REDIS_URL)
        try:
            sync.echo(self.marker)
        finally:
            sync.close()
        self._thread.join(10)
        assert not self._thread.is_alive(), "MONITOR never saw the stop marker"


def _counter_history(commands: list[dict], kind: str) -> dict[str, list[int | None]]:
    """Per counter key of ``kind``: each value its script wrote to ``a``; ``None`` for a DEL."""
    history: dict[str, list[int | None]] = {}
    for entry in commands:
        words = entry["command"].split()
        if len(words) < 2 or f":{kind}:" not in words[1]:
            continue
        if entry["client_type"] == "lua" and words[0] == "HSET" and words[2] == "a":
            history.setdefault(words[1], []).append(int(words[3]))
        elif entry["client_type"] != "lua" and words[0] == "DEL":
            history.setdefault(words[1], []).append(None)
    return history


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_a_success_amid_failures_on_other_workers_loses_no_increment(clients, round_):
    name = await _account(clients[0])
    failures = THRESHOLD - 1  # below the lock, so that every attempt is evaluated
    calls = [_login(clients[i % 4], name, f"wrong-{i}", client_address()) for i in range(failures)]
    calls.insert(failures // 2, _login(clients[3], name, PASSWORD, client_address()))
    with _Monitor() as monitor:
        answers = await together(calls)
    assert sorted(a.status_code for a in answers) == [200] + [401] * failures
    sync = redis.Redis.from_url(REDIS_URL)
    try:
        for kind in ("user", "acct"):  # the identifier's counter and the account's
            [(key, history)] = _counter_history(monitor.commands, kind).items()
            # Every reservation counted one more than the last value, or one after a reset:
            # none read a stale count (a lost increment would repeat a value).
            previous = 0
            for value in history:
                if value is not None:
                    assert value == previous + 1, history
                previous = value or 0
            after_reset = len(history) - 1 - history.index(None) if None in history else 0
            # The success's reset (its DEL) wiped the failures recorded before it; what is
            # left are exactly the failures recorded after it.
            assert None in history, history
            assert int(sync.hget(key, "a") or 0) == previous == after_reset, history
    finally:
        sync.close()
