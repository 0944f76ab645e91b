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


_set_dict = object.__setattr__


def assemble_principal(
    user_id: Any,
    scopes: frozenset[str],
    transport: str,
    user: Any,
    is_superuser: bool,
    email_verified: bool,
    recovery_verified: bool,
    metadata: Mapping[str, Any],
) -> Principal:
    """``Principal(...)`` for the request path, with every field given and already typed.

    The frozen dataclass's ``__init__`` sets each of the eight fields through
    ``object.__setattr__`` (about 1 us per request); this sets the instance dict once. The
    result is the same object in every respect (a test compares them field by field and pins
    the field list, so a new field cannot be forgotten here).
    """
    principal = object.__new__(Principal)
    _set_dict(
        principal,
        "__dict__",
        {
            "user_id": user_id,
            "scopes": scopes,
            "transport": transport,
            "user": user,
            "is_superuser": is_superuser,
            "email_verified": email_verified,
            "recovery_verified": recovery_verified,
            "metadata": metadata,
        },
    )
    return principal
