"""Hold a store backend of your own to crudauth's guarantees with the exported suites.

Run with: pytest store_conformance.py (needs pytest-asyncio in auto mode).
"""

import time
from collections.abc import AsyncIterator

import pytest

from crudauth.ratelimit import MemoryRateLimiterBackend
from crudauth.storage import MemoryKeyValueStore, MemorySessionStore
from crudauth.testing import (
    Advance,
    FrozenClock,
    KeyValueStoreConformance,
    RateLimiterConformance,
    SessionStoreConformance,
)

# Stand-ins for your own classes: import your SessionStore, KeyValueStore and
# RateLimiterBackend subclasses here instead.
MySessionStore = MemorySessionStore
MyKeyValueStore = MemoryKeyValueStore
MyRateLimiter = MemoryRateLimiterBackend


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(time.time())  # near real time, in case the backend also expires by itself


@pytest.fixture
def advance(clock: FrozenClock) -> Advance:
    async def move(seconds: float) -> None:
        clock.advance(seconds)
        # A backend that expires keys by its own clock (as Redis does) also needs:
        # await asyncio.sleep(seconds)

    return move


class TestMySessionStore(SessionStoreConformance):
    @pytest.fixture
    async def store(self, clock: FrozenClock) -> AsyncIterator[MySessionStore]:
        store = MySessionStore(clock)
        await store.initialize()
        yield store
        await store.close()


class TestMyKeyValueStore(KeyValueStoreConformance):
    @pytest.fixture
    async def store(self, clock: FrozenClock) -> AsyncIterator[MyKeyValueStore]:
        store = MyKeyValueStore(clock)
        await store.initialize()
        yield store
        await store.close()


class TestMyRateLimiter(RateLimiterConformance):
    @pytest.fixture
    def limiter(self, clock: FrozenClock) -> MyRateLimiter:
        return MyRateLimiter(clock)
