"""``safe_redirect_path``: keep a client-supplied return address only if it stays on this site."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

MAX_REDIRECT_LENGTH: Final = 2048


def safe_redirect_path(value: str | None) -> str | None:
    """``value`` if it is a same-origin path such as ``/account?tab=1``, else ``None``.

    Browsers treat ``//evil.example`` and ``/\\evil.example`` as another host, and some read a
    backslash as a slash anywhere, so both are refused along with schemes, userinfo, control
    characters (CR/LF could split a header) and leading whitespace. Only a plain absolute path,
    optionally with a query and fragment, survives.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_REDIRECT_LENGTH:
        return None
    if not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    return value
