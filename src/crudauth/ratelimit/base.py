"""The rate-limiter port: atomic counters with expiry, shared by lockout and throttles."""

from __future__ import annotations

from abc import ABC, abstractmethod


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
