"""The ``Principal`` built from an ORM user row, shared by every transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime


def build_principal(
    runtime: AuthRuntime,
    user: Any,
    transport: str,
    metadata: Mapping[str, Any],
    scopes: frozenset[str] = frozenset(),
) -> Principal:
    """The ``Principal`` for an authenticated ORM user row."""
    repo = runtime.repo
    verified_field = runtime.identity.recovery_verified_field
    return Principal(
        user_id=repo.user_id(user),
        scopes=scopes,
        transport=transport,
        user=user,
        is_superuser=bool(repo.value(user, "is_superuser", False)),
        email_verified=bool(repo.value(user, "email_verified", False)),
        recovery_verified=bool(repo.value(user, verified_field, False))
        if verified_field
        else False,
        metadata=dict(metadata),
    )


def claims_snapshot(principal: Principal) -> dict[str, bool]:
    """The flags ``current_user(load_user=False)`` serves without reading the user row."""
    return {
        "su": principal.is_superuser,
        "ev": principal.email_verified,
        "rv": principal.recovery_verified,
    }
