"""Domain errors: one root, subclasses that carry data, no HTTP inside.

Services raise these; the HTTP edge (:mod:`crudauth.http.errors`) maps each one to a status
code, the reference ``detail`` text and a stable machine-readable ``code``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class CrudAuthError(Exception):
    """Root of every error crudauth raises on purpose."""

    code: str = "error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class ConfigurationError(CrudAuthError, ValueError):
    """The configuration is unusable; raised at construction, never at the first request."""

    code = "configuration_error"


class NotAuthenticated(CrudAuthError):
    """No credential was presented where one is required."""

    code = "not_authenticated"


class InvalidCredentials(CrudAuthError):
    """Login refused: unknown identifier, wrong password or disabled account (never which)."""

    code = "invalid_credentials"

    def __init__(self, reason: str = "invalid_credentials", user: Any = None) -> None:
        super().__init__(reason)
        #: ``invalid_credentials``, ``inactive`` or ``account_locked`` (the account's lockout
        #: budget is spent; the password was not evaluated): for hooks and logs, never the
        #: response.
        self.reason = reason
        self.user = user


class InvalidSession(CrudAuthError):
    """A session credential was presented but is unknown, expired or revoked."""

    code = "invalid_session"


class InvalidToken(InvalidSession):
    """A bearer token was presented but cannot be accepted. ``reason`` is for logs only."""

    code = "invalid_token"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidRefreshToken(InvalidToken):
    """A refresh token was presented but cannot be exchanged (forged, expired, spent or its
    family revoked, never which). ``reason`` is for logs only."""

    code = "invalid_refresh_token"


class CrossSiteRequest(CrudAuthError):
    """A login-like request came from another site (login CSRF)."""

    code = "cross_site"


class CSRFFailure(CrudAuthError):
    """The CSRF token of a cookie-authenticated unsafe request is missing or wrong."""

    code = "csrf_failed"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccessDenied(CrudAuthError):
    """The principal is authenticated but a gate refused it."""

    code = "access_denied"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidInput(CrudAuthError):
    """A request value is unacceptable; ``errors`` uses FastAPI's validation-error shape."""

    code = "invalid_input"

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])


class PasswordRejected(InvalidInput):
    """The password policy refused a new password."""

    code = "password_policy"

    def __init__(self, field: str, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__("Password does not meet the policy", errors)
        self.field = field


class DuplicateValue(CrudAuthError):
    """A unique identifier is already taken."""

    code = "duplicate_value"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class StoreUnavailable(CrudAuthError):
    """A state store could not be reached; authentication must fail closed (503).

    ``store`` names which, for the metrics: ``redis``, ``sql``, ``ratelimit``, ``database``."""

    code = "store_unavailable"

    def __init__(self, message: str = "", *, store: str = "store") -> None:
        super().__init__(message)
        self.store = store


class UnsupportedMediaType(CrudAuthError):
    """A simple (CSRF-able) content type was sent where JSON is required."""

    code = "unsupported_media_type"


class RequestTooLarge(CrudAuthError):
    """A request body over the size any crudauth route needs; refused before it is parsed."""

    code = "request_too_large"


class RateLimited(CrudAuthError):
    """A throttle refused the request; ``retry_after`` is in seconds."""

    code = "rate_limited"

    def __init__(self, retry_after: float, headers: Mapping[str, str] | None = None) -> None:
        super().__init__("Too many requests. Try again later.")
        self.retry_after = retry_after
        self.headers = dict(headers or {})


class LockedOut(CrudAuthError):
    """Too many sign-in attempts for this address or identifier; ``retry_after`` in seconds."""

    code = "locked_out"

    def __init__(self, retry_after: float) -> None:
        super().__init__("Too many login attempts. Try again later.")
        self.retry_after = retry_after


class InvalidRequest(CrudAuthError):
    """The request cannot be carried out in the account's present state (HTTP 400)."""

    code = "bad_request"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFound(CrudAuthError):
    """The named object does not exist, or is not the caller's to see (HTTP 404)."""

    code = "not_found"


class IncorrectPassword(CrudAuthError):
    """A signed-in user confirmed an action with a wrong password (HTTP 401)."""

    code = "incorrect_password"


class SignInNotFresh(AccessDenied):
    """The action needs a recent sign-in (or sudo), and this principal's is too old."""

    code = "fresh_sign_in_required"


class SudoRequired(AccessDenied):
    """The route needs sudo mode: a re-authentication within the sudo window."""

    code = "sudo_required"


class SudoLocked(CrudAuthError):
    """Too many failed re-authentications; ``retry_after`` in seconds."""

    code = "sudo_locked"

    def __init__(self, retry_after: float) -> None:
        super().__init__("Too many re-authentication attempts. Try again later.")
        self.retry_after = retry_after


class InvalidRecoveryToken(CrudAuthError):
    """A recovery link token is forged, expired, superseded, for another purpose, no longer
    matches the account, or (``used``) was redeemed already. ``reason`` is for logs only."""

    code = "invalid_recovery_token"

    def __init__(self, reason: str, *, used: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.used = used


class ChangeNotSaved(CrudAuthError):
    """The database refused an account change; nothing changed and nothing was spent."""

    code = "change_not_saved"


class OAuthFailure(CrudAuthError):
    """An OAuth sign-in or link refused; ``code`` is one of the callback's error codes
    (``oauth_failed``, ``invalid_state``, ``email_unverified``, ...)."""

    code = "oauth_failed"

    def __init__(self, code: str, cause: str = "") -> None:
        super().__init__(code)
        self.code = code
        #: Why, for the log (never sent to the client).
        self.cause = cause or code
