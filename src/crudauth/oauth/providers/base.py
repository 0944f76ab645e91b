"""``AbstractOAuthProvider``: one OAuth 2.0 provider, spoken to over HTTP with httpx.

The protocol pieces come from Authlib (the authorization URI, the token request body, the
PKCE S256 challenge); the HTTP calls are httpx's, each bounded by ``timeout`` (10 s by
default). Every failure of the provider (timeout, refused connection, a 4xx/5xx answer, a
body that is not the expected JSON) raises ``OAuthFailure("oauth_failed")`` with the cause
for the log, never anything else: the callback turns it into the ``oauth_failed`` answer.

A custom provider sets ``name``, ``authorize_url``, ``token_url`` and ``default_scopes`` and
implements ``get_user_info(access_token)``, usually with ``fetch_profile``; see docs/oauth.md.
"""

from __future__ import annotations

import ipaddress
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from crudauth.clock import SystemClock
from crudauth.errors import ConfigurationError
from crudauth.oauth.types import (
    OAUTH_FAILED,
    OAuthCredentials,
    OAuthFailure,
    OAuthUserInfo,
    TokenSet,
)

DEFAULT_TIMEOUT = 10.0
#: A provider's JSON answers are small; a larger body is refused unread.
MAX_RESPONSE_BYTES = 256 * 1024


def is_loopback_host(host: str | None) -> bool:
    if host in (None, ""):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str, what: str) -> str:
    """``url`` if it is https (or http on a loopback host), without a fragment."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(f"{what} must be an absolute https URL: {url!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError(f"{what} must use https (http only on a loopback host)")
    if parts.fragment:
        raise ConfigurationError(f"{what} must not have a fragment")
    return url


class AbstractOAuthProvider(ABC):
    """An OAuth 2.0 authorization-code provider with PKCE (S256, always)."""

    name: ClassVar[str] = ""
    authorize_url: str = ""
    token_url: str = ""
    default_scopes: ClassVar[tuple[str, ...]] = ()
    #: The issuer this provider's answers must name (OpenID Connect; RFC 9207); ``None`` for
    #: plain OAuth 2.0 providers.
    issuer: str | None = None
    #: ``client_secret_post`` (the default) or ``client_secret_basic``.
    client_auth_method: str = "client_secret_post"
    #: Providers that refuse public clients (Google, GitHub) set this.
    requires_secret: ClassVar[bool] = False

    def __init__(
        self,
        credentials: OAuthCredentials,
        *,
        name: str | None = None,
        authorize_url: str | None = None,
        token_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(credentials, OAuthCredentials):
            raise ConfigurationError("a provider needs OAuthCredentials")
        if not credentials.client_id:
            raise ConfigurationError("OAuthCredentials.client_id is empty")
        if self.requires_secret and not credentials.client_secret:
            raise ConfigurationError(f"the {type(self).__name__} needs a client_secret")
        if timeout <= 0:
            raise ConfigurationError("timeout must be > 0")
        self.credentials = credentials
        self.provider_name = name or self.name
        if not self.provider_name:
            raise ConfigurationError(f"{type(self).__name__} has no name")
        self.authorize_url = authorize_url or self.authorize_url
        self.token_url = token_url or self.token_url
        self.timeout = timeout
        #: An httpx transport for every call (tests point it at an in-process provider).
        self.transport = transport
        #: Caches (discovery, key set) age on this clock; ``CRUDAuth`` gives it its own.
        self.clock: Any = SystemClock()

    def bind_clock(self, clock: Any) -> None:
        self.clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.provider_name!r})"

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.credentials.scopes or self.default_scopes)

    async def initialize(self) -> None:
        """Fetch what the provider publishes (OpenID Connect discovery); no-op by default."""
        for url, what in ((self.authorize_url, "authorize_url"), (self.token_url, "token_url")):
            check_endpoint(url, f"{self.provider_name} {what}")

    async def ready(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Make sure the provider's metadata is loaded and fresh (before each flow)."""

    # -- the authorization request ----------------------------------------------------------

    def authorization_params(self, nonce: str) -> dict[str, str]:
        """Extra parameters of the authorization request (OpenID Connect adds the nonce)."""
        return {}

    def authorization_url(
        self, *, redirect_uri: str, state: str, code_verifier: str, nonce: str
    ) -> str:
        uri: str = prepare_grant_uri(
            self.authorize_url,
            client_id=self.credentials.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=" ".join(self.scopes),
            state=state,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
            **self.authorization_params(nonce),
        )
        return uri

    # -- the token request ------------------------------------------------------------------

    async def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> TokenSet:
        """Trade the authorization code (and the PKCE verifier) for tokens."""
        creds = self.credentials
        fields: dict[str, str] = {"code": code, "code_verifier": code_verifier}
        auth: tuple[str, str] | None = None
        if self.client_auth_method == "client_secret_basic" and creds.client_secret:
            auth = (creds.client_id, creds.client_secret)
        else:
            fields["client_id"] = creds.client_id
            if creds.client_secret:
                fields["client_secret"] = creds.client_secret
        body: str = prepare_token_request("authorization_code", redirect_uri=redirect_uri, **fields)
        data = await self.request_json(
            "POST",
            self.token_url,
            content=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            auth=auth,
        )
        if not isinstance(data, Mapping) or "error" in data:
            raise OAuthFailure(OAUTH_FAILED, f"{self.provider_name}: token endpoint refused")
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise OAuthFailure(OAUTH_FAILED, f"{self.provider_name}: no access_token")
        id_token = data.get("id_token")
        refresh = data.get("refresh_token")
        return TokenSet(
            access,
            id_token if isinstance(id_token, str) else None,
            refresh if isinstance(refresh, str) else None,
            dict(data),
        )

    # -- who signed in ----------------------------------------------------------------------

    async def identify(self, tokens: TokenSet, *, nonce: str, now: float) -> OAuthUserInfo:
        """Who signed in, from the token response (OpenID Connect validates the ID token)."""
        return await self.get_user_info(tokens.access_token)

    @abstractmethod
    async def get_user_info(self, access_token: str) -> OAuthUserInfo:
        """The profile of the user ``access_token`` belongs to."""

    async def fetch_profile(
        self, url: str, access_token: str, *, headers: Mapping[str, str] | None = None
    ) -> Mapping[str, Any]:
        """``GET url`` with ``access_token`` (a userinfo endpoint, a profile API): its JSON
        object, or ``OAuthFailure`` for anything else."""
        data = await self.request_json("GET", url, token=access_token, headers=headers)
        if not isinstance(data, Mapping):
            where = f"{self.provider_name} {urlsplit(url).path}"
            raise OAuthFailure(OAUTH_FAILED, f"{where}: not a JSON object")
        return data

    # -- HTTP -------------------------------------------------------------------------------

    def http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.timeout, transport=self.transport, follow_redirects=False
        )

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Any:
        """One call to the provider; its JSON answer, or ``OAuthFailure`` with the cause."""
        sent = {"Accept": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        where = f"{self.provider_name} {method} {urlsplit(url).path}"
        try:
            async with self.http_client() as client:
                response = await client.request(
                    method, url, headers=sent, content=content, auth=auth
                )
                raw = response.content
        except httpx.HTTPError as exc:
            raise OAuthFailure(OAUTH_FAILED, f"{where}: {type(exc).__name__}") from None
        if response.status_code >= 400 and response.status_code != 400:
            raise OAuthFailure(OAUTH_FAILED, f"{where}: HTTP {response.status_code}")
        if len(raw) > MAX_RESPONSE_BYTES:
            raise OAuthFailure(OAUTH_FAILED, f"{where}: answer too large")
        try:
            data = json.loads(raw)
        except ValueError:
            raise OAuthFailure(OAUTH_FAILED, f"{where}: not JSON") from None
        if response.status_code == 400:  # an OAuth error answer (``invalid_grant``, ...)
            raise OAuthFailure(OAUTH_FAILED, f"{where}: HTTP 400")
        return data


def text_claim(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None
