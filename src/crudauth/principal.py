"""``Principal``: who is calling, whatever transport carried the credential."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. ``user`` is the application's ORM row (or ``None``)."""

    user_id: Any
    scopes: frozenset[str] = frozenset()
    transport: str = "session"
    user: Any = None
    is_superuser: bool = False
    email_verified: bool = False
    recovery_verified: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def has_scopes(self, required: Iterable[str]) -> bool:
        """True when every scope in ``required`` was granted."""
        return set(required) <= self.scopes
