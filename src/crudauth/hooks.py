"""``AuthHooks``: application callbacks that run after an action, best-effort.

A hook that raises is logged on ``crudauth.hooks`` and swallowed: the action it follows has
already happened. Hooks receive ``repo.to_dict(user)``, which never contains the password hash,
TOTP secret or recovery codes, and a typed identifier only escaped (``escape_identifier``:
printable, one line, bounded), never a password, token or code.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("crudauth.hooks")

Hook = Callable[..., Any]


@dataclass(frozen=True)
class HookContext:
    """Where an event came from."""

    ip_address: str | None = None
    user_agent: str | None = None
    transport: str | None = None
    request: Any = None
    session_handle: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthHooks:
    """Every hook is optional and may be sync or async."""

    on_after_register: Hook | None = None
    on_oauth_login: Hook | None = None
    on_login_failed: Hook | None = None
    on_lockout: Hook | None = None
    on_after_login: Hook | None = None
    on_after_logout: Hook | None = None
    on_after_recovery_verified: Hook | None = None
    on_after_password_reset: Hook | None = None
    on_after_password_changed: Hook | None = None
    on_after_email_changed: Hook | None = None
    on_after_sudo: Hook | None = None
    on_after_mfa_enabled: Hook | None = None
    on_after_mfa_disabled: Hook | None = None
    on_after_recovery_code_used: Hook | None = None
    #: ``(user, *, request, context)``: a spent refresh token came back, so its whole family was
    #: revoked. Either the client raced itself or the token was stolen; worth an alert.
    on_refresh_reuse: Hook | None = None

    async def fire(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Run hook ``name`` if set; log and swallow whatever it raises."""
        hook = getattr(self, name, None)
        if hook is None:
            return
        try:
            result = hook(*args, **kwargs)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("crudauth hook %s raised; the action itself stands", name)
