"""The conformance suite of ``RateLimiterBackend``: counters, the login lockout, throttles."""

from __future__ import annotations

import asyncio

import pytest

from crudauth.clock import FrozenClock
from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.policy import LockoutConfig, RateLimit
from crudauth.testing.support import Advance


class RateLimiterConformance:
    """What every ``RateLimiterBackend`` must do."""

    async def test_increment_counts_and_expires_from_first_touch(
        self, limiter: RateLimiterBackend, advance: Advance
    ) -> None:
        assert await limiter.increment("k", expiry=0.3) == 1
        await advance(0.15)
        assert await limiter.increment("k", expiry=0.3) == 2  # does not re-arm the expiry
        assert 0 < await limiter.get_ttl("k") <= 0.3
        await advance(0.25)
        assert await limiter.get_count("k") == 0
        assert await limiter.increment("k", expiry=0.3) == 1

    async def test_amount_and_reset(self, limiter: RateLimiterBackend) -> None:
        assert await limiter.increment("a", amount=5, expiry=60) == 5
        assert await limiter.increment("a", amount=-2, expiry=60) == 3
        assert await limiter.get_count("a") == 3
        await limiter.reset("a")
        assert await limiter.get_count("a") == 0
        assert await limiter.get_ttl("a") == 0

    async def test_concurrent_increments_lose_nothing(self, limiter: RateLimiterBackend) -> None:
        await asyncio.gather(*(limiter.increment("burst", expiry=60) for _ in range(40)))
        assert await limiter.get_count("burst") == 40

    async def test_ping(self, limiter: RateLimiterBackend) -> None:
        assert await limiter.ping() is True

    async def test_lockout_allows_the_threshold_then_locks_with_escalation(
        self, limiter: RateLimiterBackend, clock: FrozenClock
    ) -> None:
        config = LockoutConfig(max_attempts=3, lockout_base_seconds=60, lockout_max_seconds=150)
        now = clock.now()
        decisions = [
            await limiter.lockout_reserve("s", config, now, hard_cap=False) for _ in "1234"
        ]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert decisions[3].retry_after == pytest.approx(60)
        locked = await limiter.lockout_reserve("s", config, now + 59, hard_cap=False)
        assert not locked.allowed and locked.retry_after == pytest.approx(1)
        later = now + 61  # lock over; the next lock doubles, then hits the cap
        assert [
            (await limiter.lockout_reserve("s", config, later, hard_cap=False)).allowed
            for _ in "1234"
        ] == [True, True, True, False]
        again = await limiter.lockout_reserve("s", config, later, hard_cap=False)
        assert again.retry_after == pytest.approx(120)
        for _ in "1234":
            third = await limiter.lockout_reserve("s", config, later + 121, hard_cap=False)
        assert third.retry_after == pytest.approx(150)

    async def test_concurrent_reservations_never_exceed_the_threshold(
        self, limiter: RateLimiterBackend, clock: FrozenClock
    ) -> None:
        config = LockoutConfig(max_attempts=5)
        decisions = await asyncio.gather(
            *(
                limiter.lockout_reserve("burst", config, clock.now(), hard_cap=True)
                for _ in range(60)
            )
        )
        assert sum(d.allowed for d in decisions) == 5

    async def test_release_returns_a_slot_and_clear_forgets(
        self, limiter: RateLimiterBackend, clock: FrozenClock
    ) -> None:
        config = LockoutConfig(max_attempts=2)
        now = clock.now()
        assert (await limiter.lockout_reserve("r", config, now, hard_cap=False)).allowed
        assert (await limiter.lockout_reserve("r", config, now, hard_cap=False)).allowed
        await limiter.lockout_release("r", config, now, clear=False)
        assert (await limiter.lockout_reserve("r", config, now, hard_cap=False)).allowed
        assert not (await limiter.lockout_reserve("r", config, now, hard_cap=False)).allowed
        await limiter.lockout_release("r", config, now, clear=True)
        assert (await limiter.lockout_reserve("r", config, now, hard_cap=False)).allowed

    async def test_consecutive_failures_hit_a_hard_cap(
        self, limiter: RateLimiterBackend, clock: FrozenClock
    ) -> None:
        config = LockoutConfig(max_attempts=2, max_consecutive_failures=3, lockout_base_seconds=1)
        now = clock.now()
        allowed = 0
        for step in range(12):
            decision = await limiter.lockout_reserve("h", config, now + step * 5, hard_cap=True)
            allowed += decision.allowed
        assert allowed == 3
        assert decision.hard_locked
        # The same history without the hard cap (an address, say) keeps getting slots.
        allowed = 0
        for step in range(12):
            decision = await limiter.lockout_reserve("h2", config, now + step * 5, hard_cap=False)
            allowed += decision.allowed
        assert allowed > 3

    async def test_throttle_allows_exactly_the_limit_without_a_boundary_burst(
        self, limiter: RateLimiterBackend, clock: FrozenClock
    ) -> None:
        limit = RateLimit(5, 10)
        now = clock.now()
        results = [await limiter.throttle("t", limit, now + 9.9) for _ in range(6)]
        assert [r.allowed for r in results] == [True] * 5 + [False]
        assert [r.remaining for r in results[:5]] == [4, 3, 2, 1, 0]
        assert results[5].retry_after == pytest.approx(2)
        # A fixed window would reset at t=10 and allow 5 more; this must not.
        assert not (await limiter.throttle("t", limit, now + 10.1)).allowed
        assert (await limiter.throttle("t", limit, now + 11.95)).allowed

    async def test_concurrent_throttle_allows_exactly_the_limit(
        self, limiter: RateLimiterBackend, clock: FrozenClock
    ) -> None:
        results = await asyncio.gather(
            *(limiter.throttle("many", RateLimit(7, 60), clock.now()) for _ in range(40))
        )
        assert sum(r.allowed for r in results) == 7
