"""The transport port: where a credential travels and how it turns into a ``Principal``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from crudauth.errors import ConfigurationError
from crudauth.principal import Principal

if TYPE_CHECKING:
    from crudauth.runtime import AuthRuntime
    from crudauth.storage.base import SessionStore


@dataclass(frozen=True)
class AuthContext:
    """What ``authenticate`` may use for one request."""

    db: AsyncSession
    runtime: AuthRuntime
    #: ``False`` for a look that must not count as use: the session's idle window stays.
    update_activity: bool = True
    #: ``False`` only for ``resolve_principal`` (middleware), whose answer is never cached for
    #: the route: the route's own dependency checks CSRF.
    check_csrf: bool = True


@dataclass(frozen=True)
class Issued:
    """A credential a transport issued at sign-in, as the sign-in pipeline needs it."""

    #: The login response body.
    body: dict[str, Any]
    #: The session's public handle, for the hooks' context (``None`` without a session).
    session_handle: str | None = None
    #: Ends this credential again. Set when the credential can be used without reading the
    #: user's row (a session under ``load_user=False``), so that a credential change which
    #: committed while the sign-in ran is caught by the pipeline's epoch re-check. ``None``
    #: when every use compares the credential's own epoch with the account's (bearer tokens).
    withdraw: Callable[[], Awaitable[object]] | None = None


class Transport(ABC):
    """A way for credentials to reach the server (cookie session, bearer header, ...)."""

    name: str = "transport"
    sets_cookies: bool = False
    contributes_routes: bool = True
    #: This transport keeps a browser signed in and serves ``POST /logout`` for it (a cookie
    #: session): a sibling that would offer its own ``/logout`` leaves it to this one.
    serves_browser_logout: bool = False
    #: The route of this transport's password sign-in (``/login``, ``/token``), or ``None``.
    sign_in_path: str | None = None
    #: This transport keeps server-side sessions (``SessionTransport``): sudo mode, device
    #: management and ``CRUDAuth.sessions`` work on it.
    keeps_sessions: bool = False

    #: Seconds between purges of expired sessions in the SQL store, for a transport that keeps
    #: sessions there (``cleanup_interval_minutes``); ``None`` otherwise.
    cleanup_interval: float | None = None

    def lockout_overrides(self) -> dict[str, Any]:
        """Lockout settings given to the transport itself (the 0.6 ``login_*`` options)."""
        return {}

    def cookies_in_clear(self) -> bool:
        """This transport's credential cookie may travel over plain HTTP (``secure=False``):
        refused in production."""
        return False

    def own_redis(self) -> tuple[Any, str | None] | None:
        """The Redis client and URL this transport was given for its own state (the 0.6
        ``backend="redis", redis_url=...`` form), or ``None``."""
        return None

    @property
    def sign_in_sets_cookies(self) -> bool:
        """A sign-in through this transport lands cookies in the browser, so a cross-site
        sign-in form must be refused (login CSRF)."""
        return self.sets_cookies

    def bind(self, runtime: AuthRuntime) -> None:
        """Receive the shared services; called once by ``CRUDAuth``."""
        self._runtime = runtime

    def attach(self, siblings: Sequence[Transport]) -> None:  # noqa: B027 - optional hook
        """Learn the other configured transports (called once, after every ``bind``)."""

    @property
    def runtime(self) -> AuthRuntime:
        try:
            return self._runtime
        except AttributeError:
            raise RuntimeError(f"{type(self).__name__} is not bound to a CRUDAuth") from None

    @abstractmethod
    async def authenticate(self, request: Request, ctx: AuthContext) -> Principal | None:
        """``None`` when no credential is present; raise when one is present but invalid."""

    async def complete_login(
        self, request: Request, response: Response, user: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Issue this transport's credential for ``user`` and return the login body.

        Only the credential: the checks and steps around it (the lockout, the account's
        state, ending the presented credential, the epoch re-check, ``on_after_login``) are
        the sign-in pipeline's (``crudauth.signin``), which calls it through
        ``issue_credential``.

        Optional: a transport that only reads a credential issued elsewhere (an API key, a
        header set by a gateway) never signs anyone in. Only a sign-in that goes through such
        a transport fails, with ``ConfigurationError``; authenticating requests works.
        """
        raise ConfigurationError(
            f"{type(self).__name__} (transport {self.name!r}) cannot sign a user in: it does "
            "not implement complete_login(). Sign in through a transport that issues "
            "credentials (SessionTransport, BearerTransport), or implement complete_login()."
        )

    async def end_presented(self, request: Request) -> None:  # noqa: B027 - optional hook
        """End the credential of this transport that ``request`` presents, before a sign-in
        issues a new one (no session fixation). No-op by default."""

    async def issue_credential(
        self, request: Request, response: Response, user: Any, options: Mapping[str, Any]
    ) -> Issued:
        """What the sign-in pipeline calls to issue this transport's credential: by default
        ``complete_login``'s body, with nothing for the pipeline to withdraw."""
        return Issued(await self.complete_login(request, response, user, options))

    async def revoke_user(self, user_id: Any, *, keep: str | None = None) -> int:
        """End what this transport keeps server-side for ``user_id``; return how many
        credentials ended. ``keep`` names a session (a store key) that survives.

        The account service calls it on every transport after each credential change it
        commits, and ``CRUDAuth.revoke_user`` does too. This base transport keeps nothing of
        its own: its credential is checked against the user row on every request, so the
        committed deactivation or epoch bump already refuses it, and there is nothing to end
        (0). A transport that keeps sessions or caches claims must override it and end them.
        """
        return 0

    async def end_sign_in(self, request: Request) -> None:  # noqa: B027 - optional hook
        """Revoke server-side what this transport issued to the browser of ``request`` (called
        when the browser signs out through another transport's route)."""

    def clear_cookies(self, response: Response) -> None:  # noqa: B027 - optional hook, no-op by default
        """Remove any cookie this transport sets (no-op by default)."""

    def router(self) -> APIRouter | None:
        """The routes this transport contributes, if any."""
        return None

    def stores(self) -> Mapping[str, SessionStore]:
        """Named state stores this transport owns, for lifecycle and warnings."""
        return {}

    async def initialize(self) -> None:
        for store in self.stores().values():
            await store.initialize()

    async def shutdown(self) -> None:
        for store in self.stores().values():
            await store.close()


@asynccontextmanager
async def own_session(dependency: Callable[..., Any]) -> AsyncIterator[AsyncSession]:
    """A database session from the app's ``get_session`` dependency, outside FastAPI's
    injection (middleware, background checks)."""
    source = dependency()
    if hasattr(source, "__anext__"):
        db = await source.__anext__()
        try:
            yield db
        finally:
            await source.aclose()
    else:
        async with source as db:
            yield db
