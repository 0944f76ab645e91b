"""The user-model mixin: ``make_auth_identity(...)`` and its default, ``AuthUserMixin``.

The application owns its model; the mixin only contributes the columns crudauth reads. A
case-insensitive unique index on ``lower(username)`` is attached when the model is mapped, so
``Alice`` and ``alice`` can never both exist, even when two registrations race.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Table, Text, func
from sqlalchemy.orm import mapped_column

from crudauth.errors import ConfigurationError

_KNOWN_IDENTIFIERS = ("email", "username")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def attach_username_index(table: Table, column_name: str = "username") -> None:
    """Add a unique index on ``lower(<column>)`` to ``table`` unless one is there already."""
    name = f"uq_{table.name}_{column_name}_ci"
    if column_name not in table.c or any(ix.name == name for ix in table.indexes):
        return
    Index(name, func.lower(table.c[column_name]), unique=True)


def make_auth_identity(
    *,
    identifiers: Sequence[str] = ("email", "username"),
    recovery: str | None = "email",
    oauth: bool = True,
    mfa: bool = False,
) -> type:
    """Build a declarative mixin with the columns for this account shape."""
    if isinstance(identifiers, str):
        raise ConfigurationError("identifiers must be a sequence, e.g. ('email', 'username')")
    idents = tuple(identifiers)
    unknown = [i for i in idents if i not in _KNOWN_IDENTIFIERS]
    if not idents or unknown:
        raise ConfigurationError(f"identifiers must be drawn from {_KNOWN_IDENTIFIERS}")
    if oauth and "email" not in idents:
        raise ConfigurationError("oauth=True needs 'email' among the identifiers")

    ns: dict[str, Any] = {
        "id": mapped_column(Integer, primary_key=True, autoincrement=True),
        "username": mapped_column(String(64), unique=True, index=True, nullable=False),
        "hashed_password": mapped_column(String(255), nullable=False),
        "is_active": mapped_column(Boolean, nullable=False, default=True),
        "is_superuser": mapped_column(Boolean, nullable=False, default=False),
        "email_verified": mapped_column(Boolean, nullable=False, default=False),
        "token_version": mapped_column(Integer, nullable=False, default=0),
        "created_at": mapped_column(DateTime(timezone=True), nullable=False, default=_utcnow),
        "updated_at": mapped_column(DateTime(timezone=True), nullable=True, onupdate=_utcnow),
    }
    if "email" in idents or recovery == "email":
        ns["email"] = mapped_column(
            String(320), unique=True, index=True, nullable="email" not in idents
        )
    if recovery not in (None, "email"):
        ns[f"{recovery}_verified"] = mapped_column(Boolean, nullable=False, default=False)
    if oauth:
        ns["oauth_provider"] = mapped_column(String(32), nullable=True)
        ns["google_id"] = mapped_column(String(64), unique=True, index=True, nullable=True)
        ns["github_id"] = mapped_column(String(64), unique=True, index=True, nullable=True)
        ns["oauth_created_at"] = mapped_column(DateTime(timezone=True), nullable=True)
        ns["oauth_updated_at"] = mapped_column(DateTime(timezone=True), nullable=True)
    if mfa:
        ns["totp_secret_encrypted"] = mapped_column(String(255), nullable=True)
        ns["totp_confirmed_at"] = mapped_column(DateTime(timezone=True), nullable=True)
        ns["totp_last_step"] = mapped_column(Integer, nullable=True)
        ns["mfa_recovery_codes"] = mapped_column(Text, nullable=True)

    def __init_subclass__(cls: type[Any], /, **kwargs: Any) -> None:
        # Runs the declarative mapping first (it lives in the base's __init_subclass__), then
        # adds the case-insensitive index to the freshly made table.
        parent: Any = super(mixin, cls)
        parent.__init_subclass__(**kwargs)
        table = cls.__dict__.get("__table__")
        if isinstance(table, Table):
            attach_username_index(table)

    ns["__init_subclass__"] = classmethod(__init_subclass__)
    ns["__crudauth_shape__"] = {
        "identifiers": idents,
        "recovery": recovery,
        "oauth": oauth,
        "mfa": mfa,
    }
    mixin = type("AuthIdentityMixin", (), ns)
    return mixin


AuthUserMixin: type = make_auth_identity()
"""The default account shape: email and username login, email recovery, OAuth columns."""
