"""The OAuth test harness works: each server behaves as the tests built on it assume.

Driven with Authlib's httpx client and joserfc directly, not through crudauth, so a failure here
points at the harness and not at the library.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oidc_support import (
    ALICE,
    BASIC_CLIENT_ID,
    BOB,
    POST_CLIENT_ID,
    OIDCProvider,
    ProviderInteractionError,
    complete_login,
)

REDIRECT_URI = "http://testserver/oauth/oidc/callback"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def oidc_client(provider: OIDCProvider, client_id: str) -> AsyncOAuth2Client:
    client = provider.client(client_id)
    return AsyncOAuth2Client(
        client.client_id,
        client.client_secret,
        token_endpoint_auth_method=client.token_endpoint_auth_method,
        scope="openid email profile",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        timeout=10,
    )


async def authorize(
    provider: OIDCProvider, client: AsyncOAuth2Client, **params: Any
) -> tuple[str, str, str, str]:
    """An authorization URL with PKCE and a nonce: (url, state, verifier, nonce)."""
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    endpoint = provider.metadata["authorization_endpoint"]
    url, state = client.create_authorization_url(
        endpoint, code_verifier=verifier, nonce=nonce, **params
    )
    return url, state, verifier, nonce


# --- oidc-provider -------------------------------------------------------------------------


@pytest.mark.parametrize("client_id", [BASIC_CLIENT_ID, POST_CLIENT_ID])
async def test_code_flow_with_pkce_yields_an_id_token_valid_against_the_provider_jwks(
    oidc_provider: OIDCProvider, client_id: str
) -> None:
    meta = oidc_provider.metadata
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    async with oidc_client(oidc_provider, client_id) as client:
        url, state, verifier, nonce = await authorize(oidc_provider, client)
        callback = await complete_login(url, ALICE.email, ALICE.password)
        assert callback.startswith(REDIRECT_URI + "?")
        params = query(callback)
        assert params["state"] == state
        assert params["iss"] == oidc_provider.issuer  # RFC 9207
        token = await client.fetch_token(
            meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
        )
        userinfo = (await client.get(meta["userinfo_endpoint"])).json()
    keys = KeySet.import_key_set(await oidc_provider.jwks())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": oidc_provider.issuer},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True, "value": ALICE.sub},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(id_token.claims)
    assert id_token.header["kid"] in {k.kid for k in keys}
    # at_hash is optional for an ID token from the token endpoint; oidc-provider omits it.
    assert id_token.claims.get("at_hash", at_hash(token["access_token"])) == at_hash(
        token["access_token"]
    )
    assert id_token.claims["email"] == ALICE.email
    assert id_token.claims["email_verified"] is True
    assert userinfo == {
        "sub": ALICE.sub,
        "email": ALICE.email,
        "email_verified": True,
        "name": ALICE.name,
    }


async def test_a_wrong_pkce_verifier_is_refused_by_the_provider(
    oidc_provider: OIDCProvider,
) -> None:
    meta = oidc_provider.metadata
    async with oidc_client(oidc_provider, BASIC_CLIENT_ID) as client:
        url, _, _, _ = await authorize(oidc_provider, client)
        callback = await complete_login(url, ALICE.email, ALICE.password)
        with pytest.raises(OAuthError) as refused:
            await client.fetch_token(
                meta["token_endpoint"],
                authorization_response=callback,
                code_verifier=secrets.token_urlsafe(48),
            )
        assert refused.value.error == "invalid_grant"
        with pytest.raises(OAuthError, match="invalid_grant"):  # and a missing one too
            await client.fetch_token(meta["token_endpoint"], authorization_response=callback)


async def test_an_authorization_request_without_pkce_is_refused(
    oidc_provider: OIDCProvider,
) -> None:
    async with oidc_client(oidc_provider, BASIC_CLIENT_ID) as client:
        endpoint = oidc_provider.metadata["authorization_endpoint"]
        url, state = client.create_authorization_url(endpoint, nonce="n")  # no code_verifier
    callback = await complete_login(url, ALICE.email, ALICE.password)
    params = query(callback)
    assert params["error"] == "invalid_request"
    assert params["state"] == state


async def test_denied_consent_gives_access_denied(oidc_provider: OIDCProvider) -> None:
    async with oidc_client(oidc_provider, BASIC_CLIENT_ID) as client:
        url, state, _, _ = await authorize(oidc_provider, client)
    callback = await complete_login(url, ALICE.email, ALICE.password, consent=False)
    params = query(callback)
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert params["iss"] == oidc_provider.issuer
    assert "code" not in params


async def test_a_wrong_password_stops_at_the_login_form(oidc_provider: OIDCProvider) -> None:
    async with oidc_client(oidc_provider, BASIC_CLIENT_ID) as client:
        url, _, _, _ = await authorize(oidc_provider, client)
    with pytest.raises(ProviderInteractionError, match="Invalid login or password"):
        await complete_login(url, ALICE.email, "not-the-password")


async def test_an_unverified_account_signs_in_with_email_verified_false(
    oidc_provider: OIDCProvider,
) -> None:
    meta = oidc_provider.metadata
    async with oidc_client(oidc_provider, POST_CLIENT_ID) as client:
        url, _, verifier, _ = await authorize(oidc_provider, client)
        callback = await complete_login(url, BOB.email, BOB.password)
        token = await client.fetch_token(
            meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
        )
    claims = jwt.decode(token["id_token"], KeySet.import_key_set(await oidc_provider.jwks())).claims
    assert (claims["sub"], claims["email"], claims["email_verified"]) == (BOB.sub, BOB.email, False)


async def test_a_signed_in_browser_skips_the_login_form_but_not_a_new_state(
    oidc_provider: OIDCProvider,
) -> None:
    async with httpx.AsyncClient() as browser, oidc_client(oidc_provider, BASIC_CLIENT_ID) as c:
        first, _, _, _ = await authorize(oidc_provider, c)
        await complete_login(first, ALICE.email, ALICE.password, browser=browser)
        second, state, _, _ = await authorize(oidc_provider, c)
        callback = await complete_login(second, "ignored", "ignored", browser=browser)
    assert query(callback)["state"] == state
    assert "code" in query(callback)
