"""The reference library's HTTP exception classes, kept for compatibility.

crudauth's services raise domain errors (:mod:`crudauth.errors`); these classes are what the
HTTP edge turns them into. Applications may raise them from their own routes too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import HTTPException, status


class _CrudAuthHTTPException(HTTPException):
    status_code_default: int = status.HTTP_400_BAD_REQUEST
    detail_default: Any = "Bad request"

    def __init__(self, detail: Any = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(
            status_code=self.status_code_default,
            detail=self.detail_default if detail is None else detail,
            headers=dict(headers) if headers else None,
        )


class BadRequestException(_CrudAuthHTTPException):
    """400 Bad request."""

    status_code_default = status.HTTP_400_BAD_REQUEST
    detail_default = "Bad request"


class OAuthAccountException(BadRequestException):
    """400 for an OAuth sign-in that cannot complete; ``code`` names why (``email_unverified``)."""

    def __init__(self, code: str, detail: Any = None) -> None:
        super().__init__(detail if detail is not None else code)
        self.code = code


class UnauthorizedException(_CrudAuthHTTPException):
    """401: no valid credential (``"Not authenticated"`` by default)."""

    status_code_default = status.HTTP_401_UNAUTHORIZED
    detail_default = "Not authenticated"


class ForbiddenException(_CrudAuthHTTPException):
    """403: the caller is known but may not do this."""

    status_code_default = status.HTTP_403_FORBIDDEN
    detail_default = "Forbidden"


class CSRFException(ForbiddenException):
    """403 for a missing or wrong CSRF token; adds the ``X-CSRF-Error: true`` header."""

    detail_default = "Invalid CSRF token"

    def __init__(self, detail: Any = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail, {**(headers or {}), "X-CSRF-Error": "true"})


class NotFoundException(_CrudAuthHTTPException):
    """404 Not found."""

    status_code_default = status.HTTP_404_NOT_FOUND
    detail_default = "Not found"


class UnprocessableEntityException(_CrudAuthHTTPException):
    """422: the request is well formed but its values are refused."""

    status_code_default = 422
    detail_default = "Unprocessable entity"


class DuplicateValueException(UnprocessableEntityException):
    """422 for a value that must be unique and is taken (a username, an email)."""

    detail_default = "Duplicate value"


class ValueTooLongException(UnprocessableEntityException):
    """422 in FastAPI's ``string_too_long`` shape, one entry per field of ``limits``."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        detail = [
            {
                "type": "string_too_long",
                "loc": ["body", name],
                "msg": f"String should have at most {limit} characters",
                "ctx": {"max_length": limit},
            }
            for name, limit in limits.items()
        ]
        super().__init__(detail)
        self.limits = dict(limits)


class PasswordPolicyException(UnprocessableEntityException):
    """422 listing every rule of the ``PasswordPolicy`` that ``field`` breaks."""

    def __init__(self, field: str, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__([dict(e) for e in errors])
        self.field = field
        self.errors = [dict(e) for e in errors]


class RateLimitException(_CrudAuthHTTPException):
    """429 with ``Retry-After`` (whole seconds, at least 1) when ``retry_after`` is given."""

    status_code_default = status.HTTP_429_TOO_MANY_REQUESTS
    detail_default = "Too many requests. Try again later."

    def __init__(
        self,
        detail: Any = None,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        merged = dict(headers or {})
        if retry_after is not None:
            merged["Retry-After"] = str(max(1, int(retry_after)))
        super().__init__(detail, merged)
        self.retry_after = retry_after


class SudoLockoutError(RateLimitException):
    """429 once too many re-authentication attempts have failed."""

    detail_default = "Too many re-authentication attempts. Try again later."


__all__ = [
    "BadRequestException",
    "CSRFException",
    "DuplicateValueException",
    "ForbiddenException",
    "NotFoundException",
    "OAuthAccountException",
    "PasswordPolicyException",
    "RateLimitException",
    "SudoLockoutError",
    "UnauthorizedException",
    "UnprocessableEntityException",
    "ValueTooLongException",
]
