"""``SessionTransport``: server-side sessions in an HttpOnly cookie, with CSRF protection."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, Literal

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from crudauth.config import CookieConfig
from crudauth.errors import ConfigurationError, CrossSiteRequest, CSRFFailure
from crudauth.http.origins import SAFE_METHODS
from crudauth.http.request import request_cookie
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime
from crudauth.storage.base import SessionStore
from crudauth.transports.base import AuthContext, Issued, Transport, own_session
from crudauth.transports.session.manager import CROSS_ORIGIN, LiveSession, SessionManager
from crudauth.transports.session.options import (
    check_cookie_options,
    check_store_options,
    lockout_overrides,
    session_settings,
)
from crudauth.transports.session.owners import SessionOwners
from crudauth.transports.session.strategy import Backend, SessionStrategy, choose_store
from crudauth.transports.shared import CookieWriter


class SessionCookies:
    """Sets and clears a session's two cookies through one ``CookieWriter``."""

    def __init__(self, config: CookieConfig, session_name: str, csrf_name: str) -> None:
        self.config = config
        self.writer = CookieWriter(config)
        self.session_name = session_name
        self.csrf_name = csrf_name

    def set(self, response: Response, session_id: str, csrf: str, max_age: int | None) -> None:
        self.writer.set(response, self.session_name, session_id, max_age=max_age)
        self.set_csrf(response, csrf, max_age)

    def set_csrf(self, response: Response, csrf: str, max_age: int | None) -> None:
        self.writer.set(response, self.csrf_name, csrf, max_age=max_age, http_only=False)

    def clear(self, response: Response) -> None:
        self.writer.clear(response, self.session_name)
        self.writer.clear(response, self.csrf_name, http_only=False)


class SessionTransport(Transport):
    """Cookie sessions. Every unsafe request from a session needs ``X-CSRF-Token``."""

    name = "session"
    sets_cookies = True
    serves_browser_logout = True
    sign_in_path = "/login"
    keeps_sessions = True

    def __init__(
        self,
        *,
        backend: Backend | None = None,
        redis_url: str | None = None,
        redis_client: Any = None,
        csrf: bool = True,
        max_sessions_per_user: int = 5,
        session_timeout_minutes: float = 30,
        absolute_timeout_hours: float | None = None,
        remember_me_days: float = 30,
        cleanup_interval_minutes: float = 15,
        cookies: CookieConfig | None = None,
        cookie_name: str = "session_id",
        csrf_cookie_name: str = "csrf_token",
        storage_prefix: str = "session:",
        csrf_storage_prefix: str = "csrf:",
        storage: SessionStore | None = None,
        management_routes: bool = False,
        login_max_attempts: int | None = None,
        login_attempt_window_seconds: float | None = None,
        login_lockout_base_seconds: float | None = None,
        login_lockout_max_seconds: float | None = None,
        on_login_success: Literal["clear_all", "clear_user_only"] | None = None,
    ) -> None:
        check_store_options(backend, redis_url, redis_client, storage)
        check_cookie_options(
            cookie_name, csrf_cookie_name, storage_prefix, csrf_storage_prefix, cookies
        )
        self.settings = session_settings(
            max_sessions_per_user=max_sessions_per_user,
            session_timeout_minutes=session_timeout_minutes,
            absolute_timeout_hours=absolute_timeout_hours,
            remember_me_days=remember_me_days,
            cleanup_interval_minutes=cleanup_interval_minutes,
        )
        self.backend: Backend | None = (
            "redis" if backend is None and (redis_url or redis_client is not None) else backend
        )
        self.siblings: list[Transport] = []
        self._redis_url, self._redis_client, self._storage = redis_url, redis_client, storage
        self.storage_prefix = storage_prefix
        self.csrf = csrf
        self.management_routes = management_routes
        self._cookie_config = cookies
        self.cookie_name = cookie_name
        self.csrf_cookie_name = csrf_cookie_name
        self.remember_me_seconds = int(remember_me_days * 86400)
        #: How often expired rows are purged from CRUDAuth(database_store=...); Redis and
        #: memory stores expire records on their own.
        self.cleanup_interval = cleanup_interval_minutes * 60
        self._lockout = lockout_overrides(
            max_attempts=login_max_attempts,
            attempt_window_seconds=login_attempt_window_seconds,
            lockout_base_seconds=login_lockout_base_seconds,
            lockout_max_seconds=login_lockout_max_seconds,
            on_login_success=on_login_success,
        )

    def lockout_overrides(self) -> dict[str, Any]:
        """The 0.6-style ``login_*`` lockout settings given to this transport, if any."""
        return dict(self._lockout)

    # -- wiring --------------------------------------------------------------------------------

    def bind(self, runtime: AuthRuntime) -> None:
        super().bind(runtime)
        config = self._cookie_config or runtime.cookies
        if config.samesite == "none":
            raise ConfigurationError("SameSite=None is refused for the session cookie")
        for name in (self.cookie_name, self.csrf_cookie_name):
            if name.startswith("__Host-") and (not config.secure or config.path != "/"):
                raise ConfigurationError(f"a {name!r} cookie needs secure=True and path='/'")
        self.cookies = SessionCookies(config, self.cookie_name, self.csrf_cookie_name)
        store = choose_store(
            runtime,
            self.backend,
            storage=self._storage,
            redis_client=self._redis_client,
            redis_url=self._redis_url,
            prefix=self.storage_prefix,
        )
        self.manager = SessionManager(store, runtime.keys, runtime.clock, self.settings)
        self.strategy = SessionStrategy(runtime, self.manager, self.name)

    @property
    def owners(self) -> SessionOwners:
        """Which user each session belongs to, as this worker remembers it."""
        return self.strategy.owners

    def redis_settings(self) -> tuple[Any, str | None]:
        """The Redis client and URL this transport was configured with."""
        return self._redis_client, self._redis_url

    def own_redis(self) -> tuple[Any, str | None] | None:
        return self.redis_settings() if self.backend == "redis" else None

    def cookies_in_clear(self) -> bool:
        return not self.cookies.config.secure

    @property
    def redis_client(self) -> Any:
        """The Redis client behind this transport's sessions, if they live in Redis."""
        return (
            getattr(self.manager.store, "client", None)
            if self.manager.store.kind == "redis"
            else None
        )

    def attach(self, siblings: Sequence[Transport]) -> None:
        self.siblings = [t for t in siblings if t is not self]

    def clear_all_cookies(self, response: Response) -> None:
        """Logout clears every transport's cookies, not only the session's."""
        self.clear_cookies(response)
        for sibling in self.siblings:
            sibling.clear_cookies(response)

    def stores(self) -> Mapping[str, SessionStore]:
        return {"sessions/CSRF": self.manager.store}

    def router(self) -> APIRouter:
        from crudauth.transports.session.routes import build_session_router

        return build_session_router(self)

    # -- requests ------------------------------------------------------------------------------

    async def current_session(self, request: Request) -> LiveSession | None:
        """The live session this request presents, or ``None``."""
        return await self.manager.validate(request_cookie(request.scope, self.cookie_name))

    def _csrf_check(
        self, request: Request, safe: bool, ctx: AuthContext | None
    ) -> Callable[[LiveSession], None] | None:
        """The CSRF check ``request`` needs (an unsafe method of a cookie session), if any."""
        if safe or not self.csrf or (ctx is not None and not ctx.check_csrf):
            return None
        return partial(self._check_csrf, request)

    def _check_csrf(self, request: Request, live: LiveSession) -> None:
        self.manager.check_csrf(live, request.headers.get("x-csrf-token"))
        try:  # defence in depth: the token, and a page of this app (or a trusted one)
            self.runtime.origins.check(request)
        except CrossSiteRequest:
            raise CSRFFailure(CROSS_ORIGIN) from None

    async def authenticate(self, request: Request, ctx: AuthContext) -> Principal | None:
        session_id = request_cookie(request.scope, self.cookie_name)
        if session_id is None:
            return None
        safe = request.method.upper() in SAFE_METHODS
        return await self.strategy.authenticate(
            ctx,
            session_id,
            overlap=safe and ctx.update_activity,
            check=self._csrf_check(request, safe, ctx),
        )

    async def authenticate_claims(self, request: Request) -> Principal | None:
        """``current_user(load_user=False)``: the principal from the session record alone.

        One store round trip and no SQL. The flags come from the snapshot taken at sign-in;
        ``Principal.user`` is ``None``. Revocation through the library deletes the record, so
        it bites at once; a change made straight in the database is not seen here (see
        docs/performance.md). A record without a snapshot (signed in before snapshots existed)
        takes the full path once.
        """
        session_id = request_cookie(request.scope, self.cookie_name)
        if session_id is None:
            return None
        strategy = self.strategy
        live = await strategy.live(session_id)
        check = self._csrf_check(request, request.method.upper() in SAFE_METHODS, None)
        if check is not None:
            check(live)
        principal = strategy.claims_principal(session_id, live)
        if principal is not None:
            return principal
        async with own_session(self.runtime.session_dependency) as db:
            ctx = AuthContext(db=db, runtime=self.runtime)
            principal = await strategy.with_user(ctx, session_id, live)
        return replace(principal, user=None)

    async def revoke_user(self, user_id: Any, *, keep: str | None = None) -> int:
        """End every session of ``user_id`` but ``keep`` (after a credential change or a
        deactivation); the claims snapshots go with their sessions."""
        return await self.manager.revoke_all(user_id, keep_key=keep)

    async def end_presented(self, request: Request) -> None:
        """The session this browser presented ends before a new one is issued."""
        presented = request_cookie(request.scope, self.cookie_name)
        if presented is not None:
            await self.manager.revoke(presented)

    async def issue_credential(
        self, request: Request, response: Response, user: Any, options: Mapping[str, Any]
    ) -> Issued:
        """Create a session for ``user`` at the row's epoch and set its cookies."""
        repo = self.runtime.repo
        remember = bool(options.get("remember_me", False))
        session_id, csrf, live = await self.strategy.start(
            user,
            remember_me=remember,
            ip_address=self.runtime.client_ip(request),
            user_agent=request.headers.get("user-agent"),
            metadata=options.get("metadata") or {},
        )
        self.cookies.set(response, session_id, csrf, self.cookie_max_age(remember))
        body = {
            "id": repo.user_id(user),
            "username": repo.value(user, "username"),
            "csrf_token": csrf,
        }
        # ``load_user=False`` reads the record alone: the pipeline re-checks the epoch after
        # this and ends the session if a credential change committed in between.
        return Issued(body, live.handle, withdraw=partial(self.manager.revoke_key, live.key))

    def cookie_max_age(self, remember_me: bool) -> int | None:
        """The cookies' ``Max-Age``: a remembered session's lifetime, else none (the cookies
        end with the browser)."""
        if not remember_me:
            return None
        return int(min(self.remember_me_seconds, self.settings.remember_me_absolute_timeout))

    async def complete_login(
        self, request: Request, response: Response, user: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Create a session for ``user`` and set its cookies; return the login body."""
        return (await self.issue_credential(request, response, user, options)).body

    def clear_cookies(self, response: Response) -> None:
        self.cookies.clear(response)
