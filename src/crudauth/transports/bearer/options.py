"""Checks for ``BearerTransport`` options: every mistake is a ``ConfigurationError`` at once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from crudauth.config import CookieConfig
from crudauth.errors import ConfigurationError
from crudauth.http.request import COOKIE_NAME
from crudauth.transports.bearer.signing import (
    ALGORITHMS,
    Algorithm,
    KeySet,
    asymmetric_keyset,
)
from crudauth.transports.shared import CookieWriter

SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 §3.3 scope-token


def scope_set(value: Iterable[str] | None, name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        raise ConfigurationError(f"{name} must be a collection of scope names, not a string")
    scopes = frozenset(value)
    bad = sorted(repr(s) for s in scopes if not isinstance(s, str) or not SCOPE.match(s))
    if bad:
        raise ConfigurationError(f"{name} has invalid scope names: {bad}")
    return scopes


def positive(value: float, name: str, *, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number")
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{name} must be at most {maximum}")
    return float(value)


def within(value: float, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}")
    return float(value)


def check_refresh_cookie(name: str, path: str | None, cookies: CookieConfig | None) -> None:
    """A valid cookie name, an absolute path and a ``CookieConfig`` (if given)."""
    if not isinstance(name, str) or not COOKIE_NAME.match(name):
        raise ConfigurationError(f"refresh_cookie_name={name!r} is not valid")
    if path is not None and (not str(path).startswith("/") or any(c in str(path) for c in ";\r\n")):
        raise ConfigurationError("refresh_cookie_path must be an absolute path")
    if cookies is not None and not isinstance(cookies, CookieConfig):
        raise ConfigurationError("cookies must be a CookieConfig")


def check_names(issuer: str, audience: str) -> None:
    for label, value in (("issuer", issuer), ("audience", audience)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{label} must be a non-empty string")


def granted_scopes(
    default_scopes: Iterable[str] | None, grantable_scopes: Iterable[str] | None
) -> tuple[frozenset[str], frozenset[str]]:
    """``(default, grantable)``; grantable defaults to the defaults, which it must contain."""
    default = scope_set(default_scopes, "default_scopes")
    grantable = (
        default if grantable_scopes is None else scope_set(grantable_scopes, "grantable_scopes")
    )
    if not default <= grantable:
        raise ConfigurationError("default_scopes must be a subset of grantable_scopes")
    return default, grantable


def public_keyset(
    algorithm: Algorithm, signing_key: Any, verification_keys: Sequence[Any]
) -> KeySet | None:
    """The asymmetric key set of ``algorithm``; ``None`` for HS256 (keys from SECRET_KEY)."""
    if algorithm not in ALGORITHMS:
        raise ConfigurationError(f"algorithm={algorithm!r}: use one of {list(ALGORITHMS)}")
    if algorithm == "HS256":
        if signing_key is not None or verification_keys:
            raise ConfigurationError(
                "HS256 keys come from SECRET_KEY; signing_key needs EdDSA/ES256"
            )
        return None
    if signing_key is None:
        raise ConfigurationError("algorithm='EdDSA'/'ES256' needs signing_key=")
    return asymmetric_keyset(algorithm, signing_key, verification_keys)


def refresh_cookie_writer(
    config: CookieConfig, name: str, path: str | None, mode: str
) -> CookieWriter:
    """The refresh cookie's writer under the app's (or the transport's) ``CookieConfig``."""
    if mode == "cookie" and config.samesite == "none":
        raise ConfigurationError("SameSite=None is refused for the refresh cookie")
    path = path or config.path
    if name.startswith("__Host-") and (not config.secure or path != "/"):
        raise ConfigurationError("a '__Host-' refresh cookie needs secure=True and path='/'")
    return CookieWriter(config, path)
