"""Reading a request's access token: the header, one full check per token, then a memo."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from starlette.requests import Request

from crudauth.clock import Clock
from crudauth.exceptions import UnauthorizedException
from crudauth.transports.bearer.signing import KeySet
from crudauth.transports.bearer.tokens import (
    InvalidToken,
    TokenRules,
    TokenType,
    check_times,
    verify_token,
)

VERIFIED_CACHE_SIZE = 4096
INVALID_TOKEN = "Invalid token"  # noqa: S105 - an error text, not a secret
#: RFC 6750 §3: every 401 for a bad bearer token says so in ``WWW-Authenticate``.
CHALLENGE = 'Bearer error="invalid_token"'


def unauthorized(detail: str = INVALID_TOKEN, code: str = "invalid_token") -> UnauthorizedException:
    """The 401 for a bearer credential that is present but unacceptable."""
    return UnauthorizedException(
        detail,
        headers={"WWW-Authenticate": CHALLENGE, "X-Error-Code": code, "Cache-Control": "no-store"},
    )


class AccessTokens:
    """Verifies ``Authorization: Bearer`` access tokens, remembering the ones that passed.

    A client sends the same token on every request for its lifetime, and PyJWT's full check
    costs ~90 us each time. The memo keeps only tokens that passed every check (signature,
    header, issuer, audience), bounded to ``VERIFIED_CACHE_SIZE``; their times are checked
    again on every request, and the per-user checks (epoch, active) are the transport's.
    """

    def __init__(self, keys: KeySet, rules: TokenRules, clock: Clock) -> None:
        self.keys = keys
        self.rules = rules
        self.clock = clock
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def read(self, request: Request) -> dict[str, Any] | None:
        """The claims of the request's bearer token; ``None`` without one; 401 if it is bad."""
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None  # another scheme is another transport's business
        token = token.strip()
        now = self.clock.now()
        try:
            cached = self._verified.get(token)
            if cached is not None:
                # Signature, header, issuer and audience were proven for these exact bytes;
                # only time can have changed.
                check_times(cached, now, self.rules.leeway)
                return dict(cached)
            claims = verify_token(token, self.keys, TokenType.ACCESS, rules=self.rules, now=now)
        except InvalidToken:
            raise unauthorized() from None
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return dict(claims)
