"""The Redis session store ranks the per-user cap by the server's clock, at no extra round trip.

The behaviour itself (a sign-in on a clock that runs behind keeps its session) is in the
conformance suite, for every backend; these tests hold the Redis store to the cost it promised
and to records written before they carried the server's stamp.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from crudauth.clock import FrozenClock
from crudauth.storage.redis import RedisSessionStore
from crudauth.testing import make_record, new_key
from tests.conftest import REDIS_TEST_URL

pytestmark = pytest.mark.redis


class RoundTrips:
    """Counts what a redis-py client sends: one per command, one per pipeline."""

    def __init__(self, client: Redis) -> None:
        self.sent: list[str] = []
        command, pipeline = client.execute_command, client.pipeline

        async def counted(*args: Any, **options: Any) -> Any:
            self.sent.append(str(args[0]))
            return await command(*args, **options)

        def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = pipeline(*args, **kwargs)
            execute = pipe.execute

            async def sent(*a: Any, **k: Any) -> Any:
                self.sent.append("PIPELINE")
                return await execute(*a, **k)

            pipe.execute = sent
            return pipe

        client.execute_command = counted  # type: ignore[method-assign]
        client.pipeline = counted_pipeline  # type: ignore[method-assign]


@pytest.fixture
async def redis_store() -> AsyncIterator[tuple[RedisSessionStore, Redis]]:
    client = Redis.from_url(REDIS_TEST_URL)
    # Without the lane, every command goes through the client, where it is counted.
    store = RedisSessionStore(
        client, namespace=f"crudauth-test:{uuid.uuid4().hex}:", pipelined=False
    )
    await store.initialize()
    yield store, client
    await store.delete_for_user("1")
    await client.aclose()


async def _server_us(client: Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1_000_000 + int(micros)


async def test_a_slide_stamps_the_server_time_in_the_one_script_call(
    redis_store: tuple[RedisSessionStore, Redis],
) -> None:
    store, client = redis_store
    clock = FrozenClock(time.time() - 3600)  # the worker's clock, an hour behind the server
    key = new_key()
    record = make_record(clock)
    await store.create(key, record, max_per_user=5)
    before = await _server_us(client)
    trips = RoundTrips(client)
    assert await store.load(key, now=record.last_activity + 61, slide_after=60) is not None
    assert trips.sent == ["EVALSHA"]
    stamp = int(await client.hget(store._key(key), "activity_us"))
    assert before <= stamp <= await _server_us(client)


async def test_a_sign_in_keeps_its_round_trips(
    redis_store: tuple[RedisSessionStore, Redis],
) -> None:
    store, client = redis_store
    clock = FrozenClock(time.time())
    for _ in range(2):
        await store.create(new_key(), make_record(clock), max_per_user=2)
    trips = RoundTrips(client)
    evicted = await store.create(new_key(), make_record(clock), max_per_user=2)
    assert len(evicted) == 1
    # Store the record and index it (one pipeline; the stamp rides in it), read the ranks,
    # evict.
    assert trips.sent == ["PIPELINE", "PIPELINE", "PIPELINE"]


async def test_a_sign_in_within_the_cap_reads_no_ranks(
    redis_store: tuple[RedisSessionStore, Redis],
) -> None:
    store, client = redis_store
    clock = FrozenClock(time.time())
    await store.create(new_key(), make_record(clock), max_per_user=2)
    trips = RoundTrips(client)
    assert await store.create(new_key(), make_record(clock), max_per_user=2) == []
    assert trips.sent == ["PIPELINE"]
    assert len(await store.list_for_user("1")) == 2


async def test_a_record_stored_without_the_server_stamp_ranks_by_its_last_activity(
    redis_store: tuple[RedisSessionStore, Redis],
) -> None:
    store, client = redis_store
    clock = FrozenClock(time.time())
    start = clock.now()
    keys = [new_key() for _ in range(3)]
    for key in keys:
        await store.create(key, make_record(clock), max_per_user=3)
    # As an earlier version stored them: no stamp; the second was used longest ago.
    for key, seconds_ago in zip(keys, (60, 180, 120), strict=True):
        await client.hdel(store._key(key), "activity_us")
        await client.hset(store._key(key), "last_activity", repr(start - seconds_ago))
    newest = new_key()
    evicted = await store.create(newest, make_record(clock), max_per_user=3)
    assert evicted == [keys[1]]
