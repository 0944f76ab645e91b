"""Identifier hygiene: length caps before normalising, NFKC, then case-insensitive keys.

Caps come first because NFKC on attacker-sized input is slow (Django CVE-2023-46695).
"""

from __future__ import annotations

import unicodedata
from typing import Final

from crudauth.errors import InvalidInput

MAX_EMAIL_LENGTH: Final = 320
MAX_USERNAME_LENGTH: Final = 150

# Bidi overrides/isolates and zero-width characters make two different names look alike.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _reject_invisible(value: str, field: str) -> None:
    for char in value:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise InvalidInput(
                f"{field} contains a control or invisible character",
                [
                    _error(
                        field, "value_error", f"{field} contains a control or invisible character"
                    )
                ],
            )


def _error(field: str, kind: str, msg: str, **ctx: object) -> dict[str, object]:
    out: dict[str, object] = {"type": kind, "loc": ["body", field], "msg": msg}
    if ctx:
        out["ctx"] = ctx
    return out


def too_long(field: str, max_length: int) -> InvalidInput:
    """The FastAPI-shaped ``string_too_long`` error for ``field``."""
    msg = f"String should have at most {max_length} characters"
    return InvalidInput(msg, [_error(field, "string_too_long", msg, max_length=max_length)])


def clean_identifier(value: str, field: str, max_length: int) -> str:
    """Return the display form of an identifier (NFKC, trimmed) or raise ``InvalidInput``."""
    if len(value) > max_length:
        raise too_long(field, max_length)
    cleaned = unicodedata.normalize("NFKC", value).strip()
    if len(cleaned) > max_length:
        raise too_long(field, max_length)
    if not cleaned:
        msg = "String should have at least 1 character"
        raise InvalidInput(msg, [_error(field, "string_too_short", msg, min_length=1)])
    _reject_invisible(cleaned, field)
    return cleaned


#: The most characters of a typed identifier that a hook or a log record receives.
MAX_SHOWN_IDENTIFIER: Final = MAX_EMAIL_LENGTH


def escape_identifier(value: str) -> str:
    """A typed identifier as hooks and log records receive it: printable, one line, bounded.

    A sign-in form carries whatever the client sends, and hooks commonly log what they are
    given: an identifier holding CR and LF would end the line and forge the next one, and bidi
    overrides or NUL would disguise one. Every non-printable character and
    the backslash are escaped the way ``repr`` escapes them, and the result is cut at
    ``MAX_SHOWN_IDENTIFIER`` characters, marked with ``...``. A printable username or email
    address comes back unchanged.
    """
    pieces: list[str] = []
    size = 0
    for char in value:
        piece = char if char.isprintable() and char != "\\" else repr(char)[1:-1]
        size += len(piece)
        if size > MAX_SHOWN_IDENTIFIER:
            return "".join(pieces) + "..."
        pieces.append(piece)
    return "".join(pieces)


def canonical_identifier(value: str) -> str:
    """The comparison key of a username-like identifier: NFKC, trimmed, case-folded."""
    return unicodedata.normalize("NFKC", value).strip().casefold()


def sql_lower_form(value: str) -> str:
    """What ``lower(column)`` is compared with on tables without a ``username_key`` column."""
    return unicodedata.normalize("NFKC", value).strip().lower()


def canonical_email(value: str) -> str:
    """The stored and compared form of an email address."""
    return unicodedata.normalize("NFKC", value).strip().lower()


def mask_email(value: str) -> str:
    """A form of an address that is safe to log or show: ``alice@example.com`` becomes
    ``a***@example.com``. The length of the local part is not revealed."""
    local, at, domain = value.rpartition("@")
    if not at:
        local, domain = value, ""
    masked = local[:1] + "***"
    return f"{masked}@{domain}" if at else masked
