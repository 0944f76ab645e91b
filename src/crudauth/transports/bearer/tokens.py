"""Minting and checking bearer JWTs.

Verification trusts nothing in a token before its signature checks out, and even then only
what it has pinned itself (RFC 8725):

- the size is capped before any parsing (a token is a few hundred bytes; 8 KB is generous);
- the header may hold ``alg``, ``typ`` and ``kid`` only, so ``jwk``, ``jku``, ``x5u``, ``x5c``,
  ``crit`` and ``b64`` never reach the JWT library;
- ``kid`` is only a dictionary key into the configured keys, never a path or a query, and the
  algorithm comes from that key, never from the header (no ``none``, no HS/RS confusion);
- ``typ`` and the ``token_type`` claim must both name the expected kind, and access and refresh
  tokens are signed with different derived keys, so one can never pass as the other;
- ``iss`` and ``aud`` must match; ``exp``, ``nbf`` and ``iat`` are checked against crudauth's
  clock (not the JWT library's), with a small leeway;
- every claim is type-checked and bounded before anything uses it (times are integers between
  1970 and 9999, ids at most 128 characters, counters 32-bit), so a signed token carrying
  ``exp: 10**400`` or a 400-digit ``sub`` never reaches ``float()``, a SQL bind or a store key.

Every failure raises :class:`InvalidToken`, whatever went wrong, so a caller never answers 500.
"""

from __future__ import annotations

import binascii
import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import jwt

from crudauth.errors import InvalidToken as InvalidToken
from crudauth.transports.bearer.signing import KeySet

MAX_TOKEN_BYTES: Final = 8192
ALLOWED_HEADERS: Final = frozenset({"alg", "typ", "kid"})
_MAX_KID: Final = 128
#: The claim bounds. A NumericDate we mint is far below 9999-12-31T23:59:59Z; ``ver`` is a
#: 32-bit column and ``gen`` counts rotations; ``sub``, ``jti`` and ``fam`` are short ids (a
#: ``sub`` also becomes part of a store key, whose column holds 255 characters).
MAX_TIME: Final = 253_402_300_799
MAX_ID_CHARS: Final = 128
MAX_COUNTER: Final = 2**31 - 1
MAX_SCOPES: Final = 256
MAX_SCOPE_CHARS: Final = 128


class TokenType(str, Enum):
    """The kinds of bearer JWT. The value is the ``token_type`` claim."""

    ACCESS = "access"
    REFRESH = "refresh"

    @property
    def media_type(self) -> str:
        """The ``typ`` header (RFC 9068 names ``at+jwt`` for access tokens)."""
        return "at+jwt" if self is TokenType.ACCESS else "rt+jwt"


@dataclass(frozen=True)
class TokenRules:
    """What every token of one deployment must say about where it comes from and is for."""

    issuer: str
    audience: str
    leeway: float = 0.0


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature, type, issuer, audience and times all checked out."""

    header: Mapping[str, Any]
    claims: dict[str, Any]
    kid: str


def new_token_id() -> str:
    """A fresh 256-bit identifier for ``jti`` and refresh families."""
    return secrets.token_urlsafe(32)


def create_signed_token(claims: Mapping[str, Any], keys: KeySet, *, typ: str) -> str:
    """Sign ``claims`` with the current key of ``keys``; the header names ``typ`` and ``kid``."""
    signer = keys.signer
    return jwt.encode(
        dict(claims),
        signer.signing,
        algorithm=signer.algorithm,
        headers={"typ": typ, "kid": signer.kid},
    )


def verify_signed_token_full(
    token: str | bytes,
    keys: KeySet,
    *,
    typ: str,
    rules: TokenRules,
    now: float,
    require: Iterable[str] = (),
) -> VerifiedToken:
    """Check ``token`` completely and return its header and claims, or raise ``InvalidToken``."""
    raw = token.encode("utf-8") if isinstance(token, str) else bytes(token)
    if not raw or len(raw) > MAX_TOKEN_BYTES:
        raise InvalidToken("empty or oversized token")
    try:
        header = jwt.get_unverified_header(raw)
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidToken(f"malformed header: {type(exc).__name__}") from None
    key = _pick_key(header, keys, typ)
    try:
        claims = jwt.decode(
            raw,
            key.verifying,
            algorithms=[key.algorithm],
            audience=rules.audience,
            issuer=rules.issuer,
            options={
                # Times are checked below with crudauth's clock, not the library's.
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                # The library's own type checks: ``sub`` and ``jti`` are strings.
                "verify_sub": True,
                "verify_jti": True,
                "strict_aud": True,
                "require": ["exp", "iat", "sub", "jti", "iss", "aud", *require],
            },
        )
    except (jwt.PyJWTError, ValueError, TypeError, binascii.Error, RecursionError) as exc:
        raise InvalidToken(f"rejected: {type(exc).__name__}") from None
    for name in ("exp", "iat", "nbf"):
        if name in claims:
            _time(claims, name)
    _identifier(claims, "sub")
    _identifier(claims, "jti")
    check_times(claims, now, rules.leeway)
    return VerifiedToken(header, claims, key.kid)


def verify_signed_token(
    token: str | bytes,
    keys: KeySet,
    *,
    typ: str,
    rules: TokenRules,
    now: float,
    require: Iterable[str] = (),
) -> dict[str, Any]:
    """Like :func:`verify_signed_token_full`, returning the claims only."""
    return verify_signed_token_full(
        token, keys, typ=typ, rules=rules, now=now, require=require
    ).claims


def _pick_key(header: Mapping[str, Any], keys: KeySet, typ: str) -> Any:
    extra = set(header) - ALLOWED_HEADERS
    if extra:
        raise InvalidToken(f"unexpected header parameters: {sorted(extra)}")
    if header.get("typ") != typ:
        raise InvalidToken("wrong typ header")
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= _MAX_KID:
        raise InvalidToken("missing or malformed kid")
    key = keys.verifiers.get(kid)
    if key is None:
        raise InvalidToken("unknown kid")
    if header.get("alg") != key.algorithm:
        raise InvalidToken("algorithm does not match the key")
    return key


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidToken(f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidToken(f"{name} is out of range") from None
    if not math.isfinite(number):  # NaN compares false both ways: it would never expire
        raise InvalidToken(f"{name} is not finite")
    return number


def _time(claims: Mapping[str, Any], name: str) -> int:
    """A NumericDate we could have minted: a whole number of seconds from 1970 to 9999."""
    value = claims.get(name)
    if type(value) is not int or not 0 <= value <= MAX_TIME:
        raise InvalidToken(f"bad {name}")
    return value


def _identifier(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise InvalidToken(f"bad {name}")
    return value


def _counter(claims: Mapping[str, Any], name: str, low: int) -> int:
    value = claims.get(name)
    if type(value) is not int or not low <= value <= MAX_COUNTER:
        raise InvalidToken(f"bad {name}")
    return value


def _scopes(claims: Mapping[str, Any]) -> None:
    scopes = claims["scopes"]
    if (
        not isinstance(scopes, list)
        or len(scopes) > MAX_SCOPES
        or not all(isinstance(s, str) and 0 < len(s) <= MAX_SCOPE_CHARS for s in scopes)
    ):
        raise InvalidToken("bad scopes")


def check_times(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    if now >= _number(claims, "exp") + leeway:
        raise InvalidToken("expired")
    if _number(claims, "iat") > now + leeway:
        raise InvalidToken("issued in the future")
    if "nbf" in claims and _number(claims, "nbf") > now + leeway:
        raise InvalidToken("not valid yet")


def _base_claims(
    token_type: TokenType,
    rules: TokenRules,
    *,
    subject: Any,
    version: int,
    scopes: Iterable[str],
    now: float,
    expires_at: float,
    jti: str | None,
) -> dict[str, Any]:
    issued = int(now)
    return {
        "iss": rules.issuer,
        "aud": rules.audience,
        "sub": str(subject),
        "ver": int(version),
        "scopes": sorted(set(scopes)),
        "token_type": token_type.value,
        "iat": issued,
        "nbf": issued,
        "exp": int(expires_at),
        "jti": jti or new_token_id(),
    }


def create_access_token(
    keys: KeySet,
    rules: TokenRules,
    *,
    subject: Any,
    version: int,
    scopes: Iterable[str],
    now: float,
    ttl: float,
) -> str:
    """A short-lived access token for ``subject`` at token version ``version``."""
    claims = _base_claims(
        TokenType.ACCESS,
        rules,
        subject=subject,
        version=version,
        scopes=scopes,
        now=now,
        expires_at=now + ttl,
        jti=None,
    )
    return create_signed_token(claims, keys, typ=TokenType.ACCESS.media_type)


def create_refresh_token(
    keys: KeySet,
    rules: TokenRules,
    *,
    subject: Any,
    version: int,
    scopes: Iterable[str],
    now: float,
    expires_at: float,
    family: str,
    generation: int,
    family_started: float,
    jti: str | None = None,
) -> str:
    """One member of a refresh family: ``generation`` 0 is the one minted at sign-in."""
    claims = _base_claims(
        TokenType.REFRESH,
        rules,
        subject=subject,
        version=version,
        scopes=scopes,
        now=now,
        expires_at=expires_at,
        jti=jti,
    )
    claims.update({"fam": family, "gen": generation, "fst": int(family_started)})
    return create_signed_token(claims, keys, typ=TokenType.REFRESH.media_type)


_REFRESH_CLAIMS = ("fam", "gen", "fst")


def verify_token(
    token: str | bytes,
    keys: KeySet,
    token_type: TokenType,
    *,
    rules: TokenRules,
    now: float,
) -> dict[str, Any]:
    """The claims of a valid token of kind ``token_type``, or raise ``InvalidToken``."""
    refresh = token_type is TokenType.REFRESH
    claims = verify_signed_token(
        token,
        keys,
        typ=token_type.media_type,
        rules=rules,
        now=now,
        # Every token this library mints carries its scopes; one without them is not ours.
        require=("ver", "token_type", "scopes", *(_REFRESH_CLAIMS if refresh else ())),
    )
    if claims.get("token_type") != token_type.value:
        raise InvalidToken("wrong token_type claim")
    _counter(claims, "ver", -MAX_COUNTER - 1)
    _scopes(claims)
    if refresh:
        _counter(claims, "gen", 0)
        _identifier(claims, "fam")
        _time(claims, "fst")
    return claims


def is_expired_token(token: str | bytes, *, now: float, leeway: float = 0.0) -> bool:
    """True if ``token`` is past its ``exp`` (or unreadable).

    The signature is NOT checked: this helps a client decide when to refresh and must never
    be used to decide access. Use :func:`verify_token` for that.
    """
    raw = token.encode("utf-8") if isinstance(token, str) else bytes(token)
    if not raw or len(raw) > MAX_TOKEN_BYTES:
        return True
    try:
        claims = jwt.decode(raw, options={"verify_signature": False})
        return now >= _number(claims, "exp") + leeway
    except (jwt.PyJWTError, InvalidToken, ValueError, TypeError, RecursionError):
        return True
