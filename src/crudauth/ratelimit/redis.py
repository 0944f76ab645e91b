"""Counters in Redis, shared by every worker."""

from __future__ import annotations

from typing import Any

from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.storage.redis_support import (
    Degradations,
    Script,
    check_server,
    client_from_url,
    close_client,
    guarded,
)

# KEYS[1] counter; ARGV amount, expiry in ms (or empty). TTL only on first touch.
_INCREMENT = Script(
    """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""
)


class RedisBackend(RateLimiterBackend):
    """Lockout and throttle counters in Redis."""

    kind = "redis"

    def __init__(
        self,
        client: Any = None,
        *,
        redis_url: str | None = None,
        prefix: str = "crudauth:rl:",
        owns_client: bool | None = None,
    ) -> None:
        self.client = client if client is not None else client_from_url(redis_url)
        self.owns_client = (client is None) if owns_client is None else owns_client
        self.prefix = prefix
        self.degradations = Degradations("rate limiter")

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def initialize(self) -> None:
        await check_server(self.client, "rate limits")

    async def close(self) -> None:
        if self.owns_client:
            await close_client(self.client)

    async def increment(self, key: str, amount: int = 1, expiry: float | None = None) -> int:
        ms = "" if expiry is None else str(max(1, int(expiry * 1000)))
        async with guarded(self.degradations):
            return int(await _INCREMENT(self.client, [self._key(key)], [amount, ms]))

    async def get_count(self, key: str) -> int:
        async with guarded(self.degradations):
            value = await self.client.get(self._key(key))
        return 0 if value is None else int(value)

    async def get_ttl(self, key: str) -> float:
        async with guarded(self.degradations):
            ms = await self.client.pttl(self._key(key))
        return max(0.0, int(ms) / 1000) if ms and int(ms) > 0 else 0.0

    async def reset(self, key: str) -> None:
        async with guarded(self.degradations):
            await self.client.delete(self._key(key))

    async def ping(self) -> bool:
        try:
            async with guarded(self.degradations):
                return bool(await self.client.ping())
        except Exception:
            return False


def redis_rate_limiter(
    redis_url: str | None = None, client: Any = None, prefix: str = "crudauth:rl:"
) -> RedisBackend:
    """A Redis-backed limiter: pass a URL (crudauth owns and closes the client) or a client
    (yours; never closed)."""
    if redis_url is not None and client is not None:
        raise ValueError("pass redis_url or client, not both")
    return RedisBackend(client, redis_url=redis_url, prefix=prefix)
