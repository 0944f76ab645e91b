"""State stores: the session-store port and its backends."""

from crudauth.storage.base import SessionRecord, SessionStore
from crudauth.storage.memory import MemorySessionStore

__all__ = ["MemorySessionStore", "SessionRecord", "SessionStore"]
