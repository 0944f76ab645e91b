"""The OAuth code flow: the authorization request and the callback, a first factor that ends
in the sign-in pipeline.

The callback, in order: the state is consumed (one use, this browser, this provider); the
provider's ``error`` and RFC 9207 ``iss`` are checked; the code is exchanged with the PKCE
verifier; the identity is validated (the ID token for OpenID Connect); the account is resolved
(``OAuthAccountService``); ``on_after_register`` (a new account) and ``on_oauth_login`` fire;
then ``SignInPipeline.complete`` does what every sign-in does (account state, second factor,
end the presented session, issue, epoch re-check, ``on_after_login``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from crudauth.errors import ConfigurationError, InvalidCredentials, InvalidRequest
from crudauth.oauth.providers.base import AbstractOAuthProvider
from crudauth.oauth.service import OAuthAccountService
from crudauth.oauth.state import StartedAuthorization, StateStore
from crudauth.oauth.tokens import TokenCipher
from crudauth.oauth.types import (
    ACCOUNT_INACTIVE,
    INVALID_STATE,
    OAUTH_FAILED,
    OAuthFailure,
    OAuthUserInfo,
)
from crudauth.runtime import AuthRuntime
from crudauth.signin.pipeline import SignInPipeline
from crudauth.transports.base import Transport

logger = logging.getLogger("crudauth.oauth")

UNKNOWN_PROVIDER = "Unknown OAuth provider"


@dataclass(frozen=True)
class OAuthPaths:
    """Where the OAuth routes are mounted."""

    prefix: str = "/oauth"
    authorize_path: str = "/{provider}/authorize"
    callback_path: str = "/{provider}/callback"

    def __post_init__(self) -> None:
        for name in ("authorize_path", "callback_path"):
            if "{provider}" not in getattr(self, name):
                raise ConfigurationError(f"oauth_paths.{name} must contain '{{provider}}'")
        if self.prefix and not self.prefix.startswith("/"):
            raise ConfigurationError("oauth_paths.prefix must start with '/'")


@dataclass(frozen=True)
class OAuthSettings:
    redirect_base_url: str
    paths: OAuthPaths = field(default_factory=OAuthPaths)
    response_mode: Literal["redirect", "json"] = "redirect"
    #: Where errors (and a sign-in without ``redirect_to``) land.
    default_redirect: str = ""

    def __post_init__(self) -> None:
        parts = urlsplit(self.redirect_base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigurationError("redirect_base_url must be an http(s) URL without a query")
        if self.response_mode not in ("redirect", "json"):
            raise ConfigurationError("oauth_response_mode must be 'redirect' or 'json'")


@dataclass(frozen=True)
class SignedIn:
    body: dict[str, Any]
    redirect_to: str
    info: OAuthUserInfo
    user: Any


class OAuthFlow:
    """Starts authorization requests and finishes callbacks for the configured providers."""

    def __init__(
        self,
        runtime: AuthRuntime,
        providers: Mapping[str, AbstractOAuthProvider],
        accounts: OAuthAccountService,
        pipeline: SignInPipeline,
        transport: Transport,
        settings: OAuthSettings,
    ) -> None:
        self.runtime = runtime
        self.providers = dict(providers)
        self.accounts = accounts
        self.pipeline = pipeline
        self.transport = transport
        self.settings = settings
        self.state = StateStore(runtime)
        if any(p.credentials.store_tokens for p in self.providers.values()):
            TokenCipher(runtime.keys)  # store_tokens needs cryptography: say so at startup

    def provider(self, name: str) -> AbstractOAuthProvider:
        found = self.providers.get(name)
        if found is None:
            raise InvalidRequest(UNKNOWN_PROVIDER, code="unknown_provider")
        return found

    def redirect_uri(self, name: str) -> str:
        paths = self.settings.paths
        base = self.settings.redirect_base_url.rstrip("/")
        return f"{base}{paths.prefix}{paths.callback_path.format(provider=name)}"

    async def authorize(
        self, name: str, redirect_to: str | None, *, link_user_id: str | None = None
    ) -> tuple[str, StartedAuthorization]:
        """The provider's authorization URL, and the state this browser must keep."""
        provider = self.provider(name)
        await provider.ready()
        started = await self.state.begin(name, redirect_to=redirect_to, link_user_id=link_user_id)
        url = provider.authorization_url(
            redirect_uri=self.redirect_uri(name),
            state=started.state,
            code_verifier=started.record.code_verifier,
            nonce=started.record.nonce,
        )
        return url, started

    async def callback(
        self,
        request: Request,
        response: Response,
        db: AsyncSession,
        name: str,
        params: Mapping[str, str],
        browser_secret: str | None,
    ) -> SignedIn:
        """Finish the sign-in the provider sent back; ``OAuthFailure`` otherwise."""
        provider = self.providers.get(name)
        if provider is None:
            raise OAuthFailure(OAUTH_FAILED, "unknown provider")
        record = await self.state.consume(params.get("state"), browser_secret)
        if record.provider != name:  # a state minted for another provider: mix-up
            raise OAuthFailure(INVALID_STATE, "state of another provider")
        if "error" in params:
            raise OAuthFailure(OAUTH_FAILED, "the provider answered with an error")
        self._check_issuer(provider, params.get("iss"))
        code = params.get("code")
        if not code or len(code) > 2048:
            raise OAuthFailure(OAUTH_FAILED, "no code")
        await provider.ready()
        tokens = await provider.exchange_code(
            code, redirect_uri=self.redirect_uri(name), code_verifier=record.code_verifier
        )
        now = self.runtime.clock.now()
        info = await provider.identify(tokens, nonce=record.nonce, now=now)
        resolved = await self.accounts.resolve(db, info, link_user_id=record.link_user_id)
        if provider.credentials.store_tokens:
            await self.accounts.keep_tokens(db, info, tokens.raw)
        body = await self._sign_in(request, response, db, resolved.user, info, resolved.created)
        redirect_to = record.redirect_to or self.settings.default_redirect
        return SignedIn(body, redirect_to, info, resolved.user)

    def _check_issuer(self, provider: AbstractOAuthProvider, iss: str | None) -> None:
        """RFC 9207: the authorization response names the issuer that sent it."""
        if provider.issuer is None:
            return
        if iss is None:
            if getattr(provider, "sends_iss", False):
                raise OAuthFailure(OAUTH_FAILED, "no iss in the authorization response")
            return
        if iss != provider.issuer:
            raise OAuthFailure(OAUTH_FAILED, "iss of another issuer (mix-up)")

    async def _sign_in(
        self,
        request: Request,
        response: Response,
        db: AsyncSession,
        user: Any,
        info: OAuthUserInfo,
        created: bool,
    ) -> dict[str, Any]:
        runtime = self.runtime
        context = runtime.hook_context(request, "oauth")
        user_dict = runtime.repo.to_dict(user)
        if created:
            await runtime.hooks.fire("on_after_register", user_dict, db=db, context=context)
        await runtime.hooks.fire(
            "on_oauth_login", user_dict, info, db=db, created=created, context=context
        )
        options = {"metadata": {"login_type": "oauth", "oauth_provider": info.provider}}
        try:
            return await self.pipeline.complete(
                request, response, db, self.transport, user, options, first_factor="oauth"
            )
        except InvalidCredentials:
            raise OAuthFailure(ACCOUNT_INACTIVE) from None


def log_failure(name: str, exc: OAuthFailure) -> None:
    logger.warning("crudauth: OAuth sign-in with %s refused: %s (%s)", name, exc.code, exc.cause)
