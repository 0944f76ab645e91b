"""Reading a request's access token: the header, one full check per token, then a memo."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from starlette.requests import Request

from crudauth.clock import Clock
from crudauth.http.request import raw_header
from crudauth.transports.bearer.signing import KeySet
from crudauth.transports.bearer.tokens import (
    InvalidToken,
    TokenRules,
    TokenType,
    verify_token,
)

VERIFIED_CACHE_SIZE = 4096


class AccessGrant:
    """What one verified access token grants, worked out once per token.

    Immutable by convention (slots, no setters in the library): the memo hands the same object
    to every request that presents the token.
    """

    __slots__ = (
        "_expires",
        "_leeway",
        "_not_before",
        "expires_at",
        "jti",
        "scopes",
        "subject",
        "version",
    )

    def __init__(self, claims: dict[str, Any], grantable: frozenset[str], leeway: float) -> None:
        self.subject: str = claims["sub"]
        self.version: int = claims["ver"]
        # Only what this deployment may grant: a token minted under wider settings (or by a
        # second deployment sharing the key) never carries more than that.
        self.scopes: frozenset[str] = frozenset(claims["scopes"]) & grantable
        self.jti: str = claims["jti"]
        self.expires_at: Any = claims["exp"]
        # ``verify_token`` proved these are numbers. The comparisons are ``check_times``'s,
        # term for term: refused from ``exp + leeway`` on, and while ``iat`` or ``nbf`` is
        # more than ``leeway`` ahead.
        self._expires = float(claims["exp"]) + leeway
        issued = float(claims["iat"])
        self._not_before = max(issued, float(claims.get("nbf", issued)))
        self._leeway = leeway

    def current(self, now: float) -> bool:
        return now < self._expires and self._not_before <= now + self._leeway

    def metadata(self) -> dict[str, Any]:
        """``Principal.metadata`` of a request carrying this token (a fresh dict each time)."""
        return {"jti": self.jti, "expires_at": self.expires_at, "token_type": "access"}


class AccessTokens:
    """Verifies ``Authorization: Bearer`` access tokens, remembering the ones that passed.

    A client sends the same token on every request for its lifetime, and PyJWT's full check
    costs ~90 us each time. The memo keeps only tokens that passed every check (signature,
    header, issuer, audience, claim types), bounded to ``VERIFIED_CACHE_SIZE``; their times are
    checked again on every request, and the per-user checks (epoch, active) are the transport's.
    """

    def __init__(
        self, keys: KeySet, rules: TokenRules, clock: Clock, grantable: frozenset[str]
    ) -> None:
        self.keys = keys
        self.rules = rules
        self.clock = clock
        self.grantable = grantable
        self._verified: OrderedDict[str, AccessGrant] = OrderedDict()

    def read(self, request: Request) -> AccessGrant | None:
        """The grant of the request's bearer token; ``None`` without one; ``InvalidToken`` if
        it is bad."""
        header = raw_header(request.scope, b"authorization")
        if header is None:
            return None
        scheme, _, token = header.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer":
            return None  # another scheme is another transport's business
        token = token.strip()
        now = self.clock.now()
        grant = self._verified.get(token)
        if grant is None:
            grant = self._verify(token, now)
        elif not grant.current(now):
            # Signature, header, issuer and audience were proven for these exact bytes;
            # only time can have changed.
            raise InvalidToken("expired or not yet valid")
        return grant

    def _verify(self, token: str, now: float) -> AccessGrant:
        claims = verify_token(token, self.keys, TokenType.ACCESS, rules=self.rules, now=now)
        grant = AccessGrant(claims, self.grantable, self.rules.leeway)
        self._verified[token] = grant
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return grant
