"""Turning a request into one ``Principal``, and the gates of ``current_user``."""

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import AccessDenied, ConfigurationError, NotAuthenticated
from crudauth.http.errors import http_errors
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime
from crudauth.transports.base import AuthContext, Transport

Check = Callable[[Principal], bool | Awaitable[bool]]

_CACHE_ATTR = "_crudauth_principals"


class PrincipalResolver:
    """Tries transports in order; the first one that finds a credential decides."""

    def __init__(self, runtime: AuthRuntime, transports: Sequence[Transport]) -> None:
        self.runtime = runtime
        self.transports = list(transports)
        self.names = {t.name for t in self.transports}

    def select(self, transport: str | None) -> list[Transport]:
        if transport is None:
            return self.transports
        return [t for t in self.transports if t.name == transport]

    async def resolve(
        self, request: Request, db: AsyncSession, transport: str | None = None
    ) -> Principal | None:
        """The principal of ``request`` (cached per request and transport selection).

        A credential that is present but invalid raises; it is never treated as anonymous.
        Failures are not cached.
        """
        cache: dict[str, Principal | None] | None = getattr(request.state, _CACHE_ATTR, None)
        if cache is None:
            cache = {}
            setattr(request.state, _CACHE_ATTR, cache)
        slot = transport or "*"
        if slot in cache:
            return cache[slot]
        ctx = AuthContext(db=db, runtime=self.runtime)
        principal: Principal | None = None
        for candidate in self.select(transport):
            principal = await candidate.authenticate(request, ctx)
            if principal is not None:
                break
        cache[slot] = principal
        return principal

    def dependency(
        self,
        *,
        optional: bool = False,
        superuser: bool = False,
        verified: bool = False,
        scopes: Iterable[str] | None = None,
        transport: str | None = None,
        check: Check | None = None,
    ) -> Callable[..., Awaitable[Principal | None]]:
        """Build the FastAPI dependency behind ``CRUDAuth.current_user``."""
        if transport is not None and transport not in self.names:
            raise ConfigurationError(
                f"current_user(transport={transport!r}): no such transport "
                f"(configured: {sorted(self.names)})"
            )
        if verified and self.runtime.identity.recovery is None:
            raise ConfigurationError(
                "current_user(verified=True) needs a recovery factor (IdentityConfig.recovery)"
            )
        if check is not None and not callable(check):
            raise ConfigurationError("current_user(check=...) must be callable")
        required = frozenset(scopes or ())
        resolve = self.resolve

        async def current_user(
            request: Request,
            db: Annotated[AsyncSession, Depends(self.runtime.session_dependency)],
        ) -> Principal | None:
            with http_errors():
                principal = await resolve(request, db, transport)
                if principal is None:
                    if optional:
                        return None
                    raise NotAuthenticated()
                if superuser and not principal.is_superuser:
                    raise AccessDenied("Insufficient privileges")
                if verified and not principal.recovery_verified:
                    raise AccessDenied("Recovery factor not verified")
                if required and not principal.has_scopes(required):
                    raise AccessDenied("Insufficient scope")
                if check is not None:
                    allowed = check(principal)
                    if inspect.isawaitable(allowed):
                        allowed = await allowed
                    if not allowed:
                        raise AccessDenied("Access denied")
                return principal

        return current_user
