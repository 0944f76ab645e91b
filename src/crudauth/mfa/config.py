"""``MfaConfig``: TOTP two-factor sign-in settings, checked when ``CRUDAuth`` is built."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from crudauth.errors import ConfigurationError

MfaRequirement: TypeAlias = bool | Callable[[Any], bool | Awaitable[bool]]
"""Whether an account must use two-factor sign-in: a bool for every account, or a sync or
async predicate over the user row (``lambda user: user.is_superuser``)."""


@dataclass(frozen=True)
class MfaConfig:
    """Two-factor sign-in with TOTP (RFC 6238) and recovery codes.

    - ``issuer``: the name authenticator apps show next to the account.
    - ``encryption_key``: one Fernet key, or a list of them: the first encrypts, every one
      decrypts, and a secret read under an older key is re-encrypted under the first. Never
      ``SECRET_KEY``: a leak of one must not open the other.
    - ``required``: ``True``, ``False`` or a predicate over the user; an account that must
      use a second factor and has none enrols during sign-in.
    - ``oauth``: ask OAuth sign-ins for the second factor too.
    - ``challenge_ttl_seconds``: how long a sign-in waits for its code.
    - ``max_code_attempts``: wrong codes after which a pending sign-in dies (each one also
      counts against the account's sign-in lockout).
    - ``recovery_code_count``: how many single-use recovery codes an enrolment gives.
    """

    issuer: str
    encryption_key: str | bytes | Sequence[str | bytes] = field(repr=False)
    required: MfaRequirement = False
    oauth: bool = False
    challenge_ttl_seconds: int = 300
    max_code_attempts: int = 5
    recovery_code_count: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer.strip() or ":" in self.issuer:
            raise ConfigurationError("MfaConfig.issuer must be a non-empty name without ':'")
        if not isinstance(self.required, bool) and not callable(self.required):
            raise ConfigurationError("MfaConfig.required must be a bool or a predicate")
        for name, low, high in (
            ("challenge_ttl_seconds", 30, 3600),
            ("max_code_attempts", 1, 20),
            ("recovery_code_count", 1, 100),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigurationError(f"MfaConfig.{name} must be an integer in [{low}, {high}]")
        if not self.keys:
            raise ConfigurationError("MfaConfig.encryption_key needs at least one Fernet key")

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The encryption keys as bytes, newest first."""
        raw = self.encryption_key
        listed = [raw] if isinstance(raw, (str, bytes)) else list(raw)
        return tuple(
            k.encode("ascii", "replace") if isinstance(k, str) else bytes(k) for k in listed
        )

    async def is_required(self, user: Any) -> bool:
        """Whether ``user`` must sign in with a second factor."""
        if isinstance(self.required, bool):
            return self.required
        answer = self.required(user)
        if inspect.isawaitable(answer):
            answer = await answer
        return bool(answer)
