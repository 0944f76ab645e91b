"""Counters in the app's SQL database."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

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
from crudauth.storage.database import DatabaseStore


class DatabaseRateLimiterBackend(RateLimiterBackend):
    """One row per counter; an increment is an UPDATE, or an INSERT on first touch."""

    kind = "database"

    def __init__(self, store: DatabaseStore, prefix: str = "") -> None:
        self.store = store
        self.table = store.counter_table
        self.prefix = prefix
        self._state = store.kv_store()

    async def increment(self, key: str, amount: int = 1, expiry: float | None = None) -> int:
        t, key = self.table, self.prefix + key
        now = self.store.clock.now()
        for _ in range(5):
            async with self.store.transaction() as db:
                await db.execute(delete(t).where(t.c.key == key, t.c.expires_at <= now))
                result = await db.execute(
                    update(t)
                    .where(t.c.key == key)
                    .values(count=t.c.count + amount)
                    .returning(t.c.count)
                )
                row = result.first()
                if row is not None:
                    return int(row[0])
            try:
                async with self.store.transaction() as db:
                    deadline = now + expiry if expiry is not None else None
                    await db.execute(insert(t).values(key=key, count=amount, expires_at=deadline))
                return amount
            except IntegrityError:
                continue  # another worker created it first: go round and update it
        raise RuntimeError("counter increment kept conflicting")

    async def get_count(self, key: str) -> int:
        t = self.table
        now = self.store.clock.now()
        async with self.store.transaction() as db:
            row = (
                await db.execute(
                    select(t.c.count, t.c.expires_at).where(t.c.key == self.prefix + key)
                )
            ).first()
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            return 0
        return int(row[0])

    async def get_ttl(self, key: str) -> float:
        t = self.table
        async with self.store.transaction() as db:
            row = (
                await db.execute(select(t.c.expires_at).where(t.c.key == self.prefix + key))
            ).first()
        if row is None or row.expires_at is None:
            return 0.0
        return max(0.0, float(row.expires_at) - self.store.clock.now())

    async def reset(self, key: str) -> None:
        t = self.table
        async with self.store.transaction() as db:
            await db.execute(delete(t).where(t.c.key == self.prefix + key))

    async def ping(self) -> bool:
        try:
            async with self.store.transaction() as db:
                await db.execute(select(1))
        except Exception:
            return False
        return True

    async def lockout_reserve(
        self, key: str, config: LockoutConfig, now: float, *, hard_cap: bool
    ) -> Reservation:
        return await cas_reserve(
            self._state, f"rl:{self.prefix}{key}", config, now, hard_cap=hard_cap
        )

    async def lockout_release(
        self, key: str, config: LockoutConfig, now: float, *, clear: bool
    ) -> None:
        await cas_release(self._state, f"rl:{self.prefix}{key}", config, now, clear=clear)

    async def throttle(self, key: str, limit: RateLimit, now: float) -> ThrottleResult:
        return await cas_throttle(self._state, f"rl:t:{self.prefix}{key}", limit, now)
