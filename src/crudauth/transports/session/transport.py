"""``SessionTransport``: server-side sessions in an HttpOnly cookie, with CSRF protection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, Final, Literal

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from crudauth.config import CookieConfig
from crudauth.errors import (
    ConfigurationError,
    CrossSiteRequest,
    CSRFFailure,
    InvalidSession,
)
from crudauth.http.guards import SAFE_METHODS
from crudauth.http.headers import COOKIE_NAME, request_cookie
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime
from crudauth.storage.base import SessionStore, StartedLoad
from crudauth.storage.memory import MemorySessionStore
from crudauth.transports.base import AuthContext, Issued, Transport, own_session
from crudauth.transports.principals import build_principal, claims_snapshot
from crudauth.transports.session.cookies import SessionCookies
from crudauth.transports.session.manager import (
    CROSS_ORIGIN,
    LiveSession,
    SessionManager,
    SessionSettings,
    well_formed,
)
from crudauth.transports.session.owners import SessionOwners

Backend = Literal["memory", "redis", "database"]

#: Where a session record keeps the claims snapshot taken at sign-in (in ``metadata``).
CLAIMS_KEY: Final = "_claims"
#: ``_with_user``'s "no user row read yet" (``None`` means the row is gone).
_UNREAD: Final[Any] = object()


class SessionTransport(Transport):
    """Cookie sessions. Every unsafe request from a session needs ``X-CSRF-Token``."""

    name = "session"
    sets_cookies = True
    serves_browser_logout = True

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
        if backend not in (None, "memory", "redis", "database"):
            raise ConfigurationError(
                f"SessionTransport(backend={backend!r}): use 'memory', 'redis', 'database' or None"
            )
        if redis_url is not None and redis_client is not None:
            raise ConfigurationError("pass redis_url or redis_client, not both")
        if (redis_url is not None or redis_client is not None) and backend not in (None, "redis"):
            raise ConfigurationError(f"redis_url/redis_client conflict with backend={backend!r}")
        if storage is not None and (backend is not None or redis_url or redis_client):
            raise ConfigurationError("storage= replaces backend/redis_url/redis_client")
        if max_sessions_per_user < 0:
            raise ConfigurationError("max_sessions_per_user must be >= 0 (0 means no cap)")
        if session_timeout_minutes <= 0 or remember_me_days <= 0:
            raise ConfigurationError("session lifetimes must be positive")
        if absolute_timeout_hours is not None and absolute_timeout_hours <= 0:
            raise ConfigurationError("absolute_timeout_hours must be positive or None")
        if cleanup_interval_minutes <= 0:
            raise ConfigurationError("cleanup_interval_minutes must be positive")
        for label, value in (("cookie_name", cookie_name), ("csrf_cookie_name", csrf_cookie_name)):
            if not isinstance(value, str) or not COOKIE_NAME.match(value):
                raise ConfigurationError(f"{label}={value!r} is not a valid cookie name")
        if cookie_name == csrf_cookie_name:
            raise ConfigurationError("cookie_name and csrf_cookie_name must differ")
        if storage_prefix == csrf_storage_prefix:
            raise ConfigurationError("storage_prefix and csrf_storage_prefix must differ")
        if cookies is not None and cookies.samesite == "none":
            raise ConfigurationError("SameSite=None is refused for the session cookie")
        self.backend: Backend | None = (
            "redis" if backend is None and (redis_url or redis_client is not None) else backend
        )
        self.siblings: list[Transport] = []
        self._redis_url = redis_url
        self._redis_client = redis_client
        self.storage_prefix = storage_prefix
        self.csrf = csrf
        self.management_routes = management_routes
        self._cookie_config = cookies
        self.cookie_name = cookie_name
        self.csrf_cookie_name = csrf_cookie_name
        idle = session_timeout_minutes * 60
        remember = remember_me_days * 86400
        self.settings = SessionSettings(
            idle_timeout=idle,
            remember_me_idle_timeout=remember,
            absolute_timeout=absolute_timeout_hours * 3600
            if absolute_timeout_hours
            else max(idle, 12 * 3600),
            remember_me_absolute_timeout=(
                absolute_timeout_hours * 3600 if absolute_timeout_hours else remember
            ),
            max_sessions_per_user=max_sessions_per_user,
        )
        self.remember_me_seconds = int(remember)
        #: How often expired rows are purged from CRUDAuth(database_store=...); Redis and
        #: memory stores expire records on their own.
        self.cleanup_interval = cleanup_interval_minutes * 60
        self._storage = storage
        self._lockout = {
            name: value
            for name, value in (
                ("max_attempts", login_max_attempts),
                ("attempt_window_seconds", login_attempt_window_seconds),
                ("lockout_base_seconds", login_lockout_base_seconds),
                ("lockout_max_seconds", login_lockout_max_seconds),
                ("on_login_success", on_login_success),
            )
            if value is not None
        }

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
        self.manager = SessionManager(
            self._choose_store(runtime), runtime.keys, runtime.clock, self.settings
        )
        self.owners = SessionOwners()

    def _choose_store(self, runtime: AuthRuntime) -> SessionStore:
        """``storage=``, else this transport's backend, else the app-wide one, else memory."""
        if self._storage is not None:
            return self._storage
        backend = self.backend
        if backend is None:
            if runtime.redis_client is not None:
                backend = "redis"
            elif runtime.database_store is not None:
                backend = "database"
            else:
                backend = "memory"
        if backend == "memory":
            return MemorySessionStore(runtime.clock)
        if backend == "database":
            if runtime.database_store is None:
                raise ConfigurationError(
                    "SessionTransport(backend='database') needs CRUDAuth(database_store=...)"
                )
            return runtime.database_store.session_store()
        from crudauth.storage.redis import RedisSessionStore

        client = self._redis_client
        if client is None and self._redis_url is None:
            client = runtime.redis_client
        if client is not None:
            return RedisSessionStore(client, prefix=self.storage_prefix)
        return RedisSessionStore(url=self._redis_url, prefix=self.storage_prefix)

    def redis_settings(self) -> tuple[Any, str | None]:
        """The Redis client and URL this transport was configured with."""
        return self._redis_client, self._redis_url

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

    async def _live(
        self,
        request: Request,
        session_id: str,
        key: str | None = None,
        ctx: AuthContext | None = None,
    ) -> LiveSession:
        """The presented session, validated (one store round trip) and CSRF-checked."""
        slide = ctx is None or ctx.update_activity
        live = await self.manager.validate(session_id, key, slide=slide)
        if live is None:
            raise InvalidSession("unknown or expired session")
        check_csrf = ctx is None or ctx.check_csrf
        if self.csrf and check_csrf and request.method.upper() not in SAFE_METHODS:
            self.manager.check_csrf(live, request.headers.get("x-csrf-token"))
            try:  # defence in depth: the token, and a page of this app (or a trusted one)
                self.runtime.origins.check(request)
            except CrossSiteRequest:
                raise CSRFFailure(CROSS_ORIGIN) from None
        return live

    def _metadata(self, session_id: str, live: LiveSession) -> dict[str, Any]:
        return {
            "session_id": session_id,
            "session_key": live.key,
            "session_handle": live.handle,
            "created_at": live.record.created_at,
            "login_type": live.record.metadata.get("login_type", "password"),
        }

    async def authenticate(self, request: Request, ctx: AuthContext) -> Principal | None:
        session_id = request_cookie(request.scope, self.cookie_name)
        if session_id is None:
            return None
        manager = self.manager
        key = None
        if manager.store.starts_loads and well_formed(session_id):
            key = manager.storage_key(session_id)
            owner = self.owners.get(key)
            if owner is not None and ctx.update_activity and request.method.upper() in SAFE_METHODS:
                started = manager.start_validation(key)
                if started is not None:
                    return await self._overlapped(ctx, session_id, key, owner, *started)
        live = await self._live(request, session_id, key, ctx)
        principal = await self._with_user(ctx, session_id, live)
        if key is not None:  # under the current key, also for a record kept under an older one
            self.owners.remember(key, live.record.user_id)
        return principal

    async def _overlapped(
        self,
        ctx: AuthContext,
        session_id: str,
        key: str,
        owner: str,
        started: StartedLoad,
        now: float,
    ) -> Principal:
        """A safe request of a session this worker has seen: the store read is on its way
        while the owner's row is read, so the request waits once (see ``owners.py``). No
        CSRF check is due on a safe method."""
        try:
            user = await ctx.runtime.repo.get(ctx.db, owner)
        except BaseException:
            started.discard()
            raise
        live = await self.manager.finish_validation(session_id, key, started, now)
        if live is None:
            self.owners.forget(key)
            raise InvalidSession("unknown or expired session")
        if live.record.user_id != owner:  # a wrong entry: replaced, and the right row read
            self.owners.forget(key)
            principal = await self._with_user(ctx, session_id, live)
            self.owners.remember(key, live.record.user_id)
            return principal
        return await self._with_user(ctx, session_id, live, user)

    async def _with_user(
        self, ctx: AuthContext, session_id: str, live: LiveSession, user: Any = _UNREAD
    ) -> Principal:
        repo = ctx.runtime.repo
        early = user is not _UNREAD
        if not early:  # (an identity-map hit after a refresh: no second query)
            user = await repo.get(ctx.db, live.record.user_id)
        row = None if user is None else repo.auth_row(user)
        if row is None or not row.is_active:
            self.owners.forget(live.key)
            await self.manager.revoke_key(live.key)
            raise InvalidSession("account gone or disabled")
        version = live.record.token_version
        current = row.token_version
        if version is not None and version < current:
            self.owners.forget(live.key)
            await self.manager.revoke_key(live.key)
            raise InvalidSession("credentials changed since sign-in")
        if version is not None and version > current:
            if early:
                # Read before the store's answer, the row may predate a change that has
                # committed since (signing out elsewhere moves the kept session to the new
                # epoch after the commit): read it again, as the sequential order would have.
                await ctx.db.refresh(user)
                return await self._with_user(ctx, session_id, live)
            # The record was just moved to a new epoch that this request's read of the user
            # row predates (a password change racing this request): refuse, but keep the
            # session; the next request sees the committed epoch.
            raise InvalidSession("epoch moving")
        principal = build_principal(
            ctx.runtime, user, self.name, self._metadata(session_id, live), row=row
        )
        snapshot = claims_snapshot(principal)
        stored = live.record.metadata.get(CLAIMS_KEY)
        if stored is not None and stored != snapshot:
            # A flag changed in the database (say, a demotion): the full path heals the
            # snapshot that ``load_user=False`` reads. One write, only when something changed.
            await self.manager.store.update(
                live.key, {"metadata": {**live.record.metadata, CLAIMS_KEY: snapshot}}
            )
        return principal

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
        live = await self._live(request, session_id)
        snapshot = live.record.metadata.get(CLAIMS_KEY)
        if not isinstance(snapshot, dict):
            async with own_session(self.runtime.session_dependency) as db:
                principal = await self._with_user(
                    AuthContext(db=db, runtime=self.runtime), session_id, live
                )
            return replace(principal, user=None)
        return Principal(
            user_id=_typed_id(self.runtime, live.record.user_id),
            transport=self.name,
            user=None,
            is_superuser=bool(snapshot.get("su", False)),
            email_verified=bool(snapshot.get("ev", False)),
            recovery_verified=bool(snapshot.get("rv", False)),
            metadata=self._metadata(session_id, live),
        )

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
        runtime = self.runtime
        repo = runtime.repo
        remember = bool(options.get("remember_me", False))
        session_id, csrf, live = await self.manager.create_session(
            repo.user_id(user),
            token_version=int(repo.value(user, "token_version", 0) or 0),
            remember_me=remember,
            ip_address=runtime.client_ip(request),
            user_agent=request.headers.get("user-agent"),
            metadata={
                **dict(options.get("metadata") or {}),
                CLAIMS_KEY: claims_snapshot(build_principal(runtime, user, self.name, {})),
            },
        )
        max_age = int(min(self.remember_me_seconds, self.settings.remember_me_absolute_timeout))
        self.cookies.set(response, session_id, csrf, max_age if remember else None)
        body = {
            "id": repo.user_id(user),
            "username": repo.value(user, "username"),
            "csrf_token": csrf,
        }
        # ``load_user=False`` reads the record alone: the pipeline re-checks the epoch after
        # this and ends the session if a credential change committed in between.
        return Issued(body, live.handle, withdraw=partial(self.manager.revoke_key, live.key))

    async def complete_login(
        self, request: Request, response: Response, user: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Create a session for ``user`` and set its cookies; return the login body."""
        return (await self.issue_credential(request, response, user, options)).body

    def clear_cookies(self, response: Response) -> None:
        self.cookies.clear(response)


def _typed_id(runtime: AuthRuntime, user_id: str) -> Any:
    """The user id in the model's own type (records keep it as text)."""
    try:
        return runtime.repo.coerce_id(user_id)  # the same coercion as ``repo.get``
    except (TypeError, ValueError):
        return user_id
