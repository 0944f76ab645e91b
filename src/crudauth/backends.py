"""Choosing and running the state backends: the part of the composition root that knows which
store lives where, who owns each client, and in what order they open and close."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crudauth.clock import Clock
from crudauth.errors import ConfigurationError
from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.memory import MemoryRateLimiterBackend
from crudauth.ratelimit.policy import LockoutConfig
from crudauth.runtime import AuthRuntime
from crudauth.storage.base import KeyValueStore
from crudauth.storage.database import DatabaseStore
from crudauth.storage.memory import MemoryKeyValueStore
from crudauth.transports.base import Transport

logger = logging.getLogger("crudauth")


def choose_lockout_config(
    lockout: LockoutConfig | None, transports: Sequence[Transport | type[Transport]]
) -> LockoutConfig:
    """``lockout=``, or the 0.6-style ``SessionTransport(login_*=...)`` overrides, not both."""
    overrides = [
        t.lockout_overrides()
        for t in transports
        if isinstance(t, Transport) and t.lockout_overrides()
    ]
    if lockout is not None and overrides:
        raise ConfigurationError("pass lockout= or SessionTransport(login_*=...), not both")
    if lockout is not None and not isinstance(lockout, LockoutConfig):
        raise ConfigurationError("lockout must be a crudauth.ratelimit.LockoutConfig")
    config = LockoutConfig(**overrides[0]) if overrides else lockout or LockoutConfig()
    if config.max_attempts > config.max_consecutive_failures:
        logger.warning(
            "crudauth: LockoutConfig(max_attempts=%d) is above max_consecutive_failures=%d: "
            "an identifier is locked until a password reset after %d failures in a row, before "
            "its timed lock is reached",
            config.max_attempts,
            config.max_consecutive_failures,
            config.max_consecutive_failures,
        )
    return config


def production_from_env() -> bool:
    return os.environ.get("CRUDAUTH_ENV", "").strip().lower() in {"prod", "production"}


def bind_transports(
    runtime: AuthRuntime, items: Sequence[Transport | type[Transport]]
) -> list[Transport]:
    """Instantiate (if given a class), bind and introduce every transport."""
    if not items:
        raise ConfigurationError("transports must not be empty")
    bound: list[Transport] = []
    for item in items:
        instance = item() if isinstance(item, type) else item
        if not isinstance(instance, Transport):
            raise ConfigurationError(f"{item!r} is not a crudauth Transport")
        instance.bind(runtime)
        bound.append(instance)
    names = [t.name for t in bound]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"two transports share a name: {names}")
    for transport in bound:
        transport.attach(bound)
    return bound


@dataclass
class SharedBackends:
    """The app-wide Redis client or SQL store, before transports are bound."""

    redis_client: Any = None
    owns_redis: bool = False
    database_store: DatabaseStore | None = None


def shared_backends(
    *,
    redis_url: str | None,
    redis_client: Any,
    database_store: DatabaseStore | None,
    clock: Clock,
) -> SharedBackends:
    if redis_url is not None and redis_client is not None:
        raise ConfigurationError("pass redis_url or redis_client, not both")
    if database_store is not None and (redis_url is not None or redis_client is not None):
        raise ConfigurationError("database_store cannot be combined with Redis")
    if database_store is not None and not isinstance(database_store, DatabaseStore):
        raise ConfigurationError("database_store must be a crudauth.DatabaseStore")
    if database_store is not None:
        database_store.adopt_clock(clock)
    if redis_url is not None:
        from crudauth.storage.redis_support import client_from_url

        return SharedBackends(client_from_url(redis_url), owns_redis=True)
    return SharedBackends(redis_client, owns_redis=False, database_store=database_store)


DEFAULT_CLEANUP_INTERVAL = 15 * 60.0


async def purge_periodically(store: DatabaseStore, interval: float) -> None:
    """Delete expired rows every ``interval`` seconds: SQL has no TTL, and a table of dead
    sessions and counters only grows (the store also purges every ``purge_every`` writes)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await store.purge_expired()
        except Exception:  # an unreachable database must not end the loop
            logger.warning("crudauth: purging expired rows failed; will retry", exc_info=True)


@dataclass
class StateBackends:
    """Every piece of server-side state, and the lifecycle that opens and closes it."""

    shared: SharedBackends
    transports: Sequence[Transport]
    limiter: RateLimiterBackend
    tokens: KeyValueStore
    _opened: bool = field(default=False, init=False)
    _purger: asyncio.Task[None] | None = field(default=None, init=False)

    def cleanup_interval(self) -> float:
        """Seconds between purges of the SQL store: the shortest session transport's
        ``cleanup_interval_minutes``, else 15 minutes."""
        intervals = [t.cleanup_interval for t in self.transports if t.cleanup_interval is not None]
        return min(intervals, default=DEFAULT_CLEANUP_INTERVAL)

    def memory_parts(self) -> list[str]:
        parts = []
        if self.limiter.in_memory:
            parts.append("lockout/throttle counters")
        for transport in self.transports:
            parts += [name for name, store in transport.stores().items() if store.in_memory]
        if self.tokens.in_memory:
            parts.append("single-use tokens/OAuth state/MFA challenges")
        return parts

    def check_memory(self, *, production: bool, warn: bool) -> None:
        """Refuse in-memory state in production; otherwise say once which parts are in memory."""
        insecure = [t.name for t in self.transports if t.cookies_in_clear()]
        if production and insecure:
            raise ConfigurationError(
                f"production refuses secure=False cookies (transport {', '.join(insecure)})"
            )
        parts = self.memory_parts()
        if not parts:
            return
        if production:
            raise ConfigurationError(
                f"production refuses in-memory state ({', '.join(parts)}): it is not shared "
                "between workers"
            )
        if warn:
            logger.warning(
                "crudauth: in-memory backend active for %s. This state lives in one process and "
                "is not shared between workers or kept across restarts, so sessions, lockout "
                "counters and one-time tokens quietly weaken under several workers. Use a shared "
                "store in production (redis_url=, redis_client= or database_store=), or pass "
                "warn_on_memory_backend=False if a single in-memory worker is intended.",
                ", ".join(parts),
            )

    async def initialize(self) -> None:
        if self._opened:
            return
        await self.limiter.initialize()
        for transport in self.transports:
            await transport.initialize()
        await self.tokens.initialize()
        store = self.shared.database_store
        if store is not None:
            self._purger = asyncio.create_task(
                purge_periodically(store, self.cleanup_interval()), name="crudauth-purge"
            )
        self._opened = True

    async def _stop_purging(self) -> None:
        purger, self._purger = self._purger, None
        if purger is not None:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger

    async def shutdown(self) -> None:
        """Close in reverse dependency order; every step runs, the first error is re-raised."""
        steps = [
            self._stop_purging,
            *(t.shutdown for t in self.transports),
            self.tokens.close,
            self.limiter.close,
        ]
        if self.shared.owns_redis:
            from crudauth.storage.redis_support import close_client

            client = self.shared.redis_client
            steps.append(lambda: close_client(client))
        first: BaseException | None = None
        for step in steps:
            try:
                await step()
            except Exception as exc:
                first = first or exc
                logger.warning("crudauth: error while shutting down a backend", exc_info=True)
        self._opened = False
        if first is not None:
            raise first


def limiter_backend(
    shared: SharedBackends,
    rate_limiter: RateLimiterBackend | None,
    prefix: str | None,
    clock: Clock,
) -> RateLimiterBackend:
    """``rate_limiter=``, else the app-wide Redis, else SQL, else memory."""
    if rate_limiter is not None and prefix is not None:
        raise ConfigurationError("rate_limit_prefix only applies to the default limiter")
    if rate_limiter is not None:
        if not isinstance(rate_limiter, RateLimiterBackend):
            raise ConfigurationError("rate_limiter must be a crudauth.ratelimit.RateLimiterBackend")
        return rate_limiter
    if shared.redis_client is not None:
        from crudauth.ratelimit.redis import RedisBackend

        return RedisBackend(shared.redis_client, prefix=prefix or "crudauth:rl:", owns_client=False)
    if shared.database_store is not None:
        from crudauth.ratelimit.database import DatabaseRateLimiterBackend

        return DatabaseRateLimiterBackend(shared.database_store, prefix or "")
    return MemoryRateLimiterBackend(clock)


def token_store(
    shared: SharedBackends, transports: Sequence[Transport | type[Transport]], clock: Clock
) -> KeyValueStore:
    """The app-wide Redis, else SQL, else a session transport's Redis (the 0.6 form,
    ``SessionTransport(backend="redis", redis_url=...)``), else memory."""
    from_transport = next(
        (own for t in transports if isinstance(t, Transport) and (own := t.own_redis())),
        None,
    )
    if shared.redis_client is None and shared.database_store is not None:
        return shared.database_store.kv_store()
    if shared.redis_client is not None or from_transport is not None:
        from crudauth.storage.redis import RedisKeyValueStore

        if shared.redis_client is not None:
            return RedisKeyValueStore(shared.redis_client)
        assert from_transport is not None
        client, url = from_transport
        if client is not None:
            return RedisKeyValueStore(client)
        return RedisKeyValueStore(url=url)  # owns (and closes) a client of its own
    return MemoryKeyValueStore(clock)
