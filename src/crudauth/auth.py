"""``CRUDAuth``: the composition root. It wires the parts together and owns no policy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from crudauth.account.router import build_account_router
from crudauth.assembly import Arguments, assemble, session_transport
from crudauth.audit.log import AuditSink
from crudauth.clock import Clock
from crudauth.config import CookieConfig
from crudauth.credentials import AccountService
from crudauth.email.config import EmailConfig
from crudauth.email.delivery import DeliveryChannel
from crudauth.email.router import build_recovery_router
from crudauth.email.service import EmailFlowService
from crudauth.errors import ConfigurationError
from crudauth.hooks import AuthHooks
from crudauth.http.errors import http_errors
from crudauth.identity.config import IdentityConfig
from crudauth.mfa.config import MfaConfig
from crudauth.mfa.router import build_mfa_router
from crudauth.mfa.service import MfaService
from crudauth.oauth.service import OAuthAccountService
from crudauth.oauth.setup import initialize_oauth
from crudauth.passwords import LegacyVerifier, PasswordHasher
from crudauth.policy import PasswordPolicy, Source
from crudauth.principal import Principal
from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.policy import KeyBy, LockoutConfig, RateLimit, RateLimitResolver
from crudauth.register.router import build_register_route
from crudauth.register.service import NewUserFields
from crudauth.signin.pipeline import check_password
from crudauth.signin.routes import build_sign_in_router
from crudauth.storage.base import KeyValueStore
from crudauth.storage.database import DatabaseStore
from crudauth.sudo import SudoConfig, SudoManager, build_sudo_router, sudo_gate
from crudauth.transports.base import Transport, own_session
from crudauth.transports.ratelimiting import KeyFunc, build_rate_limit
from crudauth.transports.resolution import Check
from crudauth.transports.session.manager import SessionManager
from crudauth.transports.session.transport import SessionTransport


class CRUDAuth:
    """Authentication for a FastAPI app over its own SQLAlchemy user model."""

    def __init__(
        self,
        *,
        session: Callable[..., Any],
        user_model: type[Any],
        SECRET_KEY: str,
        secret_fallbacks: Sequence[str] = (),
        transports: Sequence[Transport | type[Transport]] | None = None,
        column_map: Mapping[str, str] | None = None,
        identity: IdentityConfig | None = None,
        hooks: AuthHooks | None = None,
        cookies: CookieConfig | None = None,
        register_schema: type[BaseModel] | None = None,
        register_extra_fields: Iterable[str] | None = None,
        new_user_defaults: Mapping[str, Any] | None = None,
        new_user_fields: NewUserFields | None = None,
        trusted_proxy_hops: int = 0,
        trusted_proxies: Sequence[str] | None = None,
        proxy_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
        trusted_origins: Sequence[str] | None = None,
        rate_limiter: RateLimiterBackend | None = None,
        redis_url: str | None = None,
        redis_client: Any = None,
        database_store: DatabaseStore | None = None,
        rate_limit_prefix: str | None = None,
        rate_limits: Mapping[str, RateLimit | None] | None = None,
        lockout: LockoutConfig | None = None,
        warn_on_memory_backend: bool = True,
        password_policy: PasswordPolicy | None = None,
        fresh_sign_in_seconds: int = 600,
        algorithm: str = "HS256",
        production: bool | None = None,
        clock: Clock | None = None,
        password_hasher: PasswordHasher | None = None,
        legacy_verifiers: LegacyVerifier | Sequence[LegacyVerifier] | None = None,
        email: EmailConfig | None = None,
        channels: Sequence[DeliveryChannel] | None = None,
        sudo: SudoConfig | None = None,
        mfa: MfaConfig | None = None,
        audit: AuditSink | Sequence[AuditSink] | None = None,
        oauth: Mapping[str, Any] | None = None,
        oauth_paths: Any = None,
        oauth_response_mode: Literal["redirect", "json"] = "redirect",
        oauth_default_redirect: str | None = None,
        redirect_base_url: str | None = None,
    ) -> None:
        parts = assemble(Arguments(**{k: v for k, v in locals().items() if k != "self"}))
        self.production = parts.production
        self.session = session
        self.runtime = parts.runtime
        self.identity = parts.runtime.identity
        self.repo = parts.runtime.repo
        self.hooks = parts.runtime.hooks
        self.password_policy = parts.runtime.password_policy
        self.fresh_sign_in_seconds = fresh_sign_in_seconds
        self.new_user_fields = new_user_fields
        self.new_user_defaults = dict(new_user_defaults or {})
        self.transports = parts.transports
        self.sudo: SudoManager | None = parts.sudo
        self._parts = parts

    # -- lifecycle --------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open and verify backend connections (call from the app's lifespan). Idempotent.

        Raises ``StoreUnavailable`` when a configured backend cannot be reached: crudauth never
        falls back to memory on its own.
        """
        await self._parts.state.initialize()
        if self._parts.oauth is not None:
            await initialize_oauth(self._parts.oauth, self.session)

    async def shutdown(self) -> None:
        """Close what crudauth opened (never a client the caller passed in)."""
        try:
            await self.runtime.audit.drain()
            await self._parts.state.shutdown()
        finally:
            self.runtime.hasher.close()

    @property
    def rate_limiter(self) -> RateLimiterBackend:
        """The backend behind lockout and throttle counters."""
        return self._parts.state.limiter

    @property
    def tokens(self) -> KeyValueStore:
        """The store for single-use values (recovery tokens, OAuth state, MFA challenges)."""
        return self._parts.state.tokens

    # -- routers ----------------------------------------------------------------------------

    @property
    def router(self) -> APIRouter:
        """Every route: register, account, then each transport's."""
        router = APIRouter()
        router.include_router(
            build_register_route(self._parts.registration, self._parts.registration.schema)
        )
        router.include_router(self._account_router())
        if self.sudo is not None and self.sudo.config.route:
            router.include_router(
                build_sudo_router(self.sudo, self._session_transport(), self.current_user())
            )
        for transport in self.transports:
            router.include_router(self._routes_of(transport))
        if self._parts.emails is not None:
            router.include_router(build_recovery_router(self._parts.emails, self.current_user()))
        if self._parts.mfa is not None:
            router.include_router(self.mfa_router)
        if self._parts.oauth is not None:
            from crudauth.oauth.router import build_oauth_router

            router.include_router(build_oauth_router(self._parts.oauth, self.current_user()))
        return router

    @property
    def mfa(self) -> MfaService | None:
        """Two-factor sign-in (``None`` without ``mfa=``)."""
        return self._parts.mfa

    @property
    def mfa_router(self) -> APIRouter:
        """The ``/mfa`` routes (raises ``RuntimeError`` without ``mfa=``)."""
        if self._parts.mfa is None:
            raise RuntimeError("MFA is not configured: pass CRUDAuth(mfa=MfaConfig(...))")
        return build_mfa_router(
            self._parts.mfa,
            self.current_user(),
            fresh=self._fresh_for_set_password,
            elevated=self._in_sudo,
        )

    async def _in_sudo(self, principal: Principal) -> bool:
        return self.sudo is not None and await self.sudo.is_elevated(principal)

    @property
    def accounts(self) -> AccountService:
        """Credential changes and revocation for code of the application's own (an admin
        screen, a worker, the ``crudauth`` command), as the routes make them."""
        return self._parts.accounts

    @property
    def oauth_accounts(self) -> OAuthAccountService | None:
        """OAuth account resolution, linking and unlinking (``None`` without ``oauth=``)."""
        return self._parts.oauth.accounts if self._parts.oauth is not None else None

    @property
    def oauth_providers(self) -> list[str]:
        """The names of the configured OAuth providers, in order."""
        return list(self._parts.oauth.providers) if self._parts.oauth is not None else []

    @property
    def emails(self) -> EmailFlowService | None:
        """The recovery flows (``None`` without ``email=`` or ``channels=``)."""
        return self._parts.emails

    def _account_router(self) -> APIRouter:
        session = session_transport(self.transports)
        return build_account_router(
            self.runtime,
            self.current_user(),
            sessions=session.manager if session is not None else None,
            session_transport=session.name if session is not None else "session",
            fresh=self._fresh_for_set_password,
            accounts=self._parts.accounts,
        )

    async def _fresh_for_set_password(self, principal: Principal) -> bool:
        if self.fresh_sign_in_seconds == 0 or "session_key" not in principal.metadata:
            return False  # 0 closes /set-password; a bearer token is never a fresh sign-in
        if self.signed_in_recently(principal):
            return True
        return self.sudo is not None and await self.sudo.is_elevated(principal)

    def require_sudo(self) -> Callable[..., Any]:
        """A dependency: the caller's ``Principal``, only inside this session's sudo window.

        403 "Re-authentication required." outside it; 403 "Sudo requires a session-backed
        login." for any other transport. Needs ``CRUDAuth(sudo=SudoConfig())``.
        """
        if self.sudo is None:
            raise ConfigurationError("require_sudo() needs CRUDAuth(sudo=SudoConfig())")
        return sudo_gate(self.sudo, self.current_user())

    def _session_transport(self) -> SessionTransport:
        """The first transport that keeps server-side sessions (``keeps_sessions``)."""
        transport = session_transport(self.transports)
        if transport is None:
            raise RuntimeError("no SessionTransport is configured")
        return transport

    def _routes_of(self, transport: Transport) -> APIRouter:
        """``transport``'s sign-in route (``/login``, ``/token``), then its own routes."""
        router = APIRouter()
        sign_in = build_sign_in_router(self._parts.sign_in, transport)
        for contributed in (sign_in, transport.router()):
            if contributed is not None:
                router.include_router(contributed)
        return router

    @property
    def session_router(self) -> APIRouter:
        return self._routes_of(self._session_transport())

    def _transport_named(self, name: str) -> Transport:
        for transport in self.transports:
            if transport.name == name:
                return transport
        raise RuntimeError(f"no {name!r} transport is configured")

    @property
    def bearer_router(self) -> APIRouter:
        router = self._routes_of(self._transport_named("bearer"))
        if not router.routes:
            raise RuntimeError("the bearer transport contributes no routes")
        return router

    def issue_tokens(self, user: Any, *, scopes: Iterable[str] | None = None) -> dict[str, Any]:
        """Mint ``{access_token, token_type, refresh_token}`` for ``user`` (bearer transport)."""
        issuer: Any = self._transport_named("bearer")
        result: dict[str, Any] = issuer.issue_tokens(user, scopes=scopes)
        return result

    @property
    def sessions(self) -> SessionManager:
        """The session manager (raises ``RuntimeError`` without a session transport)."""
        return self._session_transport().manager

    # -- request-time API -------------------------------------------------------------------

    def current_user(
        self,
        *,
        optional: bool = False,
        superuser: bool = False,
        verified: bool = False,
        scopes: Iterable[str] | None = None,
        transport: str | None = None,
        check: Check | None = None,
        load_user: bool = True,
    ) -> Callable[..., Any]:
        """A dependency that yields the caller's ``Principal`` (or ``None`` if optional).

        ``load_user=False`` skips the user-row read (``Principal.user`` is ``None``); see
        docs/performance.md for what it still checks.
        """
        return self._parts.resolver.dependency(
            optional=optional,
            superuser=superuser,
            verified=verified,
            scopes=scopes,
            transport=transport,
            check=check,
            load_user=load_user,
        )

    def rate_limit(
        self,
        action: str,
        limit: RateLimit | RateLimitResolver | None = None,
        *,
        key: KeyBy | KeyFunc = KeyBy.IP,
        transport: str | None = None,
    ) -> Callable[..., Any]:
        """A dependency that throttles a route under ``action``'s limit (or ``limit``)."""
        return build_rate_limit(
            self.runtime, self._parts.resolver, action, limit, key=key, transport=transport
        )

    @property
    def rate_limits(self) -> dict[str, RateLimit]:
        """Every action's limit after ``rate_limits=`` was merged over the defaults."""
        return dict(self.runtime.throttles.limits)

    async def authenticate_password(
        self,
        db: AsyncSession,
        identifier: str,
        password: str,
        *,
        request: Request | None = None,
        record_success: bool = True,
    ) -> Any:
        """The active user for these credentials; 401 otherwise, 429 while locked out.

        Goes through the same throttle and lockout as ``/login`` (without a request, only the
        identifier is counted). ``record_success=False`` keeps the slot taken, for flows that
        still need a second step before the sign-in counts.
        """
        runtime = self.runtime
        with http_errors():
            sign_in = await check_password(
                runtime, request, db, identifier, password, transport="password"
            )
            if record_success:
                await runtime.lockout.succeeded(sign_in.attempt)
            return sign_in.user

    async def resolve_principal(
        self, request: Request, update_activity: bool = False
    ) -> Principal | None:
        """For middleware: the principal of ``request``, or ``None`` if absent or invalid.

        It opens its own database session and skips the CSRF check; nothing is cached for
        the route, whose own dependency checks everything again. ``update_activity=True``
        slides the session's idle window as a request does; by default the look does not
        count as use. A store that cannot answer raises (an ``HTTPException`` 503 with
        ``Retry-After``), never ``None``.
        """
        async with own_session(self.session) as db:
            with http_errors():
                return await self._parts.resolver.resolve_for_middleware(
                    request, db, update_activity=update_activity
                )

    async def revoke_user(self, user_id: Any) -> int:
        """End every session and cached bearer claim of ``user_id`` at once (for example after
        your own code deactivated the account). Returns how many credentials were ended."""
        return await self._parts.accounts.revoke_user(user_id)

    def signed_in_recently(self, principal: Principal) -> bool:
        """True if the principal's session began within ``fresh_sign_in_seconds``, or the
        principal carries a live sudo stamp (``await auth.sudo.is_elevated(p)`` reads the
        store; this synchronous check sees only what the transport put in the metadata)."""
        created = principal.metadata.get("created_at")
        if not isinstance(created, (int, float)) or self.fresh_sign_in_seconds == 0:
            return False
        now = self.runtime.clock.now()
        sudo_until = principal.metadata.get("sudo_elevated_until")
        if isinstance(sudo_until, (int, float)) and sudo_until > now:
            return True
        return now - created <= self.fresh_sign_in_seconds

    async def validate_password(
        self,
        password: str,
        *,
        user: Any = None,
        source: Source = "set",
        field: str = "password",
    ) -> None:
        """Apply the password policy; raise ``PasswordRejected`` listing what failed."""
        with http_errors():
            await self._parts.accounts.check_policy(password, user, source, field=field)
