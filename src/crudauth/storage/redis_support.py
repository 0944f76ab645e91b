"""Shared Redis plumbing: clients, scripts, and turning connection trouble into one error."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from crudauth.errors import StoreUnavailable
from crudauth.metrics import instruments

logger = logging.getLogger("crudauth")

MIN_REDIS_VERSION = (7, 0)
DEFAULT_URL = "redis://localhost:6379/0"
# Auth must answer quickly or fail closed; a hung Redis must not hang every request. The clock
# runs while the event loop is busy with other requests too, so a timeout much below a second
# turns ordinary load spikes into spurious 503s.
SOCKET_TIMEOUT = 2.0
#: One in this many session reads (the per-request path) is timed for the store-latency metric.
HOT_SAMPLE = 16


def client_from_url(url: str | None) -> Any:
    """A client we own, with short timeouts."""
    return Redis.from_url(
        url or DEFAULT_URL,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        health_check_interval=30,
    )


def text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


class Degradations:
    """Counts backend failures and logs them without flooding the log."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self._last_log = 0.0
        kind = {"rate limiter": "ratelimit"}.get(name, name.split()[0])
        self._attributes = {"store": "redis", "kind": kind}
        self._calls = 0

    def sampled(self) -> bool:
        """Whether to time this call of a per-request path: one in ``HOT_SAMPLE``, so that
        an app that collects metrics pays for one histogram record every few requests."""
        self._calls += 1
        return self._calls % HOT_SAMPLE == 0

    def timed(self, started: float) -> None:
        """Record the latency of one call that began at ``started`` (``perf_counter``)."""
        instruments().store_duration.record(time.perf_counter() - started, self._attributes)

    def record(self, exc: BaseException) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last_log >= 10:
            self._last_log = now
            logger.warning(
                "crudauth: %s backend unavailable (%s); failing closed (%d failures so far)",
                self.name,
                type(exc).__name__,
                self.count,
            )

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        """Record ``exc`` and return the error to raise in its place."""
        self.record(exc)
        return StoreUnavailable(f"{self.name} backend unavailable", store="redis")


class ReplyMismatch(redis_errors.ConnectionError):
    """A reply named another request's key: the connection is out of step and was dropped."""


#: What a Redis call raises when the server cannot be used (both redis-py and the lane).
FAILURES = (redis_errors.RedisError, OSError)


@asynccontextmanager
async def guarded(degradations: Degradations, *, hot: bool = False) -> AsyncIterator[None]:
    """Turn any Redis error into ``StoreUnavailable`` (counted and logged), and time the call
    (``hot``: a per-request call, timed one in ``HOT_SAMPLE``).

    The two per-request reads catch ``FAILURES`` inline instead: an async context manager
    costs a few microseconds on every call."""
    started = time.perf_counter() if not hot or degradations.sampled() else 0.0
    try:
        yield
    except FAILURES as exc:
        raise degradations.unavailable(exc) from None
    finally:
        if started:
            degradations.timed(started)


class Script:
    """A Lua script run with EVALSHA, loaded on first use or after a server restart."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    async def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


async def bound_call(client: Any, script: Script, key: str, args: Sequence[Any]) -> Any:
    """Run a bound ``script`` (one key; it returns ``[key, value]``) on a redis-py client and
    return ``value``. A reply naming another key means a pooled connection is out of step (a
    cancelled command whose reply was never read): every pooled connection is dropped and
    ``ReplyMismatch`` raised, so the request fails closed instead of reading another's data."""
    reply = await script(client, [key], args)
    if isinstance(reply, list) and len(reply) == 2 and text(reply[0]) == key:
        return reply[1]
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        await pool.disconnect()
    else:  # a cluster client: one pool per node
        await close_client(client)
    raise ReplyMismatch("a Redis reply named another request's key")


async def check_server(client: Any, what: str) -> None:
    """Ping and require Redis 7+ (``EXPIRE ... GT`` and friends)."""
    try:
        await client.ping()
        info = await client.info("server")
    except (redis_errors.RedisError, OSError) as exc:
        raise StoreUnavailable(f"cannot reach Redis for {what}: {exc}") from None
    if isinstance(info, dict) and "redis_version" not in info:
        info = next(iter(info.values()), {})  # cluster: one entry per node
    version = text(info.get("redis_version", "0")) if isinstance(info, dict) else "0"
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < MIN_REDIS_VERSION:
        raise StoreUnavailable(f"Redis {version} is too old for {what}; 7.0 or newer is needed")


async def close_client(client: Any) -> None:
    closer = getattr(client, "aclose", None) or getattr(client, "close", None)
    if closer is not None:
        await closer()
