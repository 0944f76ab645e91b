"""In-process counters: per worker only, for development and single-process apps."""

from __future__ import annotations

from crudauth.clock import Clock, SystemClock
from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.policy import (
    LockoutConfig,
    RateLimit,
    Reservation,
    ThrottleResult,
    cas_release,
    cas_reserve,
    cas_throttle,
)
from crudauth.storage.memory import MemoryKeyValueStore


class MemoryRateLimiterBackend(RateLimiterBackend):
    """Counters in this process's memory: for development, tests and single-process apps."""

    kind = "memory"
    in_memory = True

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._counters: dict[str, tuple[int, float | None]] = {}
        self._state = MemoryKeyValueStore(self.clock)

    def _live(self, key: str) -> tuple[int, float | None] | None:
        item = self._counters.get(key)
        if item is not None and item[1] is not None and item[1] <= self.clock.now():
            del self._counters[key]
            return None
        return item

    async def increment(self, key: str, amount: int = 1, expiry: float | None = None) -> int:
        item = self._live(key)
        if item is None:
            deadline = self.clock.now() + expiry if expiry is not None else None
            item = (0, deadline)
        value = item[0] + amount
        self._counters[key] = (value, item[1])
        return value

    async def get_count(self, key: str) -> int:
        item = self._live(key)
        return 0 if item is None else item[0]

    async def get_ttl(self, key: str) -> float:
        item = self._live(key)
        if item is None or item[1] is None:
            return 0.0
        return max(0.0, item[1] - self.clock.now())

    async def reset(self, key: str) -> None:
        self._counters.pop(key, None)

    async def ping(self) -> bool:
        return True

    async def lockout_reserve(
        self, key: str, config: LockoutConfig, now: float, *, hard_cap: bool
    ) -> Reservation:
        return await cas_reserve(self._state, key, config, now, hard_cap=hard_cap)

    async def lockout_release(
        self, key: str, config: LockoutConfig, now: float, *, clear: bool
    ) -> None:
        await cas_release(self._state, key, config, now, clear=clear)

    async def throttle(self, key: str, limit: RateLimit, now: float) -> ThrottleResult:
        return await cas_throttle(self._state, "t:" + key, limit, now)
