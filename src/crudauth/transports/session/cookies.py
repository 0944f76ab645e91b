"""Setting and clearing the session and CSRF cookies with one set of attributes."""

from __future__ import annotations

from starlette.responses import Response

from crudauth.config import CookieConfig


class SessionCookies:
    """The two cookies of a session: the HttpOnly id and the script-readable CSRF token."""

    def __init__(self, config: CookieConfig, session_name: str, csrf_name: str) -> None:
        self.config = config
        self.session_name = session_name
        self.csrf_name = csrf_name

    def set(self, response: Response, session_id: str, csrf: str, max_age: int | None) -> None:
        for name, value, http_only in (
            (self.session_name, session_id, True),
            (self.csrf_name, csrf, False),
        ):
            response.set_cookie(
                name,
                value,
                max_age=max_age,
                path=self.config.path,
                secure=self.config.secure,
                httponly=http_only,
                samesite=self.config.samesite,
            )

    def set_csrf(self, response: Response, csrf: str, max_age: int | None) -> None:
        response.set_cookie(
            self.csrf_name,
            csrf,
            max_age=max_age,
            path=self.config.path,
            secure=self.config.secure,
            httponly=False,
            samesite=self.config.samesite,
        )

    def clear(self, response: Response) -> None:
        # Deletion must repeat the attributes, or browsers keep the original cookie.
        for name, http_only in ((self.session_name, True), (self.csrf_name, False)):
            response.delete_cookie(
                name,
                path=self.config.path,
                secure=self.config.secure,
                httponly=http_only,
                samesite=self.config.samesite,
            )
