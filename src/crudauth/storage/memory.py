"""In-process session store. Per worker only: fine for development and single-process apps."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crudauth.clock import Clock, SystemClock
from crudauth.storage.base import KeyValueStore, SessionRecord, SessionStore


class MemorySessionStore(SessionStore):
    """Dictionaries with expiry read from the injected clock.

    Every method runs without awaiting, so on one event loop each is atomic, the same
    guarantee the Redis and SQL backends give across processes.
    """

    kind = "memory"
    in_memory = True

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._records: dict[str, SessionRecord] = {}
        self._by_user: dict[str, set[str]] = {}
        #: The cap's ranking: when each record was created or last slid, as this store's own
        #: sequence. The records' times come from the caller, whose clock may run behind.
        self._touched: dict[str, int] = {}
        self._events = 0

    def _live(self, key: str, now: float | None = None) -> SessionRecord | None:
        record = self._records.get(key)
        if record is None:
            return None
        if record.deadline() <= (self._clock.now() if now is None else now):
            self._drop(key)
            return None
        return record

    def _drop(self, key: str) -> bool:
        record = self._records.pop(key, None)
        self._touched.pop(key, None)
        if record is None:
            return False
        keys = self._by_user.get(record.user_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[record.user_id]
        return True

    def _user_keys(self, user_id: str) -> list[str]:
        return [k for k in list(self._by_user.get(user_id, ())) if self._live(k) is not None]

    def _touch(self, key: str) -> None:
        self._events += 1
        self._touched[key] = self._events

    async def create(self, key: str, record: SessionRecord, *, max_per_user: int) -> list[str]:
        self._drop(key)
        self._touch(key)
        self._records[key] = replace(record, metadata=dict(record.metadata))
        self._by_user.setdefault(record.user_id, set()).add(key)
        live = self._user_keys(record.user_id)
        evicted: list[str] = []
        if max_per_user > 0 and len(live) > max_per_user:
            # Least recently created or slid first: one process, so one order for every caller.
            live.sort(key=self._touched.__getitem__)
            evicted = live[: len(live) - max_per_user]
            for old in evicted:
                self._drop(old)
        return evicted

    async def load(self, key: str, *, now: float, slide_after: float) -> SessionRecord | None:
        record = self._live(key, now)
        if record is None:
            return None
        if now - record.last_activity >= slide_after:
            record.last_activity = now
            self._touch(key)
        return replace(record, metadata=dict(record.metadata))

    async def update(self, key: str, changes: dict[str, Any]) -> bool:
        record = self._live(key)
        if record is None:
            return False
        self._records[key] = replace(record, **changes)
        return True

    async def delete(self, key: str) -> bool:
        return self._drop(key)

    async def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        doomed = [k for k in self._user_keys(user_id) if k != keep]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    async def list_for_user(self, user_id: str) -> list[tuple[str, SessionRecord]]:
        return [
            (k, replace(self._records[k], metadata=dict(self._records[k].metadata)))
            for k in self._user_keys(user_id)
        ]


class MemoryKeyValueStore(KeyValueStore):
    """Single-use values in a dict; each method is one uninterrupted step on the event loop."""

    kind = "memory"
    in_memory = True

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._values: dict[str, tuple[str, float]] = {}

    def _live(self, key: str) -> str | None:
        item = self._values.get(key)
        if item is None:
            return None
        if item[1] <= self._clock.now():
            del self._values[key]
            return None
        return item[0]

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._values[key] = (value, self._clock.now() + ttl)
        if len(self._values) % 256 == 0:
            self._sweep()

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, value, ttl)
        return True

    async def get_and_delete(self, key: str) -> str | None:
        value = self._live(key)
        if value is not None:
            del self._values[key]
        return value

    async def compare_and_set(self, key: str, expected: str, value: str, ttl: float) -> bool:
        if self._live(key) != expected:
            return False
        await self.set(key, value, ttl)
        return True

    async def delete(self, key: str) -> bool:
        value = self._live(key)
        self._values.pop(key, None)
        return value is not None

    def _sweep(self) -> None:
        now = self._clock.now()
        for key in [k for k, (_, deadline) in self._values.items() if deadline <= now]:
            del self._values[key]
