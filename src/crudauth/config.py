"""Typed, frozen configuration objects with safe defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from crudauth.errors import ConfigurationError

SameSite = Literal["lax", "strict", "none"]


@dataclass(frozen=True)
class CookieConfig:
    """Attributes shared by every cookie crudauth sets. There is never a ``Domain``.

    ``secure=True`` is the default: cookies travel only over HTTPS. Use ``secure=False`` only for
    development on ``http://localhost``.
    """

    secure: bool = True
    samesite: SameSite = "lax"
    path: str = "/"

    def __post_init__(self) -> None:
        samesite = str(self.samesite).lower()
        if samesite not in ("lax", "strict", "none"):
            raise ConfigurationError("CookieConfig.samesite must be 'lax', 'strict' or 'none'")
        object.__setattr__(self, "samesite", samesite)
        if not self.path.startswith("/") or any(c in self.path for c in ";\r\n"):
            raise ConfigurationError("CookieConfig.path must be an absolute path")
        if samesite == "none" and not self.secure:
            raise ConfigurationError("SameSite=None cookies must be Secure")
