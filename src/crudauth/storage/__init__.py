"""State stores: ports and backends for sessions and single-use values.

Backends: memory (per process, development), Redis (``crudauth[redis]``), SQL
(:class:`DatabaseStore`). The Redis classes are imported lazily so that the base install does
not need the ``redis`` package.
"""

from typing import Any

from crudauth.storage.base import KeyValueStore, SessionRecord, SessionStore
from crudauth.storage.compat import (
    AbstractSessionStorage,
    DatabaseSessionStorage,
    MemorySessionStorage,
    RedisSessionStorage,
    get_session_storage,
)
from crudauth.storage.database import (
    DatabaseKeyValueStore,
    DatabaseSessionStore,
    DatabaseStore,
)
from crudauth.storage.memory import MemoryKeyValueStore, MemorySessionStore

__all__ = [
    "AbstractSessionStorage",
    "DatabaseKeyValueStore",
    "DatabaseSessionStorage",
    "DatabaseSessionStore",
    "DatabaseStore",
    "KeyValueStore",
    "MemoryKeyValueStore",
    "MemorySessionStorage",
    "MemorySessionStore",
    "RedisKeyValueStore",
    "RedisSessionStorage",
    "RedisSessionStore",
    "SessionRecord",
    "SessionStore",
    "get_session_storage",
]


def __getattr__(name: str) -> Any:
    if name in ("RedisSessionStore", "RedisKeyValueStore"):
        from crudauth.storage import redis as redis_backend

        return getattr(redis_backend, name)
    raise AttributeError(name)
