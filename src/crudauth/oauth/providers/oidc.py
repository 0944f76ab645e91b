"""``GenericOIDCProvider``: any OpenID Connect provider, validated as a relying party must.

The ID token is checked as OpenID Connect Core §3.1.3.7 says, with joserfc (signature) and
Authlib's ``CodeIDToken`` rules (claims):

- the signature against the provider's JWKS, with an algorithm from an allow-list of
  asymmetric algorithms (never ``none``, never an HMAC algorithm keyed with a public key);
  the key set is cached, and an unknown ``kid`` refetches it at most once a minute;
- ``iss`` exactly the discovered issuer, ``aud`` containing the client id, ``azp`` when there
  are several audiences, ``exp`` and ``iat`` with a small leeway, ``nonce`` equal to the one
  bound to this browser's state, ``at_hash`` when present.

The identity is the validated token's ``sub``; userinfo only adds profile fields, and its
``sub`` must be the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import httpx
from authlib.oidc.core import CodeIDToken
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from crudauth.errors import ConfigurationError
from crudauth.oauth.providers.base import (
    DEFAULT_TIMEOUT,
    AbstractOAuthProvider,
    check_endpoint,
    text_claim,
)
from crudauth.oauth.types import (
    OAUTH_FAILED,
    OAuthCredentials,
    OAuthFailure,
    OAuthUserInfo,
    TokenSet,
)

#: Asymmetric signature algorithms accepted on an ID token.
ID_TOKEN_ALGORITHMS: Final = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
#: Clock skew allowed on ``exp`` and ``iat``.
LEEWAY_SECONDS: Final = 60
#: How long a fetched key set is used before it is fetched again.
JWKS_TTL_SECONDS: Final = 3600.0
#: An unknown ``kid`` refetches the key set at most once in this many seconds (a flood of
#: forged tokens cannot make crudauth hammer the provider).
JWKS_REFETCH_INTERVAL: Final = 60.0
#: Discovery is fetched again after this long.
DISCOVERY_TTL_SECONDS: Final = 24 * 3600.0


def normalize_issuer(issuer: str) -> str:
    """The issuer without its trailing slash; https only (http on loopback), no query or
    fragment."""
    check_endpoint(issuer, "issuer")
    parts = urlsplit(issuer)
    if parts.query or parts.fragment:
        raise ConfigurationError("issuer must have no query or fragment")
    return issuer.rstrip("/")


class GenericOIDCProvider(AbstractOAuthProvider):
    """An OpenID Connect provider found by discovery from its ``issuer``."""

    name: ClassVar[str] = "oidc"
    default_scopes: ClassVar[tuple[str, ...]] = ("openid", "profile", "email")
    default_issuer: ClassVar[str | None] = None

    def __init__(
        self,
        credentials: OAuthCredentials,
        *,
        name: str | None = None,
        issuer: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(credentials, name=name, timeout=timeout, transport=transport)
        configured = issuer or credentials.issuer or self.default_issuer
        if not configured:
            raise ConfigurationError(
                f"OpenID Connect provider {self.provider_name!r} needs an issuer"
            )
        self.issuer = normalize_issuer(configured)
        self.userinfo_url: str | None = None
        self.jwks_uri = ""
        self.algorithms: tuple[str, ...] = ID_TOKEN_ALGORITHMS
        #: RFC 9207: the provider promises ``iss`` in every authorization response.
        self.sends_iss = False
        self._discovered_at: float | None = None
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        #: When an unknown ``kid`` last made us fetch the key set.
        self._forced_at = float("-inf")

    def _now(self) -> float:
        now: float = self.clock.now()
        return now

    # -- discovery --------------------------------------------------------------------------

    async def initialize(self) -> None:
        await self.discover()

    async def ready(self) -> None:
        if self._discovered_at is None or self._now() - self._discovered_at > DISCOVERY_TTL_SECONDS:
            await self.discover()

    async def discover(self) -> None:
        """Fetch ``/.well-known/openid-configuration``; it must name our issuer."""
        assert self.issuer is not None
        base = self.issuer.rstrip("/")
        doc = await self.request_json("GET", f"{base}/.well-known/openid-configuration")
        named = doc.get("issuer") if isinstance(doc, Mapping) else None
        # The configured issuer may leave out a trailing slash (Auth0 writes one); from here on
        # every check compares with the issuer exactly as discovery states it.
        if not isinstance(named, str) or named.rstrip("/") != base:
            raise OAuthFailure(
                OAUTH_FAILED, f"{self.provider_name}: discovery names another issuer"
            )
        self.issuer = named
        try:
            self.authorize_url = check_endpoint(str(doc["authorization_endpoint"]), "authorize")
            self.token_url = check_endpoint(str(doc["token_endpoint"]), "token endpoint")
            self.jwks_uri = check_endpoint(str(doc["jwks_uri"]), "jwks_uri")
            userinfo = doc.get("userinfo_endpoint")
            self.userinfo_url = check_endpoint(str(userinfo), "userinfo") if userinfo else None
        except (KeyError, ConfigurationError) as exc:
            raise OAuthFailure(OAUTH_FAILED, f"{self.provider_name}: discovery: {exc}") from None
        offered = doc.get("id_token_signing_alg_values_supported")
        if isinstance(offered, list):
            self.algorithms = tuple(a for a in ID_TOKEN_ALGORITHMS if a in offered)
        methods = doc.get("token_endpoint_auth_methods_supported")
        if (
            isinstance(methods, list)
            and "client_secret_post" not in methods
            and "client_secret_basic" in methods
        ):
            self.client_auth_method = "client_secret_basic"
        self.sends_iss = doc.get("authorization_response_iss_parameter_supported") is True
        self._discovered_at = self._now()

    def authorization_params(self, nonce: str) -> dict[str, str]:
        return {"nonce": nonce}

    # -- the key set ------------------------------------------------------------------------

    async def _fetch_keys(self) -> KeySet:
        data = await self.request_json("GET", self.jwks_uri)
        try:
            keys: KeySet = KeySet.import_key_set(data)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OAuthFailure(OAUTH_FAILED, f"{self.provider_name}: JWKS: {exc}") from None
        self._keys, self._keys_at = keys, self._now()
        return keys

    async def key_set(self, kid: str | None) -> KeySet:
        """The provider's keys, holding ``kid`` if the provider has it."""
        keys, now = self._keys, self._now()
        if keys is None or now - self._keys_at > JWKS_TTL_SECONDS:
            return await self._fetch_keys()
        known = {k.kid for k in keys.keys}
        if kid is not None and kid not in known and now - self._forced_at >= JWKS_REFETCH_INTERVAL:
            self._forced_at = now  # the provider may have rotated its keys: look once
            return await self._fetch_keys()
        return keys

    # -- the ID token -----------------------------------------------------------------------

    async def validate_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None, now: float
    ) -> dict[str, Any]:
        """The claims of a valid ID token; ``OAuthFailure`` for anything else."""
        try:
            header = jws.extract_compact(id_token.encode("ascii")).protected
        except (JoseError, ValueError, UnicodeError) as exc:
            raise OAuthFailure(OAUTH_FAILED, f"id token unreadable: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            raise OAuthFailure(OAUTH_FAILED, f"id token alg {alg!r} is not allowed")
        keys = await self.key_set(kid if isinstance(kid, str) else None)
        try:
            token = jwt.decode(id_token, keys, algorithms=[str(alg)])
            claims = CodeIDToken(
                token.claims,
                token.header,
                options={
                    "iss": {"essential": True, "value": str(self.issuer)},
                    "aud": {"essential": True, "value": self.credentials.client_id},
                    "sub": {"essential": True},
                    "nonce": {"essential": True},
                },
                params={
                    "nonce": nonce,
                    "client_id": self.credentials.client_id,
                    "access_token": access_token,
                },
            )
            claims.validate(now=int(now), leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OAuthFailure(OAUTH_FAILED, f"id token refused: {exc!r}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise OAuthFailure(OAUTH_FAILED, "id token has no sub")
        iat = claims.get("iat")
        if not isinstance(iat, (int, float)) or iat > now + LEEWAY_SECONDS:
            raise OAuthFailure(OAUTH_FAILED, "id token issued in the future")
        return dict(claims)

    async def identify(self, tokens: TokenSet, *, nonce: str, now: float) -> OAuthUserInfo:
        if tokens.id_token is None:
            raise OAuthFailure(OAUTH_FAILED, f"{self.provider_name}: no id_token")
        claims = await self.validate_id_token(
            tokens.id_token, nonce=nonce, access_token=tokens.access_token, now=now
        )
        profile: dict[str, Any] = {}
        if self.userinfo_url is not None:
            fetched = await self.fetch_profile(self.userinfo_url, tokens.access_token)
            if fetched.get("sub") != claims["sub"]:
                raise OAuthFailure(OAUTH_FAILED, "userinfo sub differs from the id token's")
            profile = dict(fetched)
        return self.user_info(claims, {**profile, **claims})

    def user_info(self, claims: Mapping[str, Any], merged: Mapping[str, Any]) -> OAuthUserInfo:
        """The profile from the validated claims (identity) and userinfo (profile fields)."""
        return OAuthUserInfo(
            provider=self.provider_name,
            provider_id=str(claims["sub"]),
            email=text_claim(merged, "email"),
            email_verified=merged.get("email_verified") is True,
            username=text_claim(merged, "preferred_username"),
            name=text_claim(merged, "name"),
            given_name=text_claim(merged, "given_name"),
            picture=text_claim(merged, "picture"),
            raw=dict(merged),
        )

    async def get_user_info(self, access_token: str) -> OAuthUserInfo:
        """Userinfo alone (no ID token): what a plain OAuth call would see."""
        if self.userinfo_url is None:
            raise OAuthFailure(OAUTH_FAILED, f"{self.provider_name}: no userinfo endpoint")
        data = await self.fetch_profile(self.userinfo_url, access_token)
        if not text_claim(data, "sub"):
            raise OAuthFailure(OAUTH_FAILED, "userinfo without sub")
        return self.user_info(data, data)
