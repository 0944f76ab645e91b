"""Reading one request header straight from the ASGI scope."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any


def raw_header(scope: MutableMapping[str, Any], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case, as ASGI servers deliver names), or ``None``.

    The same answer as ``request.headers.get(name)`` without building a ``Headers`` object: an
    authentication check on every request only needs to know whether its header is there.
    """
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None
