"""The fault matrix of SECURITY.md §4 for Redis and the mailer, each fault made real.

A private ``redis-server`` (see ``tests/test_production.py``) is killed, restarted empty,
flushed, or slowed down through a loopback proxy that delays every byte. For each fault: what
the client gets (a session is never answered as anonymous, never with a 500), what is lost,
and that the app recovers without a restart. docs/going-to-production.md tabulates the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from crudauth import CookieConfig, CRUDAuth
from tests.conftest import User
from tests.email_support import PASSWORD, Outbox, email_config
from tests.test_production import db, private_redis  # noqa: F401 - fixtures

pytestmark = pytest.mark.redis

THRESHOLD = 5  # LockoutConfig().max_attempts


@pytest.fixture
async def app_on(db: Any) -> AsyncIterator[Any]:  # noqa: F811
    """Builds an app on a given Redis URL; shuts every one down afterwards."""
    get_session, _ = db
    built: list[CRUDAuth] = []

    async def build(url: str, outbox: Outbox | None = None) -> httpx.AsyncClient:
        auth = CRUDAuth(
            session=get_session,
            user_model=User,
            SECRET_KEY=secrets.token_urlsafe(48),
            redis_url=url,
            cookies=CookieConfig(secure=False),
            email=email_config(outbox or Outbox()),
        )
        await auth.initialize()
        built.append(auth)
        app = FastAPI()
        app.include_router(auth.router)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        return httpx.AsyncClient(transport=transport, base_url="http://t")

    yield build
    for auth in built:
        await auth.shutdown()


async def _signed_up(client: httpx.AsyncClient, name: str = "alice") -> None:
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    assert (await client.post("/register", json=body)).status_code == 202


async def _login(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/login", data={"username": "alice", "password": password})


async def _reset_token(client: httpx.AsyncClient, outbox: Outbox) -> str:
    await client.post("/password/reset-request", json={"email": "alice@example.com"})
    return outbox.last_token("reset_password")


async def _reset(client: httpx.AsyncClient, token: str, password: str) -> int:
    return (await _reset_answer(client, token, password)).status_code


async def _reset_answer(
    client: httpx.AsyncClient, token: str, password: str = "a replayed password"
) -> httpx.Response:
    body = {"token": token, "new_password": password}
    return await client.post("/password/reset-confirm", json=body)


async def _settled(call: Any) -> httpx.Response:
    """The answer once the client has replaced connections that died with the server.

    A connection pooled before a Redis restart fails on its next use: that request answers
    503 (never 500, never anonymous) and the connection is dropped; the next one reconnects.
    """
    for _ in range(10):
        response: httpx.Response = await call()
        if response.status_code != 503:
            return response
        assert response.headers["Retry-After"] == "5"
        await asyncio.sleep(0.1)
    raise AssertionError("still 503 after ten attempts")


async def _lose_everything(how: str, url: str, holder: dict[str, Any]) -> None:
    if how == "flushall":
        store = Redis.from_url(url)
        try:
            await store.flushall()
        finally:
            await store.aclose()
    else:  # killed without persistence, then started again: empty
        holder["proc"].kill()
        holder["proc"].wait(timeout=10)
        holder["proc"] = holder["launch"]()


@pytest.mark.parametrize("how", ["flushall", "restarted-empty"])
async def test_redis_losing_its_data_signs_out_and_revives_no_single_use_token(
    app_on,
    private_redis,  # noqa: F811 - the imported fixture
    how,
):
    url, holder, _ = private_redis
    outbox = Outbox()
    client = await app_on(url, outbox)
    await _signed_up(client)
    assert (await _login(client)).status_code == 200
    spent = await _reset_token(client, outbox)
    assert await _reset(client, spent, "the first new password") == 200
    assert (await _login(client, "the first new password")).status_code == 200
    unspent = await _reset_token(client, outbox)
    for i in range(THRESHOLD + 1):  # lock the account
        await _login(client, f"wrong {i}")
    assert (await _login(client, "the first new password")).status_code == 429

    await _lose_everything(how, url, holder)

    # Signed out (401, not 503: the store answers, the session is simply gone).
    r = await _settled(lambda: client.get("/me"))
    assert r.status_code == 401, r.text
    # A spent link stays spent: the token is bound to the password hash in the database.
    assert (await _settled(lambda: _reset_answer(client, spent))).status_code == 400
    # An unspent link dies with its record: the user asks again.
    assert (await _settled(lambda: _reset_answer(client, unspent))).status_code == 400
    # The lockout counters were only in Redis: the lock is forgotten (documented).
    r = await _settled(lambda: _login(client, "the first new password"))
    assert r.status_code == 200, r.text
    assert (await client.get("/me")).status_code == 200


async def test_redis_killed_under_traffic_answers_200_or_503_never_anonymous(
    app_on,
    private_redis,  # noqa: F811 - the imported fixture
):
    url, holder, _ = private_redis
    client = await app_on(url)
    await _signed_up(client)
    assert (await _login(client)).status_code == 200
    codes: list[int] = []

    killed = asyncio.Event()

    async def traffic() -> None:
        deadline = time.monotonic() + 20  # a bound only: the loop ends 20 requests after the kill
        after_kill = 0
        while time.monotonic() < deadline and after_kill < 20:
            codes.append((await client.get("/me")).status_code)
            after_kill += killed.is_set()

    async def kill_midway() -> None:
        for _ in range(2000):  # after a few answered requests, however slow the machine is
            if len(codes) >= 5:
                break
            await asyncio.sleep(0.01)
        holder["proc"].send_signal(signal.SIGKILL)
        holder["proc"].wait(timeout=10)
        killed.set()

    await asyncio.gather(traffic(), kill_midway())
    assert set(codes) == {200, 503}, sorted(set(codes))
    assert codes[0] == 200 and codes[-1] == 503
    holder["proc"] = holder["launch"]()  # back, empty: signed out, and sign-in works again
    assert (await _settled(lambda: client.get("/me"))).status_code == 401
    assert (await _settled(lambda: _login(client))).status_code == 200
    assert (await client.get("/me")).status_code == 200


class DelayingProxy:
    """A loopback TCP proxy that holds every chunk for ``delay`` seconds before passing it on."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> DelayingProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        for task in (
            asyncio.create_task(self._pipe(reader, upstream_writer)),
            asyncio.create_task(self._pipe(upstream_reader, writer)),
        ):
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


async def test_a_redis_slower_than_the_socket_timeout_answers_503_then_recovers(
    app_on,
    private_redis,  # noqa: F811 - the imported fixture
    caplog,
):
    _, _, port = private_redis
    async with DelayingProxy(port) as proxy:
        client = await app_on(proxy.url)
        await _signed_up(client)
        assert (await _login(client)).status_code == 200
        proxy.delay = 3.0  # beyond the 2 s socket timeout of the clients crudauth builds
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="crudauth"):
            slow = await client.get("/me")
        took = time.monotonic() - started
        assert slow.status_code == 503 and slow.headers["Retry-After"] == "5", slow.text
        # The 503 itself shows the socket timeout answered (the slow reply would be a 200);
        # the timeout cannot fire early. No upper bound: a loaded machine only adds to it.
        assert took >= 1.5, took
        assert "unavailable" in caplog.text
        proxy.delay = 0.0
        await asyncio.sleep(1.0)  # the timed-out connection was dropped; a new one is fast
        assert (await client.get("/me")).status_code == 200  # same session, no restart


class HangingOutbox(Outbox):
    """A mail server that accepts the message and does not answer until the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.sends = 0

    async def send(self, **message: Any) -> None:  # type: ignore[override]
        self.sends += 1
        await self.release.wait()


async def _answer_while_mail_hangs(
    app: Any, outbox: HangingOutbox, path: str, body: dict[str, str]
) -> tuple[int, bool]:
    """The status, and whether the last body byte went out while the mailer still hung.

    Read at the ASGI boundary, as a client would see it: an app that waited for the mailer
    could not send its answer before the mailer is released, which happens only once the
    answer is out (bounded by the 10 s ``wait_for`` either way). No wall-clock threshold.
    """
    import json

    data = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"t"), (b"content-type", b"application/json")],
        "client": ("198.51.100.9", 5000),
        "server": ("t", 80),
    }
    outbox.release.clear()
    delivered = asyncio.Event()
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        if not delivered.is_set():
            delivered.set()
            return {"type": "http.request", "body": data, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            answer["while_hanging"] = not outbox.release.is_set()
            outbox.release.set()  # the mail may go now: the answer is out

    await asyncio.wait_for(app(scope, receive, send), 10)
    return answer["status"], answer["while_hanging"]


async def test_a_hanging_mailer_never_delays_the_sign_up_or_reset_answer(db):  # noqa: F811
    get_session, _ = db
    outbox = HangingOutbox()
    auth = CRUDAuth(
        session=get_session,
        user_model=User,
        SECRET_KEY=secrets.token_urlsafe(48),
        cookies=CookieConfig(secure=False),
        warn_on_memory_backend=False,
        email=email_config(outbox),
    )
    app = FastAPI()
    app.include_router(auth.router)
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert await _answer_while_mail_hangs(app, outbox, "/register", body) == (202, True)
    taken = {"username": "alice2", "email": "alice@example.com", "password": PASSWORD}
    assert await _answer_while_mail_hangs(app, outbox, "/register", taken) == (202, True)
    reset = {"email": "alice@example.com"}
    assert await _answer_while_mail_hangs(app, outbox, "/password/reset-request", reset) == (
        200,
        True,
    )
    assert outbox.sends == 3  # a verification, an existing-account notice, a reset link
    await auth.shutdown()


async def test_a_failing_mailer_leaves_the_sign_up_answer_unchanged_and_is_logged(
    app_on,
    private_redis,  # noqa: F811 - the imported fixture
    caplog,
):
    url, _, _ = private_redis
    outbox = Outbox()
    client = await app_on(url, outbox)
    body = {"username": "bob", "email": "bob@example.com", "password": PASSWORD}
    working = await client.post("/register", json=body)
    outbox.fail = True
    with caplog.at_level(logging.ERROR, logger="crudauth"):
        body = {"username": "carol", "email": "carol@example.com", "password": PASSWORD}
        failing = await client.post("/register", json=body)
    assert (failing.status_code, failing.content) == (working.status_code, working.content)
    assert "delivery channel EmailChannel failed for a verify_email message" in caplog.text
    assert "token=" not in caplog.text
