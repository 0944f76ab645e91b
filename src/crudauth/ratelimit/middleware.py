"""``RateLimitHeadersMiddleware``: quota headers on error responses too."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS_STATE_ATTR = "_crudauth_ratelimit_headers"


class RateLimitHeadersMiddleware:
    """Copy rate-limit headers onto error responses of routes that were counted.

    A dependency can set headers only on a successful response; when the route itself then
    fails (a 4xx from the handler), this middleware puts the quota headers back on.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                state = scope.get("state") or {}
                extra: dict[str, str] = state.get(HEADERS_STATE_ATTR) or {}
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in extra.items()
                    if k.lower().encode("latin-1") not in present
                ]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
