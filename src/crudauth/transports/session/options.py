"""``SessionTransport``'s constructor options, checked before anything is built."""

from __future__ import annotations

from typing import Any

from crudauth.config import CookieConfig
from crudauth.errors import ConfigurationError
from crudauth.http.request import COOKIE_NAME
from crudauth.storage.base import SessionStore
from crudauth.transports.session.manager import SessionSettings


def check_store_options(
    backend: str | None, redis_url: str | None, redis_client: Any, storage: SessionStore | None
) -> None:
    """At most one way of naming the session store."""
    if backend not in (None, "memory", "redis", "database"):
        raise ConfigurationError(
            f"SessionTransport(backend={backend!r}): use 'memory', 'redis', 'database' or None"
        )
    if redis_url is not None and redis_client is not None:
        raise ConfigurationError("pass redis_url or redis_client, not both")
    if (redis_url is not None or redis_client is not None) and backend not in (None, "redis"):
        raise ConfigurationError(f"redis_url/redis_client conflict with backend={backend!r}")
    if storage is not None and (backend is not None or redis_url or redis_client):
        raise ConfigurationError("storage= replaces backend/redis_url/redis_client")


def check_cookie_options(
    cookie_name: str,
    csrf_cookie_name: str,
    storage_prefix: str,
    csrf_storage_prefix: str,
    cookies: CookieConfig | None,
) -> None:
    """Valid, distinct cookie names and store prefixes; never ``SameSite=None``."""
    for label, value in (("cookie_name", cookie_name), ("csrf_cookie_name", csrf_cookie_name)):
        if not isinstance(value, str) or not COOKIE_NAME.match(value):
            raise ConfigurationError(f"{label}={value!r} is not a valid cookie name")
    if cookie_name == csrf_cookie_name:
        raise ConfigurationError("cookie_name and csrf_cookie_name must differ")
    if storage_prefix == csrf_storage_prefix:
        raise ConfigurationError("storage_prefix and csrf_storage_prefix must differ")
    if cookies is not None and cookies.samesite == "none":
        raise ConfigurationError("SameSite=None is refused for the session cookie")


def session_settings(
    *,
    max_sessions_per_user: int,
    session_timeout_minutes: float,
    absolute_timeout_hours: float | None,
    remember_me_days: float,
    cleanup_interval_minutes: float,
) -> SessionSettings:
    """The lifetimes in seconds (the absolute one at least 12 h unless given) and the cap."""
    if max_sessions_per_user < 0:
        raise ConfigurationError("max_sessions_per_user must be >= 0 (0 means no cap)")
    if session_timeout_minutes <= 0 or remember_me_days <= 0:
        raise ConfigurationError("session lifetimes must be positive")
    if absolute_timeout_hours is not None and absolute_timeout_hours <= 0:
        raise ConfigurationError("absolute_timeout_hours must be positive or None")
    if cleanup_interval_minutes <= 0:
        raise ConfigurationError("cleanup_interval_minutes must be positive")
    idle = session_timeout_minutes * 60
    remember = remember_me_days * 86400
    return SessionSettings(
        idle_timeout=idle,
        remember_me_idle_timeout=remember,
        absolute_timeout=absolute_timeout_hours * 3600
        if absolute_timeout_hours
        else max(idle, 12 * 3600),
        remember_me_absolute_timeout=(
            absolute_timeout_hours * 3600 if absolute_timeout_hours else remember
        ),
        max_sessions_per_user=max_sessions_per_user,
    )


def lockout_overrides(**settings: Any) -> dict[str, Any]:
    """The 0.6-style ``login_*`` lockout settings that were given (not ``None``)."""
    return {name: value for name, value in settings.items() if value is not None}
