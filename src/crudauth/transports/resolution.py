"""Turning a request into one ``Principal``, and the gates of ``current_user``."""

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Annotated, Any, Protocol, cast, runtime_checkable

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from crudauth.errors import (
    AccessDenied,
    ConfigurationError,
    CrudAuthError,
    NotAuthenticated,
    StoreUnavailable,
)
from crudauth.http.errors import DATABASE_UNAVAILABLE, database_unavailable, to_http
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime
from crudauth.transports.base import AuthContext, Transport

Check = Callable[[Principal], bool | Awaitable[bool]]
Admit = Callable[[Principal | None], Principal | None]
Checked = Callable[[Principal | None], Awaitable[Principal | None]]

_CACHE_ATTR = "_crudauth_principals"


@runtime_checkable
class ClaimsTransport(Protocol):
    """A transport that can serve ``current_user(load_user=False)`` without SQL."""

    async def authenticate_claims(self, request: Request) -> Principal | None:
        """Like ``authenticate``, from the credential and its store alone (``user=None``)."""


def refuses_credential(exc: Exception) -> bool:
    """Whether ``exc`` is a transport's "this credential is present but unusable".

    Only that, like an absent credential, may read as anonymous. A store that cannot answer,
    a database error or a bug must never turn into "signed out": a caller that then serves
    public content, or skips a per-user limit, would do so exactly while the system is
    degraded. A custom transport may refuse with a 4xx ``HTTPException``; a 5xx is an outage.
    """
    if isinstance(exc, CrudAuthError):
        return not isinstance(exc, (StoreUnavailable, ConfigurationError))
    return isinstance(exc, HTTPException) and 400 <= exc.status_code < 500


def _cache(request: Request) -> dict[str, Principal | None]:
    # Kept in the ASGI scope's state dict (what request.state wraps), without the wrapper's
    # attribute machinery on the hot path.
    state: dict[str, Any] = request.scope.setdefault("state", {})
    cache: dict[str, Principal | None] | None = state.get(_CACHE_ATTR)
    if cache is None:
        cache = state[_CACHE_ATTR] = {}
    return cache


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
        cache = _cache(request)
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

    async def resolve_for_middleware(
        self, request: Request, db: AsyncSession, *, update_activity: bool
    ) -> Principal | None:
        """The principal for code that runs before the route (``resolve_principal``).

        No CSRF check, and nothing cached: the route's own dependency resolves again with
        every check, so a middleware's look can never stand in for the route's CSRF check.
        An invalid credential reads as anonymous (``None``); every other failure, a store
        outage first of all, propagates.
        """
        ctx = AuthContext(
            db=db, runtime=self.runtime, update_activity=update_activity, check_csrf=False
        )
        try:
            for candidate in self.transports:
                principal = await candidate.authenticate(request, ctx)
                if principal is not None:
                    return principal
            return None
        except Exception as exc:
            if refuses_credential(exc):
                return None
            raise

    async def resolve_claims(
        self, request: Request, transport: str | None = None
    ) -> Principal | None:
        """The principal from each credential's own store, without reading the user row.

        Reuses a full principal already resolved for this request (it is at least as fresh).
        """
        cache = _cache(request)
        slot = transport or "*"
        if slot in cache:
            return cache[slot]
        claims_slot = slot + ":claims"
        if claims_slot in cache:
            return cache[claims_slot]
        principal: Principal | None = None
        for candidate in self.select(transport):
            # Checked when the route was built (``dependency``): no isinstance per request.
            principal = await cast(ClaimsTransport, candidate).authenticate_claims(request)
            if principal is not None:
                break
        cache[claims_slot] = principal
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
        load_user: bool = True,
    ) -> Callable[..., Awaitable[Principal | None]]:
        """Build the FastAPI dependency behind ``CRUDAuth.current_user``.

        ``load_user=False`` serves the principal's claims with no SQL and ``user=None``; see
        docs/performance.md for which revocations it sees at once.
        """
        self._check_options(transport, verified, check, load_user)
        admit, checked = _gates(optional, superuser, verified, frozenset(scopes or ()), check)
        if not load_user:
            return self._claims_dependency(transport, admit, checked, check is None)
        resolve = self.resolve
        unchecked = check is None

        async def current_user(
            request: Request,
            db: Annotated[AsyncSession, Depends(self.runtime.session_dependency)],
        ) -> Principal | None:
            try:
                principal = admit(await resolve(request, db, transport))
                return principal if unchecked else await checked(principal)
            except CrudAuthError as exc:
                raise to_http(exc) from None
            except DATABASE_UNAVAILABLE as exc:
                raise database_unavailable(exc) from None

        return current_user

    def _check_options(
        self, transport: str | None, verified: bool, check: Check | None, load_user: bool
    ) -> None:
        """``current_user``'s options, refused when the route is built, never per request."""
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
        if not load_user:
            unable = [t.name for t in self.select(transport) if not isinstance(t, ClaimsTransport)]
            if unable:
                raise ConfigurationError(
                    f"current_user(load_user=False): transport(s) {unable} cannot serve claims "
                    "without loading the user"
                )

    def _claims_dependency(
        self, transport: str | None, admit: Admit, checked: Checked, unchecked: bool
    ) -> Callable[..., Awaitable[Principal | None]]:
        resolve_claims = self.resolve_claims

        # No database dependency at all: no session object, no connection, no SQL.
        async def current_claims(request: Request) -> Principal | None:
            try:  # (not ``http_errors()``: a generator context manager costs on every call)
                principal = admit(await resolve_claims(request, transport))
                return principal if unchecked else await checked(principal)
            except CrudAuthError as exc:
                raise to_http(exc) from None

        return current_claims


def _gates(
    optional: bool,
    superuser: bool,
    verified: bool,
    required: frozenset[str],
    check: Check | None,
) -> tuple[Admit, Checked]:
    """``current_user``'s gates: ``admit`` (signed in, superuser, verified, scopes), then
    ``checked`` (the caller's own ``check``)."""

    def admit(principal: Principal | None) -> Principal | None:
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
        return principal

    async def checked(principal: Principal | None) -> Principal | None:
        """``check`` on an admitted caller (an optional route's anonymous one skips it)."""
        if check is not None and principal is not None:
            allowed = check(principal)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                raise AccessDenied("Access denied")
        return principal

    return admit, checked
