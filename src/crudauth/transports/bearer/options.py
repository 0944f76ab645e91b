"""Checks for ``BearerTransport`` options: every mistake is a ``ConfigurationError`` at once."""

from __future__ import annotations

import re
from collections.abc import Iterable

from crudauth.errors import ConfigurationError

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
