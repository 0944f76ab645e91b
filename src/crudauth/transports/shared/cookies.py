"""Setting and clearing crudauth's cookies with the configured attributes, in one place.

Every cookie gets the app's ``CookieConfig`` (``Secure``, ``SameSite``, ``Path``; never a
``Domain``); clearing repeats the same attributes, or browsers keep the original cookie.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from crudauth.config import CookieConfig


@dataclass(frozen=True)
class CookieWriter:
    """Writes cookies under one ``CookieConfig``; ``path`` overrides the config's path."""

    config: CookieConfig
    path: str | None = None

    def set(
        self,
        response: Response,
        name: str,
        value: str,
        *,
        max_age: int | None,
        http_only: bool = True,
    ) -> None:
        """Set ``name``; ``max_age=None`` makes it a browser-session cookie."""
        config = self.config
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=self.path or config.path,
            secure=config.secure,
            httponly=http_only,
            samesite=config.samesite,
        )

    def clear(self, response: Response, name: str, *, http_only: bool = True) -> None:
        """Expire ``name`` with the attributes it was set with."""
        config = self.config
        response.delete_cookie(
            name,
            path=self.path or config.path,
            secure=config.secure,
            httponly=http_only,
            samesite=config.samesite,
        )
