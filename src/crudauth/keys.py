"""Key material: the key ring, and the shape every token it keys must have.

The key ring is one master secret plus fallbacks, and a separate derived key per purpose.

The newest secret signs; every secret verifies, so rotating ``SECRET_KEY`` (moving the old value
into ``secret_fallbacks``) logs nobody out. No purpose ever shares a key with another, so a value
minted for one use (a CSRF binding, say) can never pass as another (a session id hash).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from typing import Any, Final, TypeGuard

from crudauth.errors import ConfigurationError

# -- token shape -------------------------------------------------------------------------

# The shape every credential the library issues has, checked before any crypto touches it.
#
# Each token, cookie and CSRF value crudauth mints is URL-safe base64 (or hex, a subset),
# optionally in parts joined by ``.``. Whatever a client sends in their place is checked
# against that shape first: a value with another character (``é``, a lone surrogate from a JSON
# ``\ud800`` escape, a space), too many parts or too many characters is refused as plain
# "invalid" before it is encoded, hashed or compared. Non-ASCII text would otherwise make
# ``str.encode("ascii")`` or ``hmac.compare_digest`` raise, and a long value would cost work.
#: URL-safe base64 without padding (RFC 4648 section 5); hex digests fit in it too.
_PART: Final = "[A-Za-z0-9_-]+"
SEPARATOR: Final = "."


class TokenShape:
    """``parts`` non-empty runs of URL-safe base64 joined by ``.``, at most ``max_length``
    characters in all (and at least ``min_length``)."""

    __slots__ = ("_pattern", "max_length", "min_length", "parts")

    def __init__(self, *, max_length: int, parts: int = 1, min_length: int = 1) -> None:
        if parts < 1 or not 0 < min_length <= max_length:
            raise ValueError("a token shape needs parts >= 1 and 0 < min_length <= max_length")
        self.max_length = max_length
        self.min_length = min_length
        self.parts = parts
        joined = rf"\{SEPARATOR}".join([_PART] * parts)
        self._pattern = re.compile(joined, re.ASCII)

    def __repr__(self) -> str:
        return (
            f"TokenShape(max_length={self.max_length}, parts={self.parts}, "
            f"min_length={self.min_length})"
        )

    def check(self, value: object) -> TypeGuard[str]:
        """True if ``value`` is a string of this shape (then it is ASCII, safe to encode)."""
        return (
            isinstance(value, str)
            and self.min_length <= len(value) <= self.max_length
            and self._pattern.fullmatch(value) is not None
        )


# -- the key ring ------------------------------------------------------------------------

logger = logging.getLogger("crudauth")

MIN_SECRET_BYTES: Final = 32
#: What ``digest`` returns: 64 hex characters.
DIGEST_SHAPE: Final = TokenShape(min_length=64, max_length=64)

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
    MFA_CHALLENGE: Final = "mfa-challenge"
    MFA_BINDING: Final = "mfa-binding"
    MFA_RECOVERY_CODE: Final = "mfa-recovery-code"
    OAUTH_STATE: Final = "oauth-state"
    OAUTH_BROWSER: Final = "oauth-browser"
    OAUTH_LINK: Final = "oauth-link"
    OAUTH_TOKENS: Final = "oauth-tokens"


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


def _pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after the HMAC inner and outer pads of ``key`` (RFC 2104, section 2)."""
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


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
        self._pads: dict[tuple[int, str], tuple[Any, Any]] = {}

    def __repr__(self) -> str:
        return f"KeyRing(<{len(self._secrets)} secret(s) hidden>)"

    @property
    def size(self) -> int:
        return len(self._secrets)

    def uses_secret(self, value: str | bytes) -> bool:
        """True if ``value`` is the current secret or a fallback (another feature's key must
        never be one of them)."""
        raw = _as_bytes(value)
        return any(hmac.compare_digest(raw, known) for known in self._secrets)

    def problems(self) -> list[tuple[str, str]]:
        """``(name, problem)`` for every secret unfit for production (see ``secret_problem``)."""
        names = ["SECRET_KEY"] + [f"secret_fallbacks[{i}]" for i in range(len(self._secrets) - 1)]
        found = [
            (name, secret_problem(value)) for name, value in zip(names, self._secrets, strict=True)
        ]
        return [(name, problem) for name, problem in found if problem is not None]

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
        # Every session request computes one of these. RFC 2104 from SHA-256 states that
        # have already absorbed the key's inner and outer pads: two state copies and two
        # short hashes, where ``hmac.digest`` sets up OpenSSL's MAC (about 20k instructions)
        # on each call. The same bytes as ``hmac.new(key, value, sha256)`` (a test pins it).
        pads = self._pads.get((index, purpose))
        if pads is None:
            pads = self._pads[(index, purpose)] = _pads(self.key(purpose, index))
        inner, outer = pads[0].copy(), pads[1].copy()
        inner.update(_as_bytes(value))
        outer.update(inner.digest())
        return outer.hexdigest()  # type: ignore[no-any-return]

    def digests(self, purpose: str, value: str | bytes) -> list[str]:
        """``digest`` under every secret, newest first (for lookups that survive rotation)."""
        return [self.digest(purpose, value, i) for i in range(len(self._secrets))]

    def matches(self, purpose: str, value: str | bytes, expected: str) -> bool:
        """Constant-time check that some secret's digest of ``value`` equals ``expected``.

        ``expected`` may come from a client (a signature in a cookie): anything that is not a
        digest's shape is refused unhashed, and the comparison is of bytes, which cannot raise
        on text that ``compare_digest`` refuses (non-ASCII ``str``).
        """
        if not DIGEST_SHAPE.check(expected):
            return False
        wanted = expected.encode("ascii")
        found = False
        for candidate in self.digests(purpose, value):
            found |= hmac.compare_digest(candidate.encode("ascii"), wanted)
        return found
