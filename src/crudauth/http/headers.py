"""Reading one request header straight from the ASGI scope."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.requests import cookie_parser


def raw_header(scope: MutableMapping[str, Any], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case, as ASGI servers deliver names), or ``None``.

    The same answer as ``request.headers.get(name)`` without building a ``Headers`` object: an
    authentication check on every request only needs to know whether its header is there.
    """
    for key, value in _headers(scope):
        if key == name:
            return value
    return None


def _headers(scope: MutableMapping[str, Any]) -> list[tuple[bytes, bytes]]:
    """The scope's header list; any other iterable is made a list first and written back, as
    Starlette's ``Headers`` does, so that nothing after this reads an exhausted iterator."""
    headers = scope["headers"]
    if not isinstance(headers, list):
        headers = scope["headers"] = list(headers)
    return headers


def request_cookie(scope: MutableMapping[str, Any], name: str) -> str | None:
    """``request.cookies.get(name)``, reading only the one cookie.

    Starlette's rules exactly: every ``Cookie`` header in order, split on ``;``, names and
    values stripped, the last cookie of that name wins. A quoted value is handed to Starlette's
    own parser (for its unquoting); a session id never is quoted, so the common case builds no
    dict and unquotes nothing.
    """
    found = None
    texts = []
    for key, value in _headers(scope):
        if key != b"cookie":
            continue
        text = value.decode("latin-1")
        texts.append(text)
        for chunk in text.split(";"):
            cookie, sep, content = chunk.partition("=")
            if sep and cookie.strip() == name:
                found = content.strip()
    if found is not None and found.startswith('"'):
        cookies: dict[str, str] = {}
        for text in texts:
            cookies.update(cookie_parser(text))
        return cookies.get(name)
    return found
