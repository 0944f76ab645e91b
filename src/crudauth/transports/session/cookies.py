"""The two cookies of a session: the HttpOnly id and the script-readable CSRF token."""

from __future__ import annotations

from starlette.responses import Response

from crudauth.config import CookieConfig
from crudauth.transports.shared.cookies import CookieWriter


class SessionCookies:
    """Sets and clears a session's two cookies through one ``CookieWriter``."""

    def __init__(self, config: CookieConfig, session_name: str, csrf_name: str) -> None:
        self.config = config
        self.writer = CookieWriter(config)
        self.session_name = session_name
        self.csrf_name = csrf_name

    def set(self, response: Response, session_id: str, csrf: str, max_age: int | None) -> None:
        self.writer.set(response, self.session_name, session_id, max_age=max_age)
        self.set_csrf(response, csrf, max_age)

    def set_csrf(self, response: Response, csrf: str, max_age: int | None) -> None:
        self.writer.set(response, self.csrf_name, csrf, max_age=max_age, http_only=False)

    def clear(self, response: Response) -> None:
        self.writer.clear(response, self.session_name)
        self.writer.clear(response, self.csrf_name, http_only=False)
