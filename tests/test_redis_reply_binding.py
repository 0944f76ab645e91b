"""Every per-request Redis reply is bound to its request (``crudauth.storage.redis_lane``).

The session script, the single-use-value read and the throttle return the key they read beside
their answer; the caller checks it. A connection that is out of step (an extra reply on the
wire, a cancelled command whose reply nobody read) therefore fails the request closed (503)
and is dropped, instead of handing request B the session request A read.

``CRUDAUTH_LONG=1`` runs the cancellation load test for 100,000 requests (10,000 by default).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from crudauth import SessionTransport
from crudauth.errors import StoreUnavailable
from crudauth.storage.base import SessionRecord
from crudauth.storage.redis import _GET, _LOAD, RedisKeyValueStore, RedisSessionStore
from crudauth.storage.redis_lane import RedisLane, pack
from tests.conftest import REDIS_TEST_URL, login, register

pytestmark = pytest.mark.redis

LOAD_REQUESTS = 100_000 if os.environ.get("CRUDAUTH_LONG") == "1" else 10_000
USERS = 64


def connection_of(lane: RedisLane) -> Any:
    return lane._connections[asyncio.get_running_loop()]


def inject(lane: RedisLane, *command: Any) -> None:
    """Write a command on the lane's socket behind its back: Redis answers it, and the lane
    receives a reply no request of its own asked for."""
    connection_of(lane)._sock.send(pack(command))


def record_for(user: int, now: float) -> SessionRecord:
    return SessionRecord(
        user_id=str(user),
        handle=f"h{user}",
        csrf_digest="c",
        created_at=now,
        last_activity=now,
        idle_timeout=3600,
        absolute_expires_at=now + 86400,
    )


@pytest.fixture
async def stores() -> AsyncIterator[tuple[RedisSessionStore, RedisKeyValueStore]]:
    client = Redis.from_url(REDIS_TEST_URL)
    namespace = f"binding-test:{uuid.uuid4().hex}:"
    sessions = RedisSessionStore(client, namespace=namespace)
    tokens = RedisKeyValueStore(client, namespace=namespace)
    try:
        yield sessions, tokens
    finally:
        await sessions.close()
        await tokens.close()
        keys = [k async for k in client.scan_iter(match=f"{namespace}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


# -- an extra reply on the wire ------------------------------------------------------------------


async def test_an_extra_session_reply_fails_the_request_closed_and_the_lane_reconnects(
    stores: tuple[RedisSessionStore, RedisKeyValueStore],
) -> None:
    sessions, _ = stores
    now = time.time()
    for user in (1, 2):
        await sessions.create(f"s{user}", record_for(user, now), max_per_user=0)
    assert (await sessions.load("s2", now=now, slide_after=60)).user_id == "2"  # type: ignore[union-attr]
    lane = sessions.lane
    assert lane is not None
    first = connection_of(lane)
    inject(lane, "EVALSHA", _LOAD.sha, 1, sessions._key("s1"), repr(now), 60)
    with pytest.raises(StoreUnavailable):
        await sessions.load("s2", now=now, slide_after=60)  # user 1's reply arrives first
    assert first.broken is not None  # dropped, not reused
    again = await sessions.load("s2", now=now, slide_after=60)
    assert again is not None and again.user_id == "2"
    assert connection_of(lane) is not first


async def test_an_extra_reply_also_fails_a_started_load(
    stores: tuple[RedisSessionStore, RedisKeyValueStore],
) -> None:
    sessions, _ = stores
    now = time.time()
    for user in (1, 2):
        await sessions.create(f"s{user}", record_for(user, now), max_per_user=0)
    await sessions.load("s2", now=now, slide_after=60)  # the lane is connected
    assert sessions.lane is not None
    inject(sessions.lane, "EVALSHA", _LOAD.sha, 1, sessions._key("s1"), repr(now), 60)
    started = sessions.start_load("s2", now=now, slide_after=60)
    assert started is not None
    with pytest.raises(StoreUnavailable):
        await started.record()


async def test_an_extra_token_reply_fails_the_read_closed(
    stores: tuple[RedisSessionStore, RedisKeyValueStore],
) -> None:
    _, tokens = stores
    await tokens.set("a", "value of a", 60)
    await tokens.set("b", "value of b", 60)
    assert await tokens.get("b") == "value of b"
    assert tokens.lane is not None
    first = connection_of(tokens.lane)
    inject(tokens.lane, "EVALSHA", _GET.sha, 1, tokens._key("a"))
    with pytest.raises(StoreUnavailable):
        await tokens.get("b")
    assert first.broken is not None
    assert await tokens.get("b") == "value of b"


async def test_an_unread_reply_on_a_pooled_client_connection_fails_closed() -> None:
    """Without the lane (``pipelined=False``) the same check guards redis-py's pool: a command
    whose reply nobody read (what a cancellation mid-command can leave) is caught."""
    client = Redis.from_url(REDIS_TEST_URL, max_connections=1)
    namespace = f"binding-test:{uuid.uuid4().hex}:"
    sessions = RedisSessionStore(client, namespace=namespace, pipelined=False)
    now = time.time()
    try:
        for user in (1, 2):
            await sessions.create(f"s{user}", record_for(user, now), max_per_user=0)
        await sessions.load("s1", now=now, slide_after=60)  # the script is loaded
        connection = await client.connection_pool.get_connection()
        await connection.send_command("EVALSHA", _LOAD.sha, 1, sessions._key("s1"), repr(now), 60)
        await client.connection_pool.release(connection)  # its reply was never read
        with pytest.raises(StoreUnavailable):
            await sessions.load("s2", now=now, slide_after=60)
        again = await sessions.load("s2", now=now, slide_after=60)
        assert again is not None and again.user_id == "2"
    finally:
        await client.delete(*[k async for k in client.scan_iter(match=f"{namespace}*")])
        await client.aclose()


async def test_an_out_of_step_lane_answers_503_never_another_users_session(
    make_env: Any,
) -> None:
    env = await make_env(transports=[SessionTransport()], redis_url=REDIS_TEST_URL)
    store = env.auth.sessions.store
    # Earlier tests of the run leave sessions of users with the same ids in this namespace.
    left = [k async for k in store.client.scan_iter(match=f"{store.namespace}{store.prefix}*")]
    if left:
        await store.client.delete(*left)
    alice = env.client
    bob = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.app), base_url="http://testserver"
    )
    for name in ("alice", "bob"):
        await register(alice, name, f"{name}@example.com")
    assert (await login(alice, "alice")).status_code == 200
    assert (await login(bob, "bob")).status_code == 200
    bob_id = (await bob.get("/private")).json()["user_id"]
    alice_id = (await alice.get("/private")).json()["user_id"]
    assert alice_id != bob_id
    lane = store.lane
    (alice_key,) = [
        k.decode()
        async for k in store.client.scan_iter(match=f"{store.namespace}{store.prefix}*")
        if (await store.client.hget(k, "user_id")).decode() == f'"{alice_id}"'
    ]
    first = connection_of(lane)
    inject(lane, "EVALSHA", _LOAD.sha, 1, alice_key, repr(env.clock.now()), 60)
    r = await bob.get("/private")
    assert r.status_code == 503, r.text
    assert first.broken is not None
    r = await bob.get("/private")
    assert r.status_code == 200 and r.json()["user_id"] == bob_id
    await bob.aclose()


# -- random cancellation under load, with extra replies injected --------------------------------


async def test_random_cancellation_under_load_never_answers_for_another_user(
    stores: tuple[RedisSessionStore, RedisKeyValueStore],
) -> None:
    sessions, tokens = stores
    now = time.time()
    for user in range(USERS):
        await sessions.create(f"s{user}", record_for(user, now), max_per_user=0)
        await tokens.set(f"t{user}", str(user), 600)
    rng = random.Random(20)
    counts = {"ok": 0, "cross": 0, "unavailable": 0, "cancelled": 0, "injected": 0}
    per_user = LOAD_REQUESTS // USERS

    async def one(user: int) -> str | None:
        kind = rng.random()
        if kind < 0.4:
            started = sessions.start_load(f"s{user}", now=now, slide_after=3600)
            if started is not None:
                record = await started.record()
                return None if record is None else record.user_id
        if kind < 0.8:
            record = await sessions.load(f"s{user}", now=now, slide_after=3600)
            return None if record is None else record.user_id
        return await tokens.get(f"t{user}")

    async def client(user: int) -> None:
        for _ in range(per_user):
            task = asyncio.ensure_future(one(user))
            if rng.random() < 0.2:  # cancelled at a random point of its way
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                task.cancel()
            try:
                answer = await task
            except asyncio.CancelledError:
                counts["cancelled"] += 1
                continue
            except StoreUnavailable:
                counts["unavailable"] += 1
                continue
            if answer == str(user):
                counts["ok"] += 1
            else:
                counts["cross"] += 1

    async def injector() -> None:
        # Now and then a reply nobody asked for: the lane is out of step until it notices.
        while True:
            await asyncio.sleep(0.05)
            user = rng.randrange(USERS)
            for lane, command in (
                (sessions.lane, ("EVALSHA", _LOAD.sha, 1, sessions._key(f"s{user}"), now, 3600)),
                (tokens.lane, ("EVALSHA", _GET.sha, 1, tokens._key(f"t{user}"))),
            ):
                assert lane is not None
                connection = lane._connections.get(asyncio.get_running_loop())
                if connection is not None and connection.broken is None:
                    connection._sock.send(pack(command))
                    counts["injected"] += 1

    await sessions.load("s0", now=now, slide_after=3600)
    await tokens.get("t0")
    disturb = asyncio.ensure_future(injector())
    try:
        await asyncio.gather(*(client(user) for user in range(USERS)))
    finally:
        disturb.cancel()
    assert counts["cross"] == 0, counts
    assert counts["injected"] > 0 and counts["unavailable"] > 0, counts
    assert counts["ok"] + counts["unavailable"] + counts["cancelled"] == per_user * USERS
    assert counts["ok"] > counts["unavailable"], counts
