"""Builds the OAuth feature from ``CRUDAuth``'s options; every mistake raises at construction."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from crudauth.errors import ConfigurationError
from crudauth.http.redirects import safe_redirect_path
from crudauth.oauth.confirmation import LinkMailer
from crudauth.oauth.identities import identities_table
from crudauth.oauth.newuser import Provision
from crudauth.oauth.service import ClaimSecurer, OAuthAccountService
from crudauth.oauth.types import OAuthCredentials, OAuthFailure
from crudauth.runtime import AuthRuntime
from crudauth.signin.pipeline import SignInPipeline
from crudauth.transports.base import Transport, own_session

logger = logging.getLogger("crudauth.oauth")


def build_oauth(
    runtime: AuthRuntime,
    *,
    oauth: Mapping[str, Any],
    oauth_paths: Any,
    response_mode: str,
    default_redirect: str | None,
    redirect_base_url: str | None,
    pipeline: SignInPipeline,
    transports: Sequence[Transport],
    session_transport: Transport | None,
    provision: Provision | None,
    mailer: LinkMailer | None,
    claims: ClaimSecurer | None = None,
) -> Any:
    """The ``OAuthFlow`` for ``oauth={name: OAuthCredentials | provider}``."""
    try:
        import crudauth.oauth.providers  # noqa: F401 - registers "google" and "github"
        from crudauth.oauth.flow import OAuthFlow, OAuthPaths, OAuthSettings
        from crudauth.oauth.providers.base import AbstractOAuthProvider as Provider
        from crudauth.oauth.registry import OAuthProviderFactory
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            f"oauth= needs the oauth extra: pip install 'crudauth[oauth]' ({exc})"
        ) from None
    if "email" not in runtime.identity.login:
        raise ConfigurationError("oauth needs 'email' among the login fields")
    if session_transport is None:
        raise ConfigurationError("oauth needs a SessionTransport: a sign-in lands in a session")
    if not redirect_base_url:
        raise ConfigurationError("oauth needs redirect_base_url (this site's public address)")
    if not isinstance(oauth, Mapping) or not oauth:
        raise ConfigurationError("oauth must map provider names to OAuthCredentials")
    providers: dict[str, Any] = {}
    for name, value in oauth.items():
        if isinstance(value, Provider):
            providers[name] = value
        elif isinstance(value, OAuthCredentials):
            providers[name] = OAuthProviderFactory.create(name, value)
        else:
            raise ConfigurationError(f"oauth[{name!r}] must be OAuthCredentials or a provider")
        providers[name].bind_clock(runtime.clock)
    paths = oauth_paths if oauth_paths is not None else OAuthPaths()
    if isinstance(paths, Mapping):
        paths = OAuthPaths(**paths)
    base = redirect_base_url.rstrip("/")
    settings = OAuthSettings(
        redirect_base_url=base,
        paths=paths,
        response_mode=response_mode,  # type: ignore[arg-type] # checked by OAuthSettings
        default_redirect=_landing(default_redirect, base),
    )
    store = runtime.database_store
    if store is not None and identities_table.name not in store.metadata.tables:
        # With the SQL store, its create_tables() and its metadata (for migrations) hold the
        # identities table too.
        identities_table.to_metadata(store.metadata)
    accounts = OAuthAccountService(runtime, provision=provision, mailer=mailer, claims=claims)
    return OAuthFlow(runtime, providers, accounts, pipeline, session_transport, settings)


def _landing(value: str | None, base: str) -> str:
    """``oauth_default_redirect``: a same-origin path or an http(s) URL; else the site."""
    if value is None:
        return base + "/"
    if value.startswith("/"):
        path = safe_redirect_path(value)
        if path is None:
            raise ConfigurationError("oauth_default_redirect must be a plain path on this site")
        return path
    from crudauth.oauth.providers.base import check_endpoint

    return check_endpoint(value, "oauth_default_redirect")


async def initialize_oauth(flow: Any, session_dependency: Any) -> None:
    """Create the identities table if missing, then discover every OIDC provider (a provider
    that cannot be reached is logged and discovered again at its first sign-in)."""
    async with own_session(session_dependency) as db:
        await flow.accounts.identities.create_table(db)
    for name, provider in flow.providers.items():
        try:
            await provider.initialize()
        except OAuthFailure as exc:
            logger.error("crudauth: OAuth provider %s is not ready: %s", name, exc.cause)
