"""The key ring: one master secret plus fallbacks, and a separate derived key per purpose.

The newest secret signs; every secret verifies, so rotating ``SECRET_KEY`` (moving the old value
into ``secret_fallbacks``) logs nobody out. No purpose ever shares a key with another, so a value
minted for one use (a CSRF binding, say) can never pass as another (a session id hash).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from typing import Final

from crudauth.errors import ConfigurationError

logger = logging.getLogger("crudauth")

MIN_SECRET_BYTES: Final = 32

# Values that show up in tutorials and .env.example files; a deploy that kept one is a breach.
_PLACEHOLDERS: Final = frozenset(
    {
        "secret",
        "changeme",
        "change-me",
        "change_me",
        "your-secret-key",
        "your_secret_key",
        "supersecret",
        "super-secret",
        "secret-key",
        "secret_key",
        "dev",
        "development",
        "test",
        "insecure",
    }
)


class Purpose:
    """Labels of the derived keys. A new purpose is a new label, never a reused one."""

    SESSION_ID: Final = "session-id"
    SESSION_HANDLE: Final = "session-handle"
    CSRF: Final = "csrf"
    ACCESS_TOKEN: Final = "access-token"  # noqa: S105 - a label, not a secret
    REFRESH_TOKEN: Final = "refresh-token"  # noqa: S105 - a label, not a secret
    EMAIL_VERIFY_TOKEN: Final = "email-verify-token"  # noqa: S105 - a label, not a secret
    PASSWORD_RESET_TOKEN: Final = "password-reset-token"  # noqa: S105 - a label, not a secret
    EMAIL_CHANGE_TOKEN: Final = "email-change-token"  # noqa: S105 - a label, not a secret
    RECOVERY_STATE: Final = "recovery-state"
    RECOVERY_TARGET: Final = "recovery-target"


def _as_bytes(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def secret_problem(secret: str | bytes) -> str | None:
    """Say what is wrong with ``secret`` as a production key, or ``None`` if nothing is."""
    raw = _as_bytes(secret)
    if raw.strip().lower().decode("utf-8", "replace") in _PLACEHOLDERS:
        return "is a well-known placeholder"
    if len(raw) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    if len(set(raw)) < 8:
        return "has too little variety to be random"
    return None


class KeyRing:
    """Derives purpose keys from the current secret and its fallbacks."""

    def __init__(
        self,
        secret: str | bytes,
        fallbacks: Sequence[str | bytes] = (),
        *,
        production: bool = False,
    ) -> None:
        if not secret:
            raise ConfigurationError("SECRET_KEY must not be empty")
        secrets_ = [_as_bytes(secret), *(_as_bytes(s) for s in fallbacks)]
        if any(not s for s in secrets_):
            raise ConfigurationError("secret_fallbacks must not contain an empty secret")
        for position, value in enumerate(secrets_):
            problem = secret_problem(value)
            if problem is None:
                continue
            name = "SECRET_KEY" if position == 0 else f"secret_fallbacks[{position - 1}]"
            if production:
                raise ConfigurationError(
                    f"{name} {problem}; use at least {MIN_SECRET_BYTES} random bytes, "
                    "for example secrets.token_urlsafe(48)"
                )
            logger.warning(
                "crudauth: %s %s; acceptable for development only, refused in production",
                name,
                problem,
            )
        self._secrets = tuple(secrets_)
        self._cache: dict[tuple[int, str], bytes] = {}

    def __repr__(self) -> str:
        return f"KeyRing(<{len(self._secrets)} secret(s) hidden>)"

    @property
    def size(self) -> int:
        return len(self._secrets)

    def key(self, purpose: str, index: int = 0) -> bytes:
        """The derived key for ``purpose`` from secret ``index`` (0 is the current one)."""
        cached = self._cache.get((index, purpose))
        if cached is None:
            label = b"crudauth/v1/" + purpose.encode("ascii")
            cached = hmac.new(self._secrets[index], label, hashlib.sha256).digest()
            self._cache[(index, purpose)] = cached
        return cached

    def keys(self, purpose: str) -> list[bytes]:
        """Every key for ``purpose``, newest first."""
        return [self.key(purpose, i) for i in range(len(self._secrets))]

    def kid(self, purpose: str, index: int = 0) -> str:
        """A public, stable id for one purpose key (safe to put in a token header)."""
        return hashlib.sha256(self.key(purpose, index)).hexdigest()[:16]

    def digest(self, purpose: str, value: str | bytes, index: int = 0) -> str:
        """Hex HMAC-SHA256 of ``value`` under the purpose key of secret ``index``."""
        # The one-shot form runs in OpenSSL without Python-level HMAC objects (every session
        # request computes one of these).
        return hmac.digest(self.key(purpose, index), _as_bytes(value), "sha256").hex()

    def digests(self, purpose: str, value: str | bytes) -> list[str]:
        """``digest`` under every secret, newest first (for lookups that survive rotation)."""
        return [self.digest(purpose, value, i) for i in range(len(self._secrets))]

    def matches(self, purpose: str, value: str | bytes, expected: str) -> bool:
        """Constant-time check that some secret's digest of ``value`` equals ``expected``."""
        found = False
        for candidate in self.digests(purpose, value):
            found |= hmac.compare_digest(candidate, expected)
        return found
