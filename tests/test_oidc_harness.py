"""The OIDC provider of the OAuth test harness behaves as the tests built on it assume.

Driven with Authlib's httpx client and joserfc directly, not through crudauth, so a failure here
points at the harness and not at the library. The GitHub stub and the rogue provider have
test_oidc_harness_github.py and test_oidc_harness_rogue.py.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.apps.rogue_oidc import half_hash
from tests.oidc_support import (
    ALICE,
    BASIC_CLIENT_ID,
    BOB,
    OIDC_DIR,
    POST_CLIENT_ID,
    OIDCProvider,
    ProviderInteractionError,
    callback_params,
    complete_login,
)

REDIRECT_URI = "http://testserver/oauth/oidc/callback"


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
        params = callback_params(callback)
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
    expected_at_hash = half_hash(token["access_token"])
    assert id_token.claims.get("at_hash", expected_at_hash) == expected_at_hash
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
    params = callback_params(callback)
    assert params["error"] == "invalid_request"
    assert params["state"] == state


async def test_denied_consent_gives_access_denied(oidc_provider: OIDCProvider) -> None:
    async with oidc_client(oidc_provider, BASIC_CLIENT_ID) as client:
        url, state, _, _ = await authorize(oidc_provider, client)
    callback = await complete_login(url, ALICE.email, ALICE.password, consent=False)
    params = callback_params(callback)
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert params["iss"] == oidc_provider.issuer
    assert "code" not in params


async def test_a_wrong_password_stops_at_the_login_form(oidc_provider: OIDCProvider) -> None:
    async with oidc_client(oidc_provider, BASIC_CLIENT_ID) as client:
        url, _, _, _ = await authorize(oidc_provider, client)
    with pytest.raises(ProviderInteractionError, match="Invalid login or password"):
        await complete_login(url, ALICE.email, "not-the-password")


async def test_an_interaction_without_its_cookie_is_an_error_page(
    oidc_provider: OIDCProvider,
) -> None:
    with pytest.raises(ProviderInteractionError, match="provider answered 400"):
        await complete_login(f"{oidc_provider.issuer}/interaction/abc", "x", "y")
    assert '"event":"interaction.error"' in oidc_provider.logs()


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
    assert callback_params(callback)["state"] == state
    assert "code" in callback_params(callback)


def test_the_provider_exits_when_its_parent_goes() -> None:
    """Stdin closing (the parent died, even by SIGKILL) or the parent pid vanishing ends it."""
    script = str(OIDC_DIR / "provider.mjs")
    parent = subprocess.Popen(["sleep", "60"])
    by_stdin = subprocess.Popen(
        ["node", script],
        cwd=OIDC_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    by_pid = subprocess.Popen(
        ["node", script, "--no-stdin-watch", "--parent-pid", str(parent.pid)],
        cwd=OIDC_DIR,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        for child in (by_stdin, by_pid):
            assert child.stdout is not None
            ready = json.loads(child.stdout.readline())
            assert ready["issuer"] == f"http://127.0.0.1:{ready['port']}"
        assert by_stdin.stdin is not None
        by_stdin.stdin.close()
        parent.kill()
        parent.wait()
        assert by_stdin.wait(timeout=15) == 0
        assert by_pid.wait(timeout=15) == 0
    finally:
        for process in (parent, by_stdin, by_pid):
            if process.poll() is None:
                process.kill()
                process.wait()
            for pipe in (process.stdout,):
                if pipe is not None:
                    pipe.close()
