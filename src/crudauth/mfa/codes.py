"""The cryptography of two-factor sign-in, each piece from a maintained library.

- TOTP (RFC 6238) through ``pyotp``: HMAC-SHA1, 6 digits, 30-second steps, one step of drift
  either way. ``matching_step`` returns *which* step a code belongs to, because a code is
  accepted at most once per account and step (the caller claims the step atomically).
- Secrets at rest through ``cryptography``'s ``MultiFernet``: the first key encrypts, every key
  decrypts, and ``reencrypt`` moves a value to the first key (rotation without a flag day).
- Recovery codes: 16 characters from a 31-letter alphabet without look-alikes (about 79 bits),
  shown once, stored only as keyed hashes (HMAC-SHA256 under a purpose key derived from
  ``SECRET_KEY``): a copy of the table alone does not let anyone test guesses offline.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from typing import Final

from crudauth.errors import ConfigurationError
from crudauth.keys import KeyRing, Purpose

try:
    import pyotp
    from cryptography.fernet import Fernet, InvalidToken, MultiFernet
except ImportError:  # pragma: no cover - exercised by an install without the extra
    pyotp = None  # type: ignore[assignment] # checked by require_libraries
    Fernet = MultiFernet = InvalidToken = None  # type: ignore[assignment,misc] # likewise

STEP_SECONDS: Final = 30
DIGITS: Final = 6
DRIFT_STEPS: Final = 1
RECOVERY_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"  # no i, l, o, 0, 1
RECOVERY_GROUPS: Final = 4
RECOVERY_GROUP_LENGTH: Final = 4


def require_libraries() -> None:
    """Refuse to build MFA without its extra (``pip install crudauth[mfa]``)."""
    if pyotp is None or MultiFernet is None:
        raise ConfigurationError("MFA needs pyotp and cryptography: pip install 'crudauth[mfa]'")


# -- TOTP -------------------------------------------------------------------------------------


def new_secret() -> str:
    """20 random bytes as 32 base32 characters (RFC 4226 §4 recommends 160 bits)."""
    return pyotp.random_base32(32)


def step_at(now: float) -> int:
    return int(now // STEP_SECONDS)


def looks_like_totp(code: str) -> bool:
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The newest step within the drift window whose code is ``code``, or ``None``.

    Every candidate is compared (in constant time), so the answer's timing does not tell
    which step matched."""
    if not looks_like_totp(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = step_at(now)
    found: int | None = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        expected = totp.at(step * STEP_SECONDS)
        if hmac.compare_digest(expected.encode(), code.encode()):
            found = step
    return found


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app scans."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS, issuer=issuer, name=account)
    return totp.provisioning_uri()


# -- secrets at rest --------------------------------------------------------------------------


class SecretBox:
    """Encrypts TOTP secrets under a rotating list of Fernet keys."""

    def __init__(self, keys: Sequence[bytes], ring: KeyRing) -> None:
        fernets = []
        for index, key in enumerate(keys):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise ConfigurationError(
                    f"MfaConfig.encryption_key[{index}] is not a Fernet key "
                    "(make one with cryptography.fernet.Fernet.generate_key())"
                ) from None
            if ring.uses_secret(key):
                raise ConfigurationError(
                    "MfaConfig.encryption_key must not be SECRET_KEY (or one of its fallbacks)"
                )
        self._current = fernets[0]
        self._all = MultiFernet(fernets)

    def __repr__(self) -> str:
        return "SecretBox(<keys hidden>)"

    def encrypt(self, plain: str) -> str:
        return self._all.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str | None:
        """The plain text, or ``None`` if no configured key opens ``token``."""
        try:
            return self._all.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError):
            return None

    def is_current(self, token: str) -> bool:
        """True when the first (encrypting) key opens ``token``."""
        try:
            self._current.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError, ValueError):
            return False
        return True

    def reencrypt(self, token: str) -> str:
        """``token`` encrypted under the first key (``MultiFernet.rotate``)."""
        return self._all.rotate(token.encode("ascii")).decode("ascii")


# -- recovery codes ---------------------------------------------------------------------------


def new_recovery_code() -> str:
    groups = (
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP_LENGTH))
        for _ in range(RECOVERY_GROUPS)
    )
    return "-".join(groups)


def normalise_recovery_code(code: str) -> str | None:
    """Lower-cased, without spaces and hyphens; ``None`` if it cannot be a recovery code."""
    cleaned = code.strip().lower().replace("-", "").replace(" ", "")
    wanted = RECOVERY_GROUPS * RECOVERY_GROUP_LENGTH
    if len(cleaned) != wanted or any(ch not in RECOVERY_ALPHABET for ch in cleaned):
        return None
    return cleaned


def recovery_digest(ring: KeyRing, normalised: str, index: int = 0) -> str:
    return ring.digest(Purpose.MFA_RECOVERY_CODE, normalised, index)


def recovery_matches(ring: KeyRing, normalised: str, stored: str) -> bool:
    """Constant-time: ``stored`` is the keyed hash of ``normalised`` under some secret."""
    return ring.matches(Purpose.MFA_RECOVERY_CODE, normalised, stored)
