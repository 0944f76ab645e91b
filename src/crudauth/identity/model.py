"""The user-model mixin: ``make_auth_identity(...)`` and its default, ``AuthUserMixin``.

The application owns its model; the mixin only contributes the columns crudauth reads.
``username`` keeps the name as the user typed it (NFKC-normalised); ``username_key`` holds its
case-folded form under a unique constraint, so ``Alice`` and ``alice`` can never both exist,
even when two registrations race, on every database (SQLite's ``lower()`` is ASCII-only, so a
functional index could not promise this).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, DateTime, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from crudauth.errors import ConfigurationError
from crudauth.identity.identifiers import canonical_identifier

_KNOWN_IDENTIFIERS = ("email", "username")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


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
        "username_key": mapped_column(String(255), unique=True, index=True, nullable=True),
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
        ns.update(_oauth_columns())
    if mfa:
        ns.update(_mfa_columns())
    ns["__crudauth_shape__"] = {
        "identifiers": idents,
        "recovery": recovery,
        "oauth": oauth,
        "mfa": mfa,
    }
    mixin = type("AuthIdentityMixin", (), ns)
    # Keep username_key in step with username however the row is written (our routes, an admin
    # script, a data import): it is what lookups and the unique constraint rely on.
    event.listen(mixin, "before_insert", _sync_username_key, propagate=True)
    event.listen(mixin, "before_update", _sync_username_key, propagate=True)
    return mixin


def _oauth_columns() -> dict[str, Any]:
    """The reference's OAuth columns: the last provider, ``{provider}_id``, timestamps."""
    return {
        "oauth_provider": mapped_column(String(32), nullable=True),
        "google_id": mapped_column(String(64), unique=True, index=True, nullable=True),
        "github_id": mapped_column(String(64), unique=True, index=True, nullable=True),
        "oauth_created_at": mapped_column(DateTime(timezone=True), nullable=True),
        "oauth_updated_at": mapped_column(DateTime(timezone=True), nullable=True),
    }


def _mfa_columns() -> dict[str, Any]:
    """The TOTP secret (encrypted), its confirmation, last step, and the recovery codes."""
    return {
        "totp_secret_encrypted": mapped_column(String(255), nullable=True),
        "totp_confirmed_at": mapped_column(DateTime(timezone=True), nullable=True),
        "totp_last_step": mapped_column(Integer, nullable=True),
        "mfa_recovery_codes": mapped_column(Text, nullable=True),
    }


def _sync_username_key(mapper: Any, connection: Any, target: Any) -> None:
    username = getattr(target, "username", None)
    if isinstance(username, str):
        target.username_key = canonical_identifier(username)


if TYPE_CHECKING:
    # What type checkers see: the default shape spelled out, so that ``class User(AuthUserMixin,
    # Base)`` type-checks under ``mypy --strict``. At run time it is built like any other shape.

    class AuthUserMixin:
        """The default account shape: email and username login, email recovery, OAuth columns.

        ``make_auth_identity()`` with its defaults; see that function for the columns.
        """

        id: Mapped[int]
        email: Mapped[str]
        username: Mapped[str]
        username_key: Mapped[str | None]
        hashed_password: Mapped[str]
        is_active: Mapped[bool]
        is_superuser: Mapped[bool]
        email_verified: Mapped[bool]
        token_version: Mapped[int]
        oauth_provider: Mapped[str | None]
        google_id: Mapped[str | None]
        github_id: Mapped[str | None]
        oauth_created_at: Mapped[datetime | None]
        oauth_updated_at: Mapped[datetime | None]
        created_at: Mapped[datetime]
        updated_at: Mapped[datetime | None]

else:
    AuthUserMixin = make_auth_identity()
    """The default account shape: email and username login, email recovery, OAuth columns."""
