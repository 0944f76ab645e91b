"""``IdentityConfig``: which fields sign in and which one recovers an account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from crudauth.errors import ConfigurationError


@dataclass(frozen=True)
class IdentityConfig:
    """Login fields, tried in order (first match wins), and the recovery factor.

    ``recovery=None`` means no recovery routes, and ``current_user(verified=True)`` becomes a
    configuration error.
    """

    login: Sequence[str] = field(default_factory=lambda: ("email", "username"))
    recovery: str | None = "email"

    def __post_init__(self) -> None:
        if isinstance(self.login, str):
            raise ConfigurationError("IdentityConfig.login must be a sequence of field names")
        login = tuple(self.login)
        if not login:
            raise ConfigurationError("IdentityConfig.login needs at least one field")
        if len(set(login)) != len(login):
            raise ConfigurationError("IdentityConfig.login lists a field twice")
        object.__setattr__(self, "login", login)
        if self.recovery is not None and not self.recovery:
            raise ConfigurationError("IdentityConfig.recovery must be a field name or None")

    @property
    def recovery_verified_field(self) -> str | None:
        """The logical flag that marks the recovery factor as verified."""
        if self.recovery is None:
            return None
        return "email_verified" if self.recovery == "email" else f"{self.recovery}_verified"
