"""What crudauth's own routes accept before any work is done on a request body.

Every crudauth router is built with ``route_class=BoundedRoute``, so this applies to the
library's routes only, never to the rest of the application:

- A body over ``MAX_BODY_BYTES`` answers 413 before it is parsed. A sign-in form or a token is
  a few hundred bytes; a megabyte of JSON or of form fields is only a way to make the server
  read, allocate and validate for nothing (and, on the sign-in routes, to do so before the
  throttle). The declared ``Content-Length`` is checked first; a body sent without one is read
  chunk by chunk and refused as soon as it passes the limit.
- A body that is not text (bytes that are not UTF-8 under a non-JSON content type) answers
  422 like any other malformed body. FastAPI's default 422 handler echoes the raw input back
  and cannot encode such bytes, which would turn a malformed request into a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from crudauth.errors import RequestTooLarge
from crudauth.http.errors import http_errors

#: The largest body any crudauth route needs: the biggest one (a reset confirmation: a 2 KiB
#: token and a password of at most 4096 characters) is under 20 KiB; an application's own
#: registration schema gets the rest.
MAX_BODY_BYTES: Final = 64 * 1024

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


async def read_bounded_body(request: Request, limit: int = MAX_BODY_BYTES) -> None:
    """Read the body into the request (where Starlette keeps it), or raise ``RequestTooLarge``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise RequestTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge()
        chunks.append(chunk)
    # Request.body(), .json() and .form() read this instead of the (now consumed) stream.
    request._body = b"".join(chunks)


def _printable(errors: Any) -> list[Any]:
    """Validation errors whose ``input`` is text, so the 422 can always be written."""
    out = []
    for error in errors:
        if isinstance(error, dict) and isinstance(error.get("input"), (bytes, bytearray)):
            error = {**error, "input": bytes(error["input"]).decode("utf-8", "replace")}
        out.append(error)
    return out


class BoundedRoute(APIRoute):
    """An ``APIRoute`` whose body is size-checked before FastAPI parses or validates it."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                with http_errors():
                    await read_bounded_body(request)
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise RequestValidationError(_printable(exc.errors()), body=exc.body) from None

        return bounded
