"""The session-store port.

Every operation that security depends on is abstract, so a backend that lacks one fails when it
is instantiated, never silently at run time. Each operation is atomic in every backend: a
record never comes back after ``delete`` (no resurrection by a concurrent ``update``), and
``create`` enforces the per-user cap in the same step that indexes the new record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class SessionRecord:
    """What the server keeps about one session. The session id itself is never stored."""

    user_id: str
    handle: str
    csrf_digest: str
    created_at: float
    last_activity: float
    idle_timeout: float
    absolute_expires_at: float
    token_version: int | None = None
    remember_me: bool = False
    ip_address: str | None = None
    user_agent: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def deadline(self) -> float:
        """When the record dies if nothing touches it."""
        return min(self.last_activity + self.idle_timeout, self.absolute_expires_at)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionRecord:
        return cls(**data)


class StartedLoad(Protocol):
    """A ``load`` already on its way to the store (see ``SessionStore.start_load``)."""

    async def record(self) -> SessionRecord | None:
        """What ``load`` would have returned (same errors)."""

    def discard(self) -> None:
        """Give up on the answer (the caller failed meanwhile); never raises."""


class SessionStore(ABC):
    """Keeps ``SessionRecord``s under opaque keys (keyed hashes of session ids)."""

    #: Names the backend in the memory-backend warning and in errors.
    kind: str = "custom"
    #: True when state lives in this process only (not shared between workers).
    in_memory: bool = False
    #: True when ``start_load`` can send a read without waiting.
    starts_loads: bool = False

    async def initialize(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Connect and verify the backend (no-op by default)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release what ``initialize`` opened (no-op by default)."""

    @abstractmethod
    async def create(self, key: str, record: SessionRecord, *, max_per_user: int) -> list[str]:
        """Store ``record``, index it under its user, and evict the least recently active
        sessions beyond ``max_per_user`` (0 means no cap). Return the evicted keys.

        "Recently active" is the store's own order of each record's creation and slides (see
        ``load``), never the records' times: those come from the callers' clocks, which
        disagree between workers, and a sign-in on a clock that runs behind must not rank its
        own new session last. Concurrent creates on any worker rank by that same order, so
        together they leave exactly ``max_per_user``."""

    @abstractmethod
    async def load(self, key: str, *, now: float, slide_after: float) -> SessionRecord | None:
        """Return the live record, and if its ``last_activity`` is ``slide_after`` seconds old
        or more, move it to ``now`` and re-arm the expiry in the same step."""

    def start_load(self, key: str, *, now: float, slide_after: float) -> StartedLoad | None:
        """Send ``load`` now without waiting for the answer, so that the caller can overlap it
        with other I/O (the request's user-row read); ``None`` when this store cannot, in which
        case the caller awaits ``load``. The default cannot."""
        return None

    @abstractmethod
    async def update(self, key: str, changes: dict[str, Any]) -> bool:
        """Apply ``changes`` to a live record; never re-creates a deleted or expired one."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Delete one record (and its index entry). True if it existed."""

    @abstractmethod
    async def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete every record of ``user_id`` except ``keep``; return how many."""

    @abstractmethod
    async def list_for_user(self, user_id: str) -> list[tuple[str, SessionRecord]]:
        """Every live record of ``user_id`` with its key."""


class KeyValueStore(ABC):
    """Short-lived values with atomic single-use semantics (recovery tokens, OAuth state,
    MFA challenges). Values are strings; ``ttl`` is in seconds."""

    kind: str = "custom"
    in_memory: bool = False

    async def initialize(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Connect and verify the backend (no-op by default)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release what ``initialize`` opened (no-op by default)."""

    @abstractmethod
    async def set(self, key: str, value: str, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any old value."""

    @abstractmethod
    async def get(self, key: str) -> str | None:
        """The live value, or ``None``."""

    @abstractmethod
    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        """Store only if no live value exists; True if this call stored it (one atomic step)."""

    @abstractmethod
    async def get_and_delete(self, key: str) -> str | None:
        """Return and remove the live value in one atomic step; ``None`` for every loser."""

    @abstractmethod
    async def compare_and_set(self, key: str, expected: str, value: str, ttl: float) -> bool:
        """Replace the live value with ``value`` only if it still equals ``expected`` (one
        atomic step); True if replaced. Rotation schemes (refresh-token families) use it."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if it held a live value."""
