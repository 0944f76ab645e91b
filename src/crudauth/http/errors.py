"""The HTTP edge: domain errors in, the reference's status codes and ``detail`` texts out.

Every response also carries ``X-Error-Code``, a stable machine-readable code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException
from sqlalchemy import exc as sa_exc

from crudauth import errors
from crudauth.exceptions import (
    BadRequestException,
    CSRFException,
    DuplicateValueException,
    ForbiddenException,
    NotFoundException,
    OAuthAccountException,
    PasswordPolicyException,
    RateLimitException,
    SudoLockoutError,
    UnauthorizedException,
    UnprocessableEntityException,
)
from crudauth.metrics import instruments

INCORRECT_CREDENTIALS = "Incorrect username or password"
NOT_AUTHENTICATED = "Not authenticated"
INVALID_TOKEN = "Invalid token"  # noqa: S105 - an error text, not a secret
REFRESH_INVALID = "Invalid or expired refresh token"
#: RFC 6750 §3: every 401 for a bad bearer token says so in ``WWW-Authenticate``; no-store
#: keeps the refusal (and whatever token prompted it) out of shared caches.
BEARER_REFUSAL = {"WWW-Authenticate": 'Bearer error="invalid_token"', "Cache-Control": "no-store"}
CROSS_SITE_LOGIN = "Cross-site login requests are not allowed."
UNAVAILABLE = "Authentication is temporarily unavailable. Try again shortly."
LOCKED_OUT = "Too many login attempts. Try again later."
RATE_LIMITED = "Too many requests. Try again later."
TOKEN_INVALID = "Invalid or expired token"  # noqa: S105 - an error text, not a secret
TOKEN_USED = "Token already used"  # noqa: S105 - an error text, not a secret
NOT_SAVED = "The change could not be saved. Try again."
REQUEST_TOO_LARGE = "Request body too large."


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


def to_http(exc: errors.CrudAuthError) -> HTTPException:
    """The HTTP exception that answers ``exc``."""
    out: HTTPException
    if isinstance(exc, errors.InvalidCredentials):
        out = UnauthorizedException(INCORRECT_CREDENTIALS)
    elif isinstance(exc, errors.InvalidRefreshToken):
        out = UnauthorizedException(REFRESH_INVALID, headers=BEARER_REFUSAL)
    elif isinstance(exc, errors.InvalidToken):
        out = UnauthorizedException(INVALID_TOKEN, headers=BEARER_REFUSAL)
    elif isinstance(exc, (errors.NotAuthenticated, errors.InvalidSession)):
        out = UnauthorizedException(NOT_AUTHENTICATED)
    elif isinstance(exc, errors.CrossSiteRequest):
        out = ForbiddenException(CROSS_SITE_LOGIN)
    elif isinstance(exc, errors.CSRFFailure):
        out = CSRFException(exc.reason)
    elif isinstance(exc, errors.AccessDenied):
        out = ForbiddenException(exc.reason)
    elif isinstance(exc, errors.PasswordRejected):
        out = PasswordPolicyException(exc.field, exc.errors)
    elif isinstance(exc, errors.InvalidInput):
        out = UnprocessableEntityException(exc.errors or exc.message)
    elif isinstance(exc, errors.DuplicateValue):
        out = DuplicateValueException(exc.message)
    elif isinstance(exc, errors.UnsupportedMediaType):
        out = HTTPException(415, "Unsupported media type")
    elif isinstance(exc, errors.RequestTooLarge):
        out = HTTPException(413, REQUEST_TOO_LARGE)
    elif isinstance(exc, errors.LockedOut):
        out = RateLimitException(LOCKED_OUT, retry_after=_seconds(exc.retry_after))
    elif isinstance(exc, errors.RateLimited):
        out = RateLimitException(RATE_LIMITED, _seconds(exc.retry_after), exc.headers)
    elif isinstance(exc, errors.SudoLocked):
        out = SudoLockoutError(exc.message, retry_after=_seconds(exc.retry_after))
    elif isinstance(exc, errors.IncorrectPassword):
        out = UnauthorizedException(exc.message)
    elif isinstance(exc, errors.InvalidRequest):
        out = BadRequestException(exc.message)
    elif isinstance(exc, errors.NotFound):
        out = NotFoundException(exc.message)
    elif isinstance(exc, errors.StoreUnavailable):
        instruments().unavailable.add(1, {"store": exc.store})
        out = HTTPException(503, UNAVAILABLE, headers={"Retry-After": "5"})
    elif isinstance(exc, errors.InvalidRecoveryToken):
        out = BadRequestException(TOKEN_USED if exc.used else TOKEN_INVALID)
    elif isinstance(exc, errors.OAuthFailure):
        out = OAuthAccountException(exc.code)
    elif isinstance(exc, errors.ChangeNotSaved):
        out = HTTPException(503, NOT_SAVED, headers={"Retry-After": "5"})
    else:
        out = HTTPException(500, "Internal error")
    out.headers = {**(out.headers or {}), "X-Error-Code": exc.code}
    return out


logger = logging.getLogger("crudauth")

#: What the database layer raises when it cannot be reached (a refused connection comes through
#: unwrapped from asyncpg), drops the connection, or has no pooled connection to give in time:
#: an outage like a store's (503), never a 500.
DATABASE_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    ConnectionError,
)


def database_unavailable(exc: Exception) -> HTTPException:
    """The 503 for a database that cannot be used, logged with its cause (never its SQL)."""
    logger.warning("crudauth: the database cannot be used (%s)", type(exc).__name__)
    return to_http(errors.StoreUnavailable("database unavailable", store="database"))


@contextmanager
def http_errors() -> Iterator[None]:
    """Translate domain errors raised inside the block, and a database outage, into HTTP
    exceptions."""
    try:
        yield
    except errors.CrudAuthError as exc:
        raise to_http(exc) from None
    except DATABASE_UNAVAILABLE as exc:
        raise database_unavailable(exc) from None
