"""Rate limiting and lockout backends."""

from typing import Any

from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.database import DatabaseRateLimiterBackend
from crudauth.ratelimit.memory import MemoryRateLimiterBackend

__all__ = [
    "DatabaseRateLimiterBackend",
    "MemoryRateLimiterBackend",
    "RateLimiterBackend",
    "RedisBackend",
    "redis_rate_limiter",
]


def __getattr__(name: str) -> Any:
    if name in ("RedisBackend", "redis_rate_limiter"):
        from crudauth.ratelimit import redis as redis_backend

        return getattr(redis_backend, name)
    raise AttributeError(name)
