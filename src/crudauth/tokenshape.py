"""The shape every credential the library issues has, checked before any crypto touches it.

Each token, cookie and CSRF value crudauth mints is URL-safe base64 (or hex, a subset),
optionally in parts joined by ``.``. Whatever a client sends in their place is checked
against that shape first: a value with another character (``é``, a lone surrogate from a JSON
``\\ud800`` escape, a space), too many parts or too many characters is refused as plain
"invalid" before it is encoded, hashed or compared. Non-ASCII text would otherwise make
``str.encode("ascii")`` or ``hmac.compare_digest`` raise, and a long value would cost work.
"""

from __future__ import annotations

import re
from typing import Final, TypeGuard

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
