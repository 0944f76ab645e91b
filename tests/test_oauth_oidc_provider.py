"""OAuth sign-in against a real OpenID Connect provider (npm ``oidc-provider``) on loopback:
authorize redirect, login and consent at the provider over HTTP, callback, session, ``/me``."""

from __future__ import annotations

import time
from typing import Any

import pytest

from crudauth.oauth import GoogleOAuthProvider, OAuthCredentials, identities_table
from tests.oidc_support import ALICE, BOB, POST_CLIENT_ID, OIDCProvider, complete_login

BASE = "http://testserver"


async def real_env(
    make_env: Any,
    provider: OIDCProvider,
    name: str = "corp",
    *,
    google: bool = False,
    **options: Any,
) -> Any:
    client = provider.client(POST_CLIENT_ID)
    credentials = OAuthCredentials(client.client_id, client.client_secret, issuer=provider.issuer)
    configured: Any = GoogleOAuthProvider(credentials, name=name) if google else credentials
    env = await make_env(oauth={name: configured}, redirect_base_url=BASE, **options)
    env.clock.set(time.time())  # the provider signs with the real time
    await env.auth.initialize()
    async with env.sessionmaker() as db:
        await db.execute(identities_table.delete())
        await db.commit()
    return env


async def provider_sign_in(env: Any, name: str, account: Any, **params: str) -> Any:
    start = await env.client.get(f"/oauth/{name}/authorize", params=params)
    assert start.status_code == 307, start.text
    callback = await complete_login(start.headers["location"], account.email, account.password)
    return await env.client.get(callback)


async def test_the_code_flow_against_a_real_provider_signs_in(make_env, oidc_provider):
    env = await real_env(make_env, oidc_provider)
    answer = await provider_sign_in(env, "corp", ALICE, redirect_to="/dashboard")
    assert answer.status_code == 307
    assert answer.headers["location"] == "/dashboard"
    me = await env.client.get("/me")
    assert me.status_code == 200
    assert me.json()["email"] == ALICE.email
    identities = (await env.client.get("/oauth/identities")).json()
    assert [i["provider"] for i in identities] == ["corp"]


async def test_google_is_exercised_through_the_oidc_path(make_env, oidc_provider):
    env = await real_env(make_env, oidc_provider, "google", google=True)
    answer = await provider_sign_in(env, "google", ALICE)
    assert answer.headers["location"] == f"{BASE}/"
    assert (await env.client.get("/me")).json()["email"] == ALICE.email


async def test_a_second_sign_in_reuses_the_account(make_env, oidc_provider):
    env = await real_env(make_env, oidc_provider)
    await provider_sign_in(env, "corp", ALICE)
    first = (await env.client.get("/me")).json()["user_id"]
    env.client.cookies.clear()
    await provider_sign_in(env, "corp", ALICE)
    assert (await env.client.get("/me")).json()["user_id"] == first


async def test_an_unverified_provider_email_is_refused(make_env, oidc_provider):
    env = await real_env(make_env, oidc_provider)
    answer = await provider_sign_in(env, "corp", BOB)
    assert answer.headers["location"] == f"{BASE}/?error=email_unverified"
    assert (await env.client.get("/me")).status_code == 401


async def test_email_only_in_userinfo_is_used(make_env, oidc_provider_factory):
    provider = oidc_provider_factory(conform_id_token_claims=True)
    env = await real_env(make_env, provider)
    answer = await provider_sign_in(env, "corp", ALICE)
    assert answer.headers["location"] == f"{BASE}/"
    assert (await env.client.get("/me")).json()["email"] == ALICE.email


async def test_refused_consent_ends_in_oauth_failed(make_env, oidc_provider):
    env = await real_env(make_env, oidc_provider)
    start = await env.client.get("/oauth/corp/authorize")
    callback = await complete_login(
        start.headers["location"], ALICE.email, ALICE.password, consent=False
    )
    answer = await env.client.get(callback)
    assert answer.headers["location"] == f"{BASE}/?error=oauth_failed"
    assert (await env.client.get("/me")).status_code == 401


async def test_a_replayed_callback_gets_no_second_session(make_env, oidc_provider):
    env = await real_env(make_env, oidc_provider)
    start = await env.client.get("/oauth/corp/authorize")
    callback = await complete_login(start.headers["location"], ALICE.email, ALICE.password)
    assert (await env.client.get(callback)).headers["location"] == f"{BASE}/"
    again = await env.client.get(callback)
    assert again.headers["location"] == f"{BASE}/?error=invalid_state"
    assert "session_id" not in again.cookies


@pytest.mark.parametrize("mode", ["json"])
async def test_json_mode_against_a_real_provider(make_env, oidc_provider, mode):
    env = await real_env(make_env, oidc_provider, oauth_response_mode=mode)
    start = await env.client.get("/oauth/corp/authorize")
    callback = await complete_login(start.json()["url"], ALICE.email, ALICE.password)
    answer = await env.client.get(callback)
    assert answer.status_code == 200
    assert answer.json()["user"]["email"] == ALICE.email
