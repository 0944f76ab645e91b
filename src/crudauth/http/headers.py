"""Reading one request header straight from the ASGI scope."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import cookie_parser

logger = logging.getLogger("crudauth")

#: RFC 6265 cookie-name: what a configured cookie name must match (session, CSRF, refresh).
COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


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
    """The value of the credential cookie ``name``; ``None`` if absent or sent more than once.

    Starlette's parsing rules otherwise: every ``Cookie`` header in order, split on ``;``,
    names and values stripped. A quoted value is handed to Starlette's own parser (for its
    unquoting); a credential never is quoted, so the common case builds no dict, unquotes
    nothing and scans the header once.

    A name sent twice is no credential at all. A browser sends two cookies of one name when
    another host of the parent domain has set its own (``Domain=.example.com``) next to this
    host's one: cookie tossing. Which one a browser puts last (Starlette's choice) or first
    depends on path length and creation time, not on who set it, so neither can be trusted
    to be this host's own.
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
                if found is not None:
                    logger.warning(
                        "crudauth: the %r cookie was sent more than once and is ignored "
                        "(another host of the domain may be setting it: use a __Host- name)",
                        name,
                    )
                    return None
                found = content.strip()
    if found is not None and found.startswith('"'):
        cookies: dict[str, str] = {}
        for text in texts:
            cookies.update(cookie_parser(text))
        return cookies.get(name)
    return found
