"""``auth.rate_limit(...)``: throttles as FastAPI dependencies, with standard headers.

Headers are published only for quotas the caller may know about: an address-keyed quota, or
the signed-in user's own. A quota keyed by someone else's account (a silent per-target limit)
never appears in a response, so it cannot be used to learn whether an account exists.
"""

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import ConfigurationError, NotAuthenticated, RateLimited
from crudauth.http.errors import http_errors
from crudauth.principal import Principal
from crudauth.ratelimit.lockout import address_subject
from crudauth.ratelimit.middleware import HEADERS_STATE_ATTR
from crudauth.ratelimit.policy import KeyBy, RateLimit, RateLimitResolver, ThrottleResult
from crudauth.runtime import AuthRuntime
from crudauth.transports.resolution import PrincipalResolver

KeyFunc = Callable[..., str | Awaitable[str]]


def rate_limit_headers(action: str, result: ThrottleResult, window: float) -> dict[str, str]:
    """The reference's ``X-RateLimit-*`` pair plus the IETF ``RateLimit-Policy``/``RateLimit``."""
    reset = max(0, int(result.reset_after + 0.999))
    return {
        "X-RateLimit-Limit": str(result.limit),
        "X-RateLimit-Remaining": str(result.remaining),
        "RateLimit-Policy": f'"{action}";q={result.limit};w={int(window)}',
        "RateLimit": f'"{action}";r={result.remaining};t={reset}',
    }


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _arity(func: Callable[..., Any]) -> int:
    params = inspect.signature(func).parameters.values()
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])


def build_rate_limit(
    runtime: AuthRuntime,
    resolver: PrincipalResolver,
    action: str,
    limit: RateLimit | RateLimitResolver | None = None,
    *,
    key: KeyBy | KeyFunc = KeyBy.IP,
    transport: str | None = None,
) -> Callable[..., Awaitable[None]]:
    """A dependency that counts one request against ``action``'s limit."""
    key_arity, needs_principal = _checked_options(runtime, resolver, action, limit, key, transport)

    async def rate_limited(
        request: Request,
        response: Response,
        db: Annotated[AsyncSession, Depends(runtime.session_dependency)],
    ) -> None:
        with http_errors():
            principal = await resolver.resolve(request, db, transport) if needs_principal else None
            policy = limit if isinstance(limit, RateLimit) else None
            if limit is not None and policy is None:
                policy = await _maybe_await(limit(request, principal))  # type: ignore[operator]
                if policy is None:
                    return
            identity, public = await _identity_of(runtime, key, key_arity, request, principal)
            await _count(runtime, action, policy, identity, public, request, response)

    return rate_limited


def _checked_options(
    runtime: AuthRuntime,
    resolver: PrincipalResolver,
    action: str,
    limit: RateLimit | RateLimitResolver | None,
    key: KeyBy | KeyFunc,
    transport: str | None,
) -> tuple[int, bool]:
    """``(key_arity, needs_principal)``; a mistake is a ``ConfigurationError`` at once."""
    if limit is None and action not in runtime.throttles.limits:
        raise ConfigurationError(f"rate_limit({action!r}): unknown action and no limit given")
    if limit is not None and not isinstance(limit, RateLimit) and not callable(limit):
        raise ConfigurationError("rate_limit(limit=...) must be a RateLimit or a resolver")
    if not isinstance(key, KeyBy) and not callable(key):
        raise ConfigurationError("rate_limit(key=...) must be a KeyBy or a callable")
    key_arity = _arity(key) if callable(key) and not isinstance(key, KeyBy) else 0
    needs_principal = (
        key in (KeyBy.USER, KeyBy.USER_OR_IP)
        or key_arity >= 2
        or (limit is not None and not isinstance(limit, RateLimit))
    )
    if transport is not None and transport not in resolver.names:
        raise ConfigurationError(f"rate_limit(transport={transport!r}): no such transport")
    return key_arity, needs_principal


async def _identity_of(
    runtime: AuthRuntime,
    key: KeyBy | KeyFunc,
    key_arity: int,
    request: Request,
    principal: Principal | None,
) -> tuple[str | None, bool]:
    """The bucket (``None``: not counted), and whether its quota may be shown."""
    address = runtime.client_ip(request)
    ip_identity = f"ip:{address_subject(address)}" if address else None
    if key is KeyBy.IP:
        return ip_identity, True
    if key is KeyBy.USER:
        if principal is None:
            raise NotAuthenticated()
        return f"user:{principal.user_id}", True
    if key is KeyBy.USER_OR_IP:
        return (f"user:{principal.user_id}", True) if principal else (ip_identity, True)
    raw = key(request, principal) if key_arity >= 2 else key(request)
    return f"custom:{await _maybe_await(raw)}", False


async def _count(
    runtime: AuthRuntime,
    action: str,
    policy: RateLimit | None,
    identity: str | None,
    public: bool,
    request: Request,
    response: Response,
) -> None:
    """Count one hit; a public bucket's quota goes into the headers (and the 429's)."""
    window = (policy or runtime.throttles.limit_for(action)).seconds
    try:
        result = await runtime.throttles.hit(action, identity, policy)
    except RateLimited as exc:
        headers = {}
        if public:
            times = (policy or runtime.throttles.limit_for(action)).times
            denied = ThrottleResult(False, times, 0, exc.retry_after, exc.retry_after)
            headers = rate_limit_headers(action, denied, window)
        raise RateLimited(exc.retry_after, headers) from None
    if result is not None and public:
        headers = rate_limit_headers(action, result, window)
        response.headers.update(headers)
        setattr(request.state, HEADERS_STATE_ATTR, headers)
