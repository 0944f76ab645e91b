"""The rate-limiter port: atomic counters with expiry, shared by lockout and throttles."""

from __future__ import annotations

from abc import ABC, abstractmethod

from crudauth.ratelimit.policy import LockoutConfig, RateLimit, Reservation, ThrottleResult


class RateLimiterBackend(ABC):
    """Counters that expire. Every method is one atomic step on the backend."""

    kind: str = "custom"
    in_memory: bool = False

    async def initialize(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Connect and verify the backend (no-op by default)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release what this backend opened (no-op by default)."""

    @abstractmethod
    async def increment(self, key: str, amount: int = 1, expiry: float | None = None) -> int:
        """Add ``amount``; a new counter expires after ``expiry`` seconds (set on first touch
        only, in the same step). Returns the new value."""

    @abstractmethod
    async def get_count(self, key: str) -> int:
        """The live value (0 when absent or expired)."""

    @abstractmethod
    async def get_ttl(self, key: str) -> float:
        """Seconds until ``key`` expires (0 when absent, expired or without expiry)."""

    @abstractmethod
    async def reset(self, key: str) -> None:
        """Delete the counter."""

    async def delete(self, key: str) -> None:
        """Alias of ``reset``."""
        await self.reset(key)

    @abstractmethod
    async def ping(self) -> bool:
        """True when the backend answers."""

    # -- the atomic steps that lockout and throttles are built on ----------------------------

    @abstractmethod
    async def lockout_reserve(
        self, key: str, config: LockoutConfig, now: float, *, hard_cap: bool
    ) -> Reservation:
        """Take one attempt slot for ``key`` or refuse (locked); one atomic step, so N
        concurrent callers on any number of workers get at most ``max_attempts`` slots."""

    @abstractmethod
    async def lockout_release(
        self, key: str, config: LockoutConfig, now: float, *, clear: bool
    ) -> None:
        """After a correct password: forget ``key`` entirely (``clear``), or give back the
        slot it took."""

    async def lockout_release_many(
        self, releases: list[tuple[str, bool]], config: LockoutConfig, now: float
    ) -> None:
        """``lockout_release`` for each ``(key, clear)``: independent steps, which a backend
        may send together (one round trip to Redis)."""
        for key, clear in releases:
            await self.lockout_release(key, config, now, clear=clear)

    @abstractmethod
    async def throttle(self, key: str, limit: RateLimit, now: float) -> ThrottleResult:
        """Count one request against ``limit`` (GCRA: no burst at window boundaries)."""
