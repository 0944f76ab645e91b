"""Lockout and throttle steps over any ``KeyValueStore``, made atomic by compare-and-set.

The memory and SQL limiters use this; Redis runs the same arithmetic in Lua instead.
"""

from __future__ import annotations

from crudauth.ratelimit.policy import (
    LockoutConfig,
    LockState,
    RateLimit,
    Reservation,
    ThrottleResult,
    release,
    reserve,
    state_ttl,
    throttle,
)
from crudauth.storage.base import KeyValueStore

_ATTEMPTS = 100


class Contended(RuntimeError):
    """Compare-and-set kept losing; treated like an unavailable backend by the caller."""


async def _swap(store: KeyValueStore, key: str, old: str | None, new: str, ttl: float) -> bool:
    if old is None:
        return await store.set_if_absent(key, new, ttl)
    return await store.compare_and_set(key, old, new, ttl)


async def cas_reserve(
    store: KeyValueStore, key: str, config: LockoutConfig, now: float, *, hard_cap: bool
) -> Reservation:
    for _ in range(_ATTEMPTS):
        raw = await store.get(key)
        state = LockState.loads(raw)
        new, decision, ttl = reserve(state, now, config, hard_cap=hard_cap)
        if new == state and not decision.hard_locked:
            return decision  # refused by an existing lock: nothing to write
        if await _swap(store, key, raw, new.dumps(), ttl):
            return decision
    raise Contended(key)


async def cas_release(
    store: KeyValueStore, key: str, config: LockoutConfig, now: float, *, clear: bool
) -> None:
    if clear:
        await store.delete(key)
        return
    for _ in range(_ATTEMPTS):
        raw = await store.get(key)
        if raw is None:
            return
        new = release(LockState.loads(raw))
        if await store.compare_and_set(key, raw, new.dumps(), state_ttl(new, now, config)):
            return
    raise Contended(key)


async def cas_throttle(
    store: KeyValueStore, key: str, limit: RateLimit, now: float
) -> ThrottleResult:
    for _ in range(_ATTEMPTS):
        raw = await store.get(key)
        tat, result = throttle(float(raw) if raw is not None else None, now, limit)
        if not result.allowed:
            return result
        if await _swap(store, key, raw, repr(tat), max(tat - now, 0.001)):
            return result
    raise Contended(key)
