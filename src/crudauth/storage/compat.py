"""The reference storage API: pydantic models kept as JSON with a lifetime, over ``KeyValueStore``.

``AbstractSessionStorage[T]`` is one class written against the port, so memory, Redis (and
Cluster) and SQL get the same behaviour from the same code, including the operations that must
be atomic (``modify``, ``set_if_absent``, ``get_and_delete``). A value is stored as an envelope
``{"v": <model JSON>, "exp": <absolute deadline>, "ix": <index bound>}``: the deadline is what
lets ``update(reset_expiration=False)`` keep the time left, since the port takes a fresh TTL on
every write. ``update``, ``extend`` and ``modify`` replace the envelope by ``compare_and_set``
against exactly what they read, retrying on conflict: no change is lost, and a deleted value is
never written back. Each user's values are listed in an index (``compat_index.py``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from crudauth.clock import Clock, SystemClock
from crudauth.errors import StoreUnavailable
from crudauth.storage.base import KeyValueStore
from crudauth.storage.compat_index import MAX_ATTEMPTS, change_index, index_key, indexed
from crudauth.storage.memory import MemoryKeyValueStore

if TYPE_CHECKING:
    from crudauth.storage.database import DatabaseStore

T = TypeVar("T", bound=BaseModel)

#: An index entry outlives the record it lists by this much, so extending a record rewrites its
#: index entry at most once per this many seconds instead of on every call.
INDEX_MARGIN = 3600.0

_UNSCANNABLE = (
    "{name}() is not supported: crudauth's KeyValueStore port has no key scans on purpose "
    "(a scan is O(keyspace), not atomic, and needs every Redis Cluster node). Keep the ids "
    "you need to find again, or use get_user_sessions() for a user's sessions."
)


@dataclass(frozen=True)
class _Entry:
    """One live envelope as read, with the exact string that ``compare_and_set`` expects."""

    raw: str
    value: Any
    deadline: float
    indexed_until: float | None

    @property
    def user_id(self) -> str | None:
        return _user_of(self.value)


def _user_of(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("user_id") is not None:
        return str(value["user_id"])
    return None


def _positive(expiration: float | None) -> None:
    if expiration is not None and expiration <= 0:
        raise ValueError(f"expiration must be positive seconds, not {expiration!r}")


class AbstractSessionStorage(Generic[T]):
    """Pydantic models under ``{prefix}{id}``, each with a lifetime in seconds.

    Despite the name (kept from the reference API), this class is complete: give it any
    ``KeyValueStore``. The subclasses below only choose the store.
    """

    def __init__(
        self,
        store: KeyValueStore,
        *,
        prefix: str = "session:",
        expiration: float = 1800,
        clock: Clock | None = None,
    ) -> None:
        _positive(expiration)
        self.store = store
        self.prefix = prefix
        self.expiration = expiration
        self._clock = clock or SystemClock()

    @property
    def clock(self) -> Clock:
        """The clock deadlines are computed with: the one the store expires by."""
        return self._clock

    def generate_session_id(self) -> str:
        """A new random id: 256 bits from ``secrets``, URL-safe (not a 122-bit uuid4)."""
        return secrets.token_urlsafe(32)

    def get_key(self, session_id: str) -> str:
        """The store key of ``session_id``: the prefix followed by the id."""
        return f"{self.prefix}{session_id}"

    def _users_key(self, user_id: str) -> str:
        return index_key(self.prefix, user_id)

    def _lifetime(self, expiration: float | None) -> float:
        _positive(expiration)
        return self.expiration if expiration is None else expiration

    def _parse(self, raw: str | None) -> _Entry | None:
        if raw is None:
            return None
        envelope = json.loads(raw)
        entry = _Entry(raw, envelope["v"], float(envelope["exp"]), envelope.get("ix"))
        return entry if entry.deadline > self.clock.now() else None

    async def _read(self, session_id: str) -> _Entry | None:
        return self._parse(await self.store.get(self.get_key(session_id)))

    async def _prepare(
        self, session_id: str, value: Any, deadline: float, indexed_until: float | None
    ) -> str:
        """The envelope to write; indexes the record first, so it never exists unlisted."""
        user_id = _user_of(value)
        if user_id is not None and (indexed_until is None or indexed_until < deadline):
            indexed_until = deadline + INDEX_MARGIN
            await self._index_add(user_id, session_id, indexed_until)
        return json.dumps({"v": value, "exp": deadline, "ix": indexed_until})

    async def _rewrite(self, session_id: str, step: Callable[[_Entry], tuple[Any, float]]) -> bool:
        """Replace a live envelope with ``step(current)``; False if there is none."""
        key = self.get_key(session_id)
        for _ in range(MAX_ATTEMPTS):
            current = await self._read(session_id)
            if current is None:
                return False
            value, deadline = step(current)
            same_user = _user_of(value) == current.user_id
            indexed = current.indexed_until if same_user else None
            new = await self._prepare(session_id, value, deadline, indexed)
            ttl = deadline - self.clock.now()
            if ttl <= 0:
                return False  # its time ran out while we worked: leave it to expire
            if await self.store.compare_and_set(key, current.raw, new, ttl):
                return True
        raise StoreUnavailable(f"{key!r} kept changing under a compare-and-set")

    async def create(
        self, data: T, session_id: str | None = None, expiration: float | None = None
    ) -> str:
        """Store ``data`` (replacing any value under the id) and return its id."""
        session_id = session_id or self.generate_session_id()
        lifetime = self._lifetime(expiration)
        value = data.model_dump(mode="json")
        envelope = await self._prepare(session_id, value, self.clock.now() + lifetime, None)
        await self.store.set(self.get_key(session_id), envelope, lifetime)
        return session_id

    async def get(self, session_id: str, model: type[T]) -> T | None:
        """The live value as ``model``, or ``None``."""
        entry = await self._read(session_id)
        return None if entry is None else model.model_validate(entry.value)

    async def update(
        self,
        session_id: str,
        data: T,
        reset_expiration: bool = True,
        expiration: float | None = None,
    ) -> bool:
        """Replace a live value; never re-creates a deleted or expired one.

        With ``reset_expiration`` the lifetime starts again (``expiration`` or the default);
        without it the value keeps the time it had left.
        """
        lifetime = self._lifetime(expiration)
        value = data.model_dump(mode="json")

        def step(current: _Entry) -> tuple[Any, float]:
            deadline = self.clock.now() + lifetime if reset_expiration else current.deadline
            return value, deadline

        return await self._rewrite(session_id, step)

    async def delete(self, session_id: str, user_id: str | int | None = None) -> bool:
        """Remove the value (and its index entry); True if it was live."""
        entry = self._parse(await self.store.get_and_delete(self.get_key(session_id)))
        given = None if user_id is None else str(user_id)
        users = {u for u in (given, entry.user_id if entry else None) if u is not None}
        for user in users:
            await self._index_remove(user, session_id)
        return entry is not None

    async def extend(self, session_id: str, expiration: float | None = None) -> bool:
        """Re-arm a live value's lifetime from now; False if it is gone."""
        lifetime = self._lifetime(expiration)
        return await self._rewrite(
            session_id, lambda current: (current.value, self.clock.now() + lifetime)
        )

    async def exists(self, session_id: str) -> bool:
        """True if a live value is stored under ``session_id``."""
        return await self._read(session_id) is not None

    async def modify(
        self,
        session_id: str,
        model: type[T],
        change: Callable[[T], T | None],
        reset_expiration: bool = True,
        expiration: float | None = None,
    ) -> T | None:
        """Read, apply ``change`` and write back in one atomic step; return the new value.

        ``change`` gets a fresh copy of the current value and returns the new one, or ``None``
        after changing its argument in place. It runs again whenever another writer got in
        first, so it must have no side effects. ``None`` if there is no live value.
        """
        lifetime = self._lifetime(expiration)
        written: list[T] = []

        def step(current: _Entry) -> tuple[Any, float]:
            item = model.model_validate(current.value)
            result = change(item)
            new = item if result is None else result
            written[:] = [new]
            deadline = self.clock.now() + lifetime if reset_expiration else current.deadline
            return new.model_dump(mode="json"), deadline

        return written[0] if await self._rewrite(session_id, step) else None

    async def set_if_absent(
        self, session_id: str, data: T, expiration: float | None = None
    ) -> bool:
        """Store ``data`` only if no live value exists; exactly one concurrent caller wins."""
        lifetime = self._lifetime(expiration)
        value = data.model_dump(mode="json")
        envelope = await self._prepare(session_id, value, self.clock.now() + lifetime, None)
        return await self.store.set_if_absent(self.get_key(session_id), envelope, lifetime)

    async def get_and_delete(self, session_id: str, model: type[T]) -> T | None:
        """Return and remove the live value; every concurrent loser gets ``None``."""
        entry = self._parse(await self.store.get_and_delete(self.get_key(session_id)))
        if entry is None:
            return None
        if entry.user_id is not None:
            await self._index_remove(entry.user_id, session_id)
        return model.model_validate(entry.value)

    async def get_user_sessions(self, user_id: str | int) -> list[str]:
        """Ids of ``user_id``'s live values (those whose model has that ``user_id``; ids are
        compared as text, so ``42`` and ``"42"`` are the same user)."""
        user_id = str(user_id)
        found: list[str] = []
        for session_id in await indexed(self.store, self._users_key(user_id), self.clock):
            entry = await self._read(session_id)
            if entry is not None and entry.user_id == user_id:
                found.append(session_id)
        return found

    async def remove_from_user_index(self, user_id: str | int, session_id: str) -> None:
        """Drop ``session_id`` from ``user_id``'s index (the value itself stays)."""
        await self._index_remove(str(user_id), session_id)

    async def _index_add(self, user_id: str, session_id: str, bound: float) -> None:
        def add(entries: dict[str, float]) -> None:
            entries[session_id] = max(entries.get(session_id, 0.0), bound)

        await change_index(self.store, self._users_key(user_id), self.clock, add)

    async def _index_remove(self, user_id: str, session_id: str) -> None:
        await change_index(
            self.store,
            self._users_key(user_id),
            self.clock,
            lambda entries: entries.pop(session_id, None),
        )

    async def scan_keys(self, pattern: str) -> list[str]:
        """Not supported: the ``KeyValueStore`` port deliberately has no key scans.

        A scan walks the whole keyspace, sees a moving snapshot (so nothing built on it is
        atomic) and on Redis Cluster must visit every node. An empty list would read as "no
        such keys", so this raises instead.
        """
        raise NotImplementedError(_UNSCANNABLE.format(name="scan_keys"))

    async def delete_pattern(self, pattern: str) -> int:
        """Not supported (see ``scan_keys``): raises rather than report zero deletions."""
        raise NotImplementedError(_UNSCANNABLE.format(name="delete_pattern"))

    async def initialize(self) -> None:
        """Connect and check the backend."""
        await self.store.initialize()

    async def close(self) -> None:
        """Release what the backend opened (a Redis client is closed only if built here)."""
        await self.store.close()


class MemorySessionStorage(AbstractSessionStorage[T]):
    """Values in this process only: for development, tests and single-process apps."""

    def __init__(
        self,
        *,
        prefix: str = "session:",
        expiration: float = 1800,
        clock: Clock | None = None,
    ) -> None:
        clock = clock or SystemClock()
        super().__init__(
            MemoryKeyValueStore(clock), prefix=prefix, expiration=expiration, clock=clock
        )


class RedisSessionStorage(AbstractSessionStorage[T]):
    """Values in Redis (single node, Sentinel or Cluster through ``client``).

    Pass your own ``client`` (never closed here) or a ``redis_url`` (default
    ``redis://localhost:6379/0``); a client built from the URL is owned and closed by
    ``close()``. Keys are ``{namespace}kv:{prefix}{id}``, so they cannot collide with values
    written by other libraries under a bare ``session:`` prefix.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        redis_url: str | None = None,
        prefix: str = "session:",
        expiration: float = 1800,
        namespace: str = "crudauth:",
    ) -> None:
        if client is not None and redis_url is not None:
            raise ValueError("pass either client or redis_url, not both")
        # Imported here so that the base install (without the redis package) can import this.
        from crudauth.storage.redis import RedisKeyValueStore

        store = RedisKeyValueStore(client, url=redis_url, namespace=namespace)
        super().__init__(store, prefix=prefix, expiration=expiration)


class DatabaseSessionStorage(AbstractSessionStorage[T]):
    """Values in the ``DatabaseStore``'s key-value table, expiring by the store's clock."""

    def __init__(
        self,
        database: DatabaseStore,
        *,
        prefix: str = "session:",
        expiration: float = 1800,
    ) -> None:
        self.database = database
        super().__init__(database.kv_store(), prefix=prefix, expiration=expiration)

    @property
    def clock(self) -> Clock:
        # Read each time: CRUDAuth may hand the store its own clock after construction.
        return self.database.clock


def get_session_storage(
    backend: Literal["memory", "redis", "database"] = "memory",
    *,
    prefix: str = "session:",
    expiration: float = 1800,
    redis_url: str | None = None,
    client: Any = None,
    database: DatabaseStore | None = None,
) -> AbstractSessionStorage[Any]:
    """Build a storage for ``backend``.

    ``"redis"`` uses ``client``, else ``redis_url``, else ``redis://localhost:6379/0``;
    ``"database"`` needs ``database``. Options that the chosen backend would ignore are
    rejected, so a forgotten ``backend="redis"`` cannot quietly keep sessions in memory.
    """
    if backend not in ("memory", "redis", "database"):
        raise ValueError(f"unknown storage backend {backend!r}: use memory, redis or database")
    if backend != "redis" and (redis_url is not None or client is not None):
        raise ValueError(f"redis_url and client apply to backend='redis', not {backend!r}")
    if backend != "database" and database is not None:
        raise ValueError(f"database applies to backend='database', not {backend!r}")
    if backend == "redis":
        return RedisSessionStorage(
            client, redis_url=redis_url, prefix=prefix, expiration=expiration
        )
    if backend == "database":
        if database is None:
            raise ValueError("backend='database' needs database=DatabaseStore(...)")
        return DatabaseSessionStorage(database, prefix=prefix, expiration=expiration)
    return MemorySessionStorage(prefix=prefix, expiration=expiration)
