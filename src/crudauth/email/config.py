"""``EmailConfig``: who sends recovery mail, where its links point, and how long they live."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from crudauth.errors import ConfigurationError

if TYPE_CHECKING:
    from crudauth.email.delivery import EmailSender

logger = logging.getLogger("crudauth")

Duration = float | int | timedelta

DEFAULT_VERIFY_TTL: Final = 24 * 3600.0
DEFAULT_RESET_TTL: Final = 3600.0
DEFAULT_CHANGE_TTL: Final = 24 * 3600.0


def _seconds(name: str, value: Duration | None, hours: float | None, default: float) -> float:
    if value is not None and hours is not None:
        raise ConfigurationError(f"EmailConfig: pass {name} or {name}_hours, not both")
    if hours is not None:
        if isinstance(hours, bool) or not isinstance(hours, (int, float)):
            raise ConfigurationError(f"EmailConfig.{name}_hours must be a number")
        seconds = float(hours) * 3600
    elif value is None:
        seconds = default
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(f"EmailConfig.{name} must be seconds or a timedelta")
    if not seconds > 0:
        raise ConfigurationError(f"EmailConfig.{name} must be positive")
    return seconds


def _clean_path(name: str, path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
        raise ConfigurationError(f"EmailConfig.{name} must be a path starting with '/'")
    if any(ord(ch) < 33 or ch == "\\" for ch in path):
        raise ConfigurationError(f"EmailConfig.{name} must not contain spaces or control chars")
    return path


@dataclass(frozen=True)
class EmailConfig:
    """Recovery mail settings.

    Links have the form ``{frontend_url}{path}?token=...`` and are built only from these values,
    never from the request's ``Host`` header, so a poisoned request cannot point a reset link
    at another site. Lifetimes take seconds or a ``timedelta`` (``verify_ttl=timedelta(
    minutes=30)``); the reference's whole-hour ``*_ttl_hours`` are accepted too.
    """

    sender: EmailSender
    frontend_url: str = ""
    verify_ttl: Duration | None = None
    reset_ttl: Duration | None = None
    change_ttl: Duration | None = None
    verify_path: str = "/verify-email"
    reset_path: str = "/reset-password"
    change_path: str = "/confirm-email-change"
    #: Where the owner of an account confirms linking an OAuth provider to it.
    link_path: str = "/confirm-account-link"
    verify_ttl_hours: float | None = None
    reset_ttl_hours: float | None = None
    change_ttl_hours: float | None = None

    def __post_init__(self) -> None:
        send = getattr(self.sender, "send", None)
        if not callable(send):
            raise ConfigurationError("EmailConfig.sender must have a send(*, to, subject, ...)")
        object.__setattr__(self, "frontend_url", self._clean_url(self.frontend_url))
        for name in ("verify_path", "reset_path", "change_path", "link_path"):
            object.__setattr__(self, name, _clean_path(name, getattr(self, name)))
        # Read once so that a bad lifetime fails at construction, not at the first request.
        _ = (self.verify_ttl_seconds, self.reset_ttl_seconds, self.change_ttl_seconds)
        if not self.frontend_url:
            logger.warning(
                "crudauth: EmailConfig(frontend_url='') builds relative links such as "
                "'/reset-password?token=...', which most mail clients cannot open; set "
                "frontend_url to your site's address (https://app.example.com)"
            )

    @staticmethod
    def _clean_url(value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigurationError("EmailConfig.frontend_url must be a string")
        url = value.strip().rstrip("/")
        if not url:
            return ""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError("EmailConfig.frontend_url must be an http(s) URL")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigurationError(
                "EmailConfig.frontend_url must not carry a query, fragment or credentials"
            )
        if any(ord(ch) < 33 or ch == "\\" for ch in url):
            raise ConfigurationError("EmailConfig.frontend_url must not contain control chars")
        return url

    @property
    def verify_ttl_seconds(self) -> float:
        return _seconds("verify_ttl", self.verify_ttl, self.verify_ttl_hours, DEFAULT_VERIFY_TTL)

    @property
    def reset_ttl_seconds(self) -> float:
        return _seconds("reset_ttl", self.reset_ttl, self.reset_ttl_hours, DEFAULT_RESET_TTL)

    @property
    def change_ttl_seconds(self) -> float:
        return _seconds("change_ttl", self.change_ttl, self.change_ttl_hours, DEFAULT_CHANGE_TTL)

    def link(self, path: str, token: str) -> str:
        """The absolute link for ``token`` (tokens are URL-safe base64: nothing to escape)."""
        joiner = "&" if "?" in path else "?"
        return f"{self.frontend_url}{path}{joiner}token={token}"
