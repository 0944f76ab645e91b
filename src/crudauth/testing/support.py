"""What the conformance suites share: the ``advance`` fixture's type, fresh records and keys."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from crudauth.clock import FrozenClock
from crudauth.storage.base import SessionRecord

Advance = Callable[[float], Awaitable[None]]
"""The ``advance`` fixture a conformance suite needs: move the backend's time on by seconds."""


def make_record(
    clock: FrozenClock,
    user_id: str = "1",
    *,
    idle: float = 600,
    absolute: float = 3600,
    at: float | None = None,
) -> SessionRecord:
    """A fresh record for ``user_id`` starting now (or at ``at``)."""
    now = clock.now() if at is None else at
    return SessionRecord(
        user_id=user_id,
        handle=secrets.token_hex(16),
        csrf_digest=secrets.token_hex(32),
        created_at=now,
        last_activity=now,
        idle_timeout=idle,
        absolute_expires_at=now + absolute,
        token_version=0,
        metadata={"login_type": "password", "tags": []},
    )


def new_key() -> str:
    """A random key, so that tests sharing one backend never meet."""
    return secrets.token_hex(32)
