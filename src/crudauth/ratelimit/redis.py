"""Counters in Redis, shared by every worker."""

from __future__ import annotations

from functools import partial
from typing import Any

from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.policy import (
    HARD_LOCK_KEEP,
    LockoutConfig,
    RateLimit,
    Reservation,
    ThrottleResult,
)
from crudauth.storage.redis_lane import lane_for
from crudauth.storage.redis_support import (
    Degradations,
    Script,
    bound_call,
    check_server,
    client_from_url,
    close_client,
    guarded,
    text,
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


# The lockout step of policy.reserve, in Lua. KEYS[1] the subject (a HASH: a attempts, ws window
# start, lu locked until, r rounds, c consecutive). ARGV: now, max_attempts, window, base,
# max_lock, retention, max_consecutive, hard_cap (1/0), hard-lock keep (ms).
# Returns {allowed, retry_after, hard}.
_RESERVE = Script(
    """
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'a', 'ws', 'lu', 'r', 'c')
local a, ws, lu = tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]) or 0
local r, c = tonumber(f[4]) or 0, tonumber(f[5]) or 0
local max_attempts, window = tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[8] == '1' and c >= tonumber(ARGV[7]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[9])
  return {0, '3600', 1}
end
if lu > now then return {0, string.format('%.6f', lu - now), 0} end
if ws + window <= now then a = 0; ws = now end
a = a + 1
local allowed, retry = 1, 0
if a > max_attempts then
  retry = math.min(tonumber(ARGV[4]) * math.pow(2, r), tonumber(ARGV[5]))
  a, ws, lu, r, allowed = 0, now, now + retry, r + 1, 0
else
  c = c + 1
end
local ttl = math.max(tonumber(ARGV[6]) + math.max(0, lu - now), ws + window - now, 1)
if ARGV[8] == '1' and c >= tonumber(ARGV[7]) then ttl = tonumber(ARGV[9]) / 1000 end
redis.call('HSET', KEYS[1], 'a', a, 'ws', string.format('%.6f', ws),
  'lu', string.format('%.6f', lu), 'r', r, 'c', c)
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000))
return {allowed, string.format('%.6f', retry), 0}
"""
)

# policy.release: give one slot back. KEYS[1] subject.
_RELEASE = Script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local f = redis.call('HMGET', KEYS[1], 'a', 'c')
redis.call('HSET', KEYS[1], 'a', math.max(0, (tonumber(f[1]) or 0) - 1),
  'c', math.max(0, (tonumber(f[2]) or 0) - 1))
return 1
"""
)

# policy.throttle (GCRA). KEYS[1] arrival time; ARGV now, times, seconds.
# Returns {KEYS[1], {allowed, remaining, retry_after, reset_after}}: the key binds the reply to
# its request (see ``crudauth.storage.redis_lane``).
_THROTTLE = Script(
    """
local now, times, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local interval = period / times
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - period > now + 0.0001 then
  return {KEYS[1], {0, 0, string.format('%.6f', new_tat - period - now),
    string.format('%.6f', tat - now)}}
end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX',
  math.max(1, math.ceil((new_tat - now) * 1000)))
local remaining = math.floor((period - (new_tat - now) + 0.0001) / interval)
return {KEYS[1], {1, remaining, '0', string.format('%.6f', new_tat - now)}}
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
        pipelined: bool = True,
    ) -> None:
        self.client = client if client is not None else client_from_url(redis_url)
        self.owns_client = (client is None) if owns_client is None else owns_client
        self.prefix = prefix
        self.degradations = Degradations("rate limiter")
        # Throttles can guard any route of the app, so they are a per-request command too.
        self.lane = lane_for(self.client, pipelined)
        self._bound: Any = self.lane.bound if self.lane else partial(bound_call, self.client)

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def initialize(self) -> None:
        await check_server(self.client, "rate limits")

    async def close(self) -> None:
        if self.lane is not None:
            await self.lane.aclose()
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

    async def lockout_reserve(
        self, key: str, config: LockoutConfig, now: float, *, hard_cap: bool
    ) -> Reservation:
        args = [
            repr(now),
            config.max_attempts,
            config.attempt_window_seconds,
            config.lockout_base_seconds,
            config.lockout_max_seconds,
            config.round_retention_seconds,
            config.max_consecutive_failures,
            1 if hard_cap else 0,
            int(HARD_LOCK_KEEP * 1000),
        ]
        async with guarded(self.degradations):
            allowed, retry, hard = await _RESERVE(self.client, [self._key(key)], args)
        return Reservation(bool(allowed), float(text(retry)), hard_locked=bool(hard))

    async def lockout_release(
        self, key: str, config: LockoutConfig, now: float, *, clear: bool
    ) -> None:
        async with guarded(self.degradations):
            if clear:
                await self.client.delete(self._key(key))
            else:
                await _RELEASE(self.client, [self._key(key)], [])

    async def lockout_release_many(
        self, releases: list[tuple[str, bool]], config: LockoutConfig, now: float
    ) -> None:
        if len(releases) < 2:
            await super().lockout_release_many(releases, config, now)
            return
        async with guarded(self.degradations):
            pipe = self.client.pipeline(transaction=False)
            for key, clear in releases:
                if clear:
                    pipe.delete(self._key(key))
                else:  # the source, not the digest: a pipeline cannot retry on NOSCRIPT
                    pipe.eval(_RELEASE.source, 1, self._key(key))
            await pipe.execute()

    async def throttle(self, key: str, limit: RateLimit, now: float) -> ThrottleResult:
        async with guarded(self.degradations, hot=True):
            allowed, remaining, retry, reset = await self._bound(
                _THROTTLE, self._key("t:" + key), [repr(now), limit.times, limit.seconds]
            )
        return ThrottleResult(
            bool(allowed), limit.times, int(remaining), float(text(retry)), float(text(reset))
        )

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
