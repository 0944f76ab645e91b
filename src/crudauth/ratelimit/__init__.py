"""Rate limiting and lockout: policies, backends and the login lockout."""

from typing import Any

from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.database import DatabaseRateLimiterBackend
from crudauth.ratelimit.lockout import LoginLockout
from crudauth.ratelimit.memory import MemoryRateLimiterBackend
from crudauth.ratelimit.policy import (
    DEFAULT_RATE_LIMITS,
    KeyBy,
    LockoutConfig,
    RateLimit,
    RateLimitResolver,
    ThrottleResult,
)

LockoutPolicy = LoginLockout
"""The reference's name for the login lockout."""

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "DatabaseRateLimiterBackend",
    "KeyBy",
    "LockoutConfig",
    "LockoutPolicy",
    "LoginLockout",
    "MemoryRateLimiterBackend",
    "RateLimit",
    "RateLimitHeadersMiddleware",
    "RateLimitResolver",
    "RateLimiterBackend",
    "RedisBackend",
    "ThrottleResult",
    "redis_rate_limiter",
]


def __getattr__(name: str) -> Any:
    if name in ("RedisBackend", "redis_rate_limiter"):
        from crudauth.ratelimit import redis as redis_backend

        return getattr(redis_backend, name)
    if name == "RateLimitHeadersMiddleware":
        from crudauth.ratelimit.middleware import RateLimitHeadersMiddleware

        return RateLimitHeadersMiddleware
    raise AttributeError(name)
