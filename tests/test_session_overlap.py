"""A session this worker has seen reads its user row while the store read travels.

``SessionTransport`` remembers each session's owner (``owners.py``); on a later safe request it
sends the session script on the Redis lane, reads the owner's row, then takes the script's
answer, which decides as before. These tests pin the order of the two reads, that the store
still decides (revoked, deactivated, a wrong hint), and that failures on either side are
handled: a 503 for the store, and no orphaned reply for the user read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis import exceptions as redis_errors
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from crudauth import SessionTransport
from crudauth.transports.session.owners import SessionOwners
from tests.bearer_support import update_user
from tests.conftest import REDIS_TEST_DB, REDIS_TEST_URL, Env, login, register
from tests.redis_proxy import holding_proxy

pytestmark = pytest.mark.redis


async def redis_env(make_env: Any, url: str = REDIS_TEST_URL) -> Env:
    env: Env = await make_env(redis_url=url)
    assert (await register(env.client)).status_code == 200
    assert (await login(env.client)).status_code == 200
    return env


def transport_of(env: Env) -> SessionTransport:
    transport = env.auth.transports[0]
    assert isinstance(transport, SessionTransport)
    return transport


@contextmanager
def timeline(env: Env) -> Iterator[list[str]]:
    """Records, in order: a script started on the lane without waiting ("store:started"), a
    command awaited on the lane ("store:awaited", the sequential order), each SQL statement."""
    events: list[str] = []
    lane = transport_of(env).manager.store.lane  # type: ignore[attr-defined]
    engine: AsyncEngine = env.sessionmaker.kw["bind"]
    started: list[asyncio.Future[Any]] = []
    on_started, on_send = lane.send_started, lane.send

    def spy_started(*args: Any) -> Any:
        future = on_started(*args)
        if future is not None:
            started.append(future)
            events.append("store:started")
        return future

    async def spy_send(*args: Any) -> Any:
        events.append("store:awaited")
        return await on_send(*args)

    def before(*_: Any) -> None:
        events.append("sql")

    lane.send_started, lane.send = spy_started, spy_send
    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield events
    finally:
        lane.send_started, lane.send = on_started, on_send
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def test_a_known_session_sends_its_store_read_before_the_user_select(make_env: Any) -> None:
    env = await redis_env(make_env)
    with timeline(env) as events:
        assert (await env.client.get("/private")).json() == {"user_id": 1, "via": "session"}
    # First sight on this worker: the store names the owner, then the row is read.
    assert events == ["store:awaited", "sql"]
    assert len(transport_of(env).owners) == 1
    for _ in range(3):
        with timeline(env) as events:
            assert (await env.client.get("/private")).json() == {"user_id": 1, "via": "session"}
        # The script was sent, not awaited, before the SELECT: the two reads overlap.
        assert events == ["store:started", "sql"]


async def test_unsafe_methods_check_csrf_before_any_sql(make_env: Any) -> None:
    env = await redis_env(make_env)
    assert (await env.client.get("/private")).status_code == 200  # the owner is known now
    with timeline(env) as events:
        assert (await env.client.post("/private")).status_code == 403
    assert events == ["store:awaited"]
    token = env.client.cookies["csrf_token"]
    with timeline(env) as events:
        r = await env.client.post("/private", headers={"X-CSRF-Token": token})
    assert r.status_code == 200
    assert events == ["store:awaited", "sql"]


async def test_a_revoked_session_known_to_the_worker_is_refused(make_env: Any) -> None:
    env = await redis_env(make_env)
    assert (await env.client.get("/private")).status_code == 200
    await env.auth.sessions.revoke_all(1)
    with timeline(env) as events:
        assert (await env.client.get("/private")).status_code == 401
    assert events == ["store:started", "sql"]  # the read is thrown away
    assert len(transport_of(env).owners) == 0  # forgotten: the next try costs no SQL
    with timeline(env) as events:
        assert (await env.client.get("/private")).status_code == 401
    assert events == ["store:awaited"]


async def test_a_deactivated_owner_is_refused_and_the_session_ends(make_env: Any) -> None:
    env = await redis_env(make_env)
    assert (await env.client.get("/private")).status_code == 200
    await update_user(env, "alice", is_active=False)
    with timeline(env) as events:
        assert (await env.client.get("/private")).status_code == 401
    assert events[0] == "store:started"  # refused on the overlapped path itself
    assert await env.auth.sessions.list_for_user(1) == []
    assert len(transport_of(env).owners) == 0


async def test_a_wrong_owner_hint_never_authenticates_as_that_user(make_env: Any) -> None:
    """The hint only chooses which row to read early; the record still names the user."""
    env = await redis_env(make_env)
    assert (await register(env.client, "bob", "bob@example.com")).status_code == 200
    assert (await env.client.get("/private")).json()["user_id"] == 1
    owners = transport_of(env).owners
    key = next(iter(owners._owners))
    owners.forget(key)
    owners.remember(key, "2")  # as if the map pointed at bob
    assert (await env.client.get("/private")).json() == {"user_id": 1, "via": "session"}
    assert owners.get(key) == "1"  # the wrong entry is replaced, not kept


async def test_a_store_failure_during_an_overlapped_read_is_503(make_env: Any) -> None:
    env = await redis_env(make_env)
    assert (await env.client.get("/private")).status_code == 200
    lane = transport_of(env).manager.store.lane  # type: ignore[attr-defined]
    original = lane.send_started

    def failing(*_: Any) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        future.set_exception(redis_errors.ConnectionError("Redis went away"))
        return future

    lane.send_started = failing
    try:
        r = await env.client.get("/private")
    finally:
        lane.send_started = original
    assert r.status_code == 503, r.text
    assert (await env.client.get("/private")).status_code == 200


@contextmanager
def user_read_replaced(env: Env, get: Any) -> Iterator[list[Any]]:
    """Swaps the repository's user read for ``get`` and records every started store read."""
    manager = transport_of(env).manager
    repo = env.auth.runtime.repo
    started: list[Any] = []
    on_start, on_get = manager.start_validation, repo.get

    def spy_start(key: str) -> Any:
        result = on_start(key)
        started.append(result)
        return result

    manager.start_validation, repo.get = spy_start, get  # type: ignore[method-assign]
    try:
        yield started
    finally:
        manager.start_validation, repo.get = on_start, on_get  # type: ignore[method-assign]


async def test_a_failed_user_read_discards_the_started_store_read(make_env: Any) -> None:
    env = await redis_env(make_env)
    assert (await env.client.get("/private")).status_code == 200

    async def broken_get(*_: Any) -> Any:
        raise RuntimeError("the database is down")

    with (
        user_read_replaced(env, broken_get) as started,
        pytest.raises(RuntimeError, match="database is down"),
    ):
        await env.client.get("/private")
    assert started and started[0] is not None
    # The user read failed before the reply could arrive: the started read was cancelled, so
    # nobody is left holding an answer (or an error) that no one will read.
    assert started[0][0].future.cancelled()
    # The lane read and dropped that reply: the next request gets its own.
    for _ in range(2):
        assert (await env.client.get("/private")).json() == {"user_id": 1, "via": "session"}


async def test_a_request_cancelled_during_the_overlapped_read_leaves_the_lane_in_order(
    make_env: Any,
) -> None:
    """The client goes away (the request task is cancelled) while the user row is being read
    and the store's answer is on its way: the started read is cancelled, its reply is read
    and dropped, and the next requests get their own answers, not the orphan's.

    Redis is reached through a proxy that holds its replies, so the answer has really been
    produced but has not arrived when the request is cancelled, however fast the server; it
    then arrives in one piece with the next request's answer."""
    async with holding_proxy() as proxy:
        env = await redis_env(make_env, proxy.url(REDIS_TEST_DB))
        assert (await env.client.get("/private")).status_code == 200
        reading = asyncio.Event()

        async def slow_get(*_: Any) -> Any:
            reading.set()
            await asyncio.Event().wait()  # the database is slow; the client gives up first

        proxy.hold()
        with user_read_replaced(env, slow_get) as started:
            request = asyncio.ensure_future(env.client.get("/private"))
            await asyncio.wait_for(reading.wait(), 10)
            await proxy.until_held()  # the store has answered; the answer waits at the door
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
        assert started and started[0] is not None
        assert started[0][0].future.cancelled()
        following = asyncio.ensure_future(env.client.get("/private"))
        await proxy.until_held(2)
        await proxy.release()  # the orphan's reply and the next one, in one read
        assert (await following).json() == {"user_id": 1, "via": "session"}
        for _ in range(2):
            assert (await env.client.get("/private")).json() == {"user_id": 1, "via": "session"}


async def test_an_overlapped_read_survives_a_script_flush(make_env: Any) -> None:
    env = await redis_env(make_env)
    assert (await env.client.get("/private")).status_code == 200
    await transport_of(env).manager.store.client.script_flush()  # type: ignore[attr-defined]
    with timeline(env) as events:
        assert (await env.client.get("/private")).json() == {"user_id": 1, "via": "session"}
    assert events[:2] == ["store:started", "sql"]
    assert "store:awaited" in events  # NOSCRIPT: loaded and run again on the awaited path


async def test_a_row_read_before_a_committed_epoch_change_is_read_again(make_env: Any) -> None:
    """Signing out everywhere else commits a new token_version, then moves the kept session to
    it. An overlapped request may read the row just before that commit and the record just
    after the move: it must not be refused for the session's newer epoch (the sequential order
    never saw that combination); the row is read again."""
    env = await redis_env(make_env)
    assert (await env.client.get("/private")).status_code == 200
    transport = transport_of(env)
    repo = env.auth.runtime.repo
    original = repo.get
    key = next(iter(transport.owners._owners))
    assert await transport.manager.store.update(key, {"token_version": 1})  # the record moved

    async def read_then_commit(db: Any, user_id: Any) -> Any:
        user = await original(db, user_id)  # the early read sees the old epoch ...
        repo.get = original  # type: ignore[method-assign]
        await update_user(env, "alice", token_version=1)  # ... the change commits after it
        return user

    repo.get = read_then_commit  # type: ignore[method-assign]
    try:
        with timeline(env) as events:
            r = await env.client.get("/private")
    finally:
        repo.get = original  # type: ignore[method-assign]
    assert events[:2] == ["store:started", "sql"]
    assert r.status_code == 200, r.text
    assert (await env.client.get("/private")).status_code == 200


def test_session_owners_are_bounded_oldest_first() -> None:
    owners = SessionOwners(size=3)
    for n in range(4):
        owners.remember(f"k{n}", str(n))
    assert len(owners) == 3
    assert owners.get("k0") is None
    assert owners.get("k3") == "3"
    owners.remember("k3", "other")  # an entry is never rewritten: an owner never changes
    assert owners.get("k3") == "3"
    owners.forget("k3")
    assert owners.get("k3") is None
    owners.forget("absent")


def test_keyed_digests_keep_their_construction() -> None:
    """Stored session keys, handles and CSRF digests depend on these exact bytes: the one-shot
    HMAC must give what the HMAC object gave, or every live session would end on upgrade."""
    import hashlib
    import hmac

    from crudauth.keys import KeyRing, Purpose

    secret = "a-test-secret-that-is-long-enough-0123456789abcdef"
    ring = KeyRing(secret, ["an-older-secret-that-is-long-enough-0123456789abcdef"])
    for index in (0, 1):
        raw = secret.encode() if index == 0 else ring._secrets[1]
        label = b"crudauth/v1/" + Purpose.SESSION_ID.encode()
        key = hmac.new(raw, label, hashlib.sha256).digest()
        expected = hmac.new(key, b"some-session-id", hashlib.sha256).hexdigest()
        assert ring.digest(Purpose.SESSION_ID, "some-session-id", index) == expected
