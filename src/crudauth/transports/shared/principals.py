"""The ``Principal`` built from an ORM user row, shared by every transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crudauth.identity.repository import AuthRow
from crudauth.principal import Principal, assemble_principal
from crudauth.runtime import AuthRuntime


def build_principal(
    runtime: AuthRuntime,
    user: Any,
    transport: str,
    metadata: dict[str, Any],
    scopes: frozenset[str] = frozenset(),
    row: AuthRow | None = None,
) -> Principal:
    """The ``Principal`` for an authenticated ORM user row.

    ``metadata`` becomes the principal's own (pass a fresh dict); ``row`` is the row's
    ``auth_row`` if the caller has read it already.
    """
    if row is None:
        row = runtime.repo.auth_row(user)
    return assemble_principal(
        row.user_id,
        scopes,
        transport,
        user,
        row.is_superuser,
        row.email_verified,
        row.recovery_verified,
        metadata,
    )


def claims_snapshot(principal: Principal) -> dict[str, bool]:
    """The flags ``current_user(load_user=False)`` serves without reading the user row."""
    return {
        "su": principal.is_superuser,
        "ev": principal.email_verified,
        "rv": principal.recovery_verified,
    }


def snapshot_principal(
    user_id: Any,
    transport: str,
    snapshot: Mapping[str, Any],
    metadata: dict[str, Any],
    scopes: frozenset[str] = frozenset(),
) -> Principal:
    """The ``Principal`` of ``current_user(load_user=False)``: the flags from a snapshot
    (``claims_snapshot``'s keys, a missing one read as ``False``), no user row."""
    return assemble_principal(
        user_id,
        scopes,
        transport,
        None,
        bool(snapshot.get("su", False)),
        bool(snapshot.get("ev", False)),
        bool(snapshot.get("rv", False)),
        metadata,
    )
