"""State stores: ports and backends for sessions and single-use values.

Backends: memory (per process, development), Redis (``crudauth[redis]``), SQL
(:class:`DatabaseStore`). The Redis classes are imported lazily so that the base install does
not need the ``redis`` package.
"""

from typing import Any

from crudauth.storage.base import KeyValueStore, SessionRecord, SessionStore
from crudauth.storage.database import (
    DatabaseKeyValueStore,
    DatabaseSessionStore,
    DatabaseStore,
)
from crudauth.storage.memory import MemoryKeyValueStore, MemorySessionStore

__all__ = [
    "DatabaseKeyValueStore",
    "DatabaseSessionStore",
    "DatabaseStore",
    "KeyValueStore",
    "MemoryKeyValueStore",
    "MemorySessionStore",
    "RedisKeyValueStore",
    "RedisSessionStore",
    "SessionRecord",
    "SessionStore",
]


def __getattr__(name: str) -> Any:
    if name in ("RedisSessionStore", "RedisKeyValueStore"):
        from crudauth.storage import redis as redis_backend

        return getattr(redis_backend, name)
    raise AttributeError(name)
