"""What issuing and refreshing tokens return."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any


class IssuedTokens(dict[str, Any]):
    """``{access_token, token_type, refresh_token}``: a plain dict that may also be awaited.

    ``issue_tokens`` is synchronous, as in the API crudauth is compatible with, but code
    written for async variants of that API says ``await auth.issue_tokens(user)``. Awaiting
    this dict waits until the refresh token's family is recorded (``recording``; a store
    error is raised here) and returns the dict, so both spellings work.
    """

    #: The task recording the refresh family, if one was started.
    recording: asyncio.Task[None] | None = None

    def __await__(self) -> Generator[Any, None, IssuedTokens]:
        if self.recording is not None:
            yield from self.recording.__await__()
        return self


@dataclass(frozen=True)
class RefreshedTokens:
    """The result of one successful ``/refresh``."""

    user: Any
    tokens: IssuedTokens
    expires_at: float
