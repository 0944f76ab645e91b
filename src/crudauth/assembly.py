"""Building ``CRUDAuth``'s parts from its arguments, one feature at a time.

``CRUDAuth.__init__`` keeps the public signature and its defaults; it hands the arguments to
:func:`assemble`, which checks them and builds, in order: the shared backends, the runtime every
part reads, the transports, the services (accounts, recovery mail, registration, two factors),
the sign-in pipeline, sudo and OAuth. Each step is a function of its own, so the order and what
each part is given can be read here without the public methods around them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.audit.log import AuditSink, build_audit_log
from crudauth.authentication import PasswordAuthenticator
from crudauth.backends import (
    SharedBackends,
    StateBackends,
    bind_transports,
    choose_lockout_config,
    limiter_backend,
    production_from_env,
    shared_backends,
    token_store,
)
from crudauth.clock import Clock, SystemClock
from crudauth.config import CookieConfig
from crudauth.credentials import AccountService
from crudauth.email.config import EmailConfig
from crudauth.email.delivery import DeliveryChannel
from crudauth.email.service import EmailFlowService
from crudauth.errors import ConfigurationError
from crudauth.hooks import AuthHooks
from crudauth.http.origins import OriginPolicy
from crudauth.http.request import ProxyConfig
from crudauth.identity.config import IdentityConfig
from crudauth.identity.repository import UserRepository
from crudauth.keys import KeyRing
from crudauth.mfa.config import MfaConfig
from crudauth.mfa.service import MfaService
from crudauth.oauth.setup import build_oauth
from crudauth.passwords import LegacyVerifier, PasswordHasher
from crudauth.policy import PasswordPolicy
from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.lockout import DeviceTokens, LoginLockout
from crudauth.ratelimit.policy import LockoutConfig, RateLimit, merge_rate_limits
from crudauth.ratelimit.throttle import Throttles
from crudauth.register.service import NewUserFields, RegistrationService
from crudauth.runtime import AuthRuntime
from crudauth.signin.pipeline import SignInPipeline
from crudauth.storage.database import DatabaseStore
from crudauth.sudo import SudoConfig, SudoManager
from crudauth.transports.base import Transport
from crudauth.transports.resolution import PrincipalResolver
from crudauth.transports.session.transport import SessionTransport

logger = logging.getLogger("crudauth")


@dataclass(frozen=True, kw_only=True)
class Arguments:
    """``CRUDAuth``'s keyword arguments as the caller passed them (the defaults live in
    ``CRUDAuth.__init__``'s signature; see its documentation for each)."""

    session: Callable[..., Any]
    user_model: type[Any]
    SECRET_KEY: str
    secret_fallbacks: Sequence[str]
    transports: Sequence[Transport | type[Transport]] | None
    column_map: Mapping[str, str] | None
    identity: IdentityConfig | None
    hooks: AuthHooks | None
    cookies: CookieConfig | None
    register_schema: type[BaseModel] | None
    register_extra_fields: Iterable[str] | None
    new_user_defaults: Mapping[str, Any] | None
    new_user_fields: NewUserFields | None
    trusted_proxy_hops: int
    trusted_proxies: Sequence[str] | None
    proxy_header: Literal["x-forwarded-for", "forwarded"]
    trusted_origins: Sequence[str] | None
    rate_limiter: RateLimiterBackend | None
    redis_url: str | None
    redis_client: Any
    database_store: DatabaseStore | None
    rate_limit_prefix: str | None
    rate_limits: Mapping[str, RateLimit | None] | None
    lockout: LockoutConfig | None
    warn_on_memory_backend: bool
    password_policy: PasswordPolicy | None
    fresh_sign_in_seconds: int
    algorithm: str
    production: bool | None
    clock: Clock | None
    password_hasher: PasswordHasher | None
    legacy_verifiers: LegacyVerifier | Sequence[LegacyVerifier] | None
    email: EmailConfig | None
    channels: Sequence[DeliveryChannel] | None
    sudo: SudoConfig | None
    mfa: MfaConfig | None
    audit: AuditSink | Sequence[AuditSink] | None
    oauth: Mapping[str, Any] | None
    oauth_paths: Any
    oauth_response_mode: Literal["redirect", "json"]
    oauth_default_redirect: str | None
    redirect_base_url: str | None


@dataclass(frozen=True)
class Parts:
    """What ``CRUDAuth`` holds: the runtime, the bound transports and the services."""

    production: bool
    runtime: AuthRuntime
    transports: list[Transport]
    state: StateBackends
    resolver: PrincipalResolver
    accounts: AccountService
    emails: EmailFlowService | None
    registration: RegistrationService
    mfa: MfaService | None
    sign_in: SignInPipeline
    sudo: SudoManager | None
    oauth: Any


def assemble(args: Arguments) -> Parts:
    """Check ``args`` and build every part, in dependency order."""
    production = production_from_env() if args.production is None else args.production
    _check_arguments(args)
    clock = args.clock or SystemClock()
    shared = shared_backends(
        redis_url=args.redis_url,
        redis_client=args.redis_client,
        database_store=args.database_store,
        clock=clock,
    )
    requested = list(args.transports) if args.transports is not None else [SessionTransport]
    limiter = limiter_backend(shared, args.rate_limiter, args.rate_limit_prefix, clock)
    runtime = _runtime(args, production, clock, shared, requested, limiter)
    transports = bind_transports(runtime, requested)
    state = StateBackends(shared, transports, limiter, runtime.tokens)
    accounts = AccountService(runtime, transports)
    emails = _emails(args, runtime, transports, accounts)
    registration = RegistrationService(
        runtime,
        extra_fields=args.register_extra_fields or (),
        new_user_defaults=args.new_user_defaults,
        new_user_fields=args.new_user_fields,
        delivery=emails,
        schema=args.register_schema,
    )
    mfa = _mfa(args.mfa, runtime, transports, emails)
    sign_in = mfa.pipeline if mfa is not None else SignInPipeline(runtime)
    state.check_memory(production=production, warn=args.warn_on_memory_backend)
    sudo = _sudo(args.sudo, runtime, transports, limiter, mfa)
    oauth = _oauth(args, runtime, transports, sign_in, registration, emails, accounts)
    return Parts(
        production=production,
        runtime=runtime,
        transports=transports,
        state=state,
        resolver=PrincipalResolver(runtime, transports),
        accounts=accounts,
        emails=emails,
        registration=registration,
        mfa=mfa,
        sign_in=sign_in,
        sudo=sudo,
        oauth=oauth,
    )


def _check_arguments(args: Arguments) -> None:
    if not callable(args.session):
        raise ConfigurationError("session must be a dependency that yields an AsyncSession")
    if args.fresh_sign_in_seconds < 0:
        raise ConfigurationError("fresh_sign_in_seconds must be >= 0")
    if args.algorithm != "HS256":
        raise ConfigurationError("only algorithm='HS256' is available in this version")
    if args.oauth is None:
        stray = {
            "oauth_paths": args.oauth_paths is not None,
            "oauth_response_mode": args.oauth_response_mode != "redirect",
            "oauth_default_redirect": args.oauth_default_redirect is not None,
            "redirect_base_url": args.redirect_base_url is not None,
        }
        if any(stray.values()):
            used_alone = sorted(k for k, v in stray.items() if v)
            raise ConfigurationError(f"{used_alone} only apply with oauth=")


def _hasher(args: Arguments) -> PasswordHasher:
    hasher = args.password_hasher or PasswordHasher()
    if args.legacy_verifiers is not None:
        try:
            hasher.use_legacy_verifiers(args.legacy_verifiers)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"legacy_verifiers: {exc}") from exc
    return hasher


def _runtime(
    args: Arguments,
    production: bool,
    clock: Clock,
    shared: SharedBackends,
    requested: Sequence[Transport | type[Transport]],
    limiter: RateLimiterBackend,
) -> AuthRuntime:
    """The state every part reads: configuration, keys, clock, hashing, counters, stores."""
    cookies = args.cookies or CookieConfig()
    if production and not cookies.secure:
        raise ConfigurationError("production refuses CookieConfig(secure=False)")
    identity = args.identity or IdentityConfig()
    repo = UserRepository(args.user_model, identity, args.column_map)
    hasher = _hasher(args)
    keys = KeyRing(args.SECRET_KEY, args.secret_fallbacks, production=production)
    lockout = choose_lockout_config(args.lockout, requested)
    return AuthRuntime(
        session_dependency=args.session,
        repo=repo,
        identity=identity,
        keys=keys,
        clock=clock,
        hasher=hasher,
        authenticator=PasswordAuthenticator(repo, hasher),
        password_policy=args.password_policy or PasswordPolicy(),
        hooks=args.hooks or AuthHooks(),
        cookies=cookies,
        tokens=token_store(shared, requested, clock),
        lockout=LoginLockout(limiter, lockout, keys, clock),
        throttles=Throttles(limiter, merge_rate_limits(args.rate_limits), clock),
        devices=DeviceTokens(keys, clock, lockout.device_cookie_days * 86400),
        proxies=ProxyConfig.build(args.trusted_proxy_hops, args.trusted_proxies, args.proxy_header),
        origins=OriginPolicy.build(args.trusted_origins),
        redis_client=shared.redis_client,
        database_store=shared.database_store,
        audit=build_audit_log(args.audit, clock),
    )


def _emails(
    args: Arguments,
    runtime: AuthRuntime,
    transports: list[Transport],
    accounts: AccountService,
) -> EmailFlowService | None:
    if args.email is None and not args.channels:
        return None
    return EmailFlowService(
        runtime,
        config=args.email,
        channels=args.channels or (),
        transports=transports,
        accounts=accounts,
    )


def _mfa(
    config: MfaConfig | None,
    runtime: AuthRuntime,
    transports: list[Transport],
    emails: EmailFlowService | None,
) -> MfaService | None:
    if config is None:
        return None

    async def notify(db: AsyncSession, user: Any, kind: str) -> None:
        if emails is not None:
            await emails.notify_security_event(db, user, kind)

    return MfaService(runtime, config, list(transports), notify=notify)


def _sudo(
    config: SudoConfig | None,
    runtime: AuthRuntime,
    transports: list[Transport],
    limiter: RateLimiterBackend,
    mfa: MfaService | None,
) -> SudoManager | None:
    if config is None:
        return None
    if not isinstance(config, SudoConfig):
        raise ConfigurationError("sudo must be a crudauth.SudoConfig")
    session = session_transport(transports)
    if session is None:
        raise ConfigurationError("sudo needs a SessionTransport: a grant lives in a session")
    return SudoManager(
        runtime,
        session.manager,
        config,
        limiter,
        transport=session.name,
        code_verifier=mfa.check_code if mfa is not None else None,
    )


def _oauth(
    args: Arguments,
    runtime: AuthRuntime,
    transports: list[Transport],
    sign_in: SignInPipeline,
    registration: RegistrationService,
    emails: EmailFlowService | None,
    accounts: AccountService,
) -> Any:
    if args.oauth is None:
        return None
    oauth = build_oauth(
        runtime,
        oauth=args.oauth,
        oauth_paths=args.oauth_paths,
        response_mode=args.oauth_response_mode,
        default_redirect=args.oauth_default_redirect,
        redirect_base_url=args.redirect_base_url,
        pipeline=sign_in,
        transports=transports,
        session_transport=session_transport(transports),
        provision=registration.oauth_fields,
        mailer=emails,
        claims=accounts,
    )
    if args.mfa is not None and args.mfa.required is not False and not args.mfa.oauth:
        logger.warning(
            "crudauth: MFA is required but OAuth sign-ins are not challenged: an "
            "account signs in with a provider alone; set MfaConfig(oauth=True) to "
            "ask them for the second factor too"
        )
    return oauth


def session_transport(transports: Iterable[Transport]) -> SessionTransport | None:
    """The first transport that keeps server-side sessions (``keeps_sessions``), if any."""
    for transport in transports:
        if transport.keeps_sessions:
            return cast("SessionTransport", transport)
    return None
