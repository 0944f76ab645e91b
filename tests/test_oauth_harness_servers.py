"""OAuth sign-in against the loopback GitHub stub and the rogue OpenID Connect provider (real
HTTP servers): every lie of the rogue provider is refused with no session."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from crudauth.oauth import (
    GenericOIDCProvider,
    GitHubOAuthProvider,
    OAuthCredentials,
    identities_table,
)
from tests.apps.github_stub import GitHubStub
from tests.apps.rogue_oidc import TAMPER_MODES, RogueOIDC
from tests.oauth_support import BASE, oauth_env

FAILED = f"{BASE}/?error=oauth_failed"


async def through(env: Any, name: str, **params: str) -> httpx.Response:
    """Authorize, let the (auto-approving) server answer, deliver its callback."""
    start = await env.client.get(f"/oauth/{name}/authorize", params=params)
    if start.headers["location"].startswith(BASE):
        return start  # refused before the provider (discovery failed)
    async with httpx.AsyncClient(timeout=10) as browser:
        back = await browser.get(start.headers["location"])
    assert back.status_code == 302, back.text
    return await env.client.get(back.headers["location"])


async def refused(env: Any, answer: httpx.Response, location: str) -> None:
    assert answer.status_code == 307, answer.text
    assert answer.headers["location"] == location
    assert "session_id" not in answer.cookies
    assert (await env.client.get("/me")).status_code == 401


# -- the GitHub stub -------------------------------------------------------------------------


async def github_env(make_env: Any, stub: GitHubStub) -> Any:
    provider = GitHubOAuthProvider(
        OAuthCredentials(stub.client_id, stub.client_secret),
        authorize_url=stub.authorize_url,
        token_url=stub.token_url,
        api_base_url=stub.api_url,
    )
    return await oauth_env(make_env, {"github": provider})


async def test_github_stub_signs_in_with_the_primary_verified_address(make_env, github_stub):
    env = await github_env(make_env, github_stub)
    answer = await through(env, "github", redirect_to="/home")
    assert answer.headers["location"] == "/home", answer.text
    me = (await env.client.get("/me")).json()
    assert me["username"] == "octocat"
    [sent] = github_stub.authorize_requests
    assert sent["code_challenge_method"] == "S256"


@pytest.mark.parametrize(
    "switch, code",
    [
        ({"signed_in_as": "mona"}, "email_unverified"),
        ({"no_verified_email": True}, "email_unverified"),
        ({"deny": True}, "oauth_failed"),
        ({"server_error": {"access_token"}}, "oauth_failed"),
        ({"server_error": {"user"}}, "oauth_failed"),
        ({"server_error": {"emails"}}, "oauth_failed"),
        ({"malformed_json": {"access_token"}}, "oauth_failed"),
        ({"malformed_json": {"emails"}}, "oauth_failed"),
    ],
    ids=str,
)
async def test_github_stub_failures_are_refused(make_env, github_stub, switch, code):
    for name, value in switch.items():
        setattr(github_stub, name, value)
    env = await github_env(make_env, github_stub)
    await refused(env, await through(env, "github"), f"{BASE}/?error={code}")


# -- the rogue provider ----------------------------------------------------------------------


async def rogue_env(make_env: Any, rogue: RogueOIDC, *, timeout: float = 10.0) -> Any:
    provider = GenericOIDCProvider(
        OAuthCredentials(rogue.client_id, rogue.client_secret, issuer=rogue.base_url),
        name="rogue",
        timeout=timeout,
    )
    env = await make_env(oauth={"rogue": provider}, redirect_base_url=BASE)
    env.clock.set(time.time())  # the rogue signs in real time
    await env.auth.initialize()
    async with env.sessionmaker() as db:  # PostgreSQL keeps the table between tests
        await db.execute(identities_table.delete())
        await db.commit()
    return env


async def test_the_honest_rogue_provider_signs_in(make_env, rogue_oidc):
    env = await rogue_env(make_env, rogue_oidc)
    answer = await through(env, "rogue")
    assert answer.headers["location"] == f"{BASE}/"
    assert (await env.client.get("/me")).json()["email"] == rogue_oidc.account.email


@pytest.mark.parametrize("mode", [m for m in TAMPER_MODES if m != "honest"])
async def test_every_lie_of_the_rogue_provider_is_refused(make_env, rogue_oidc, mode):
    rogue_oidc.mode = mode
    rogue_oidc.slow_seconds = 3.0
    env = await rogue_env(make_env, rogue_oidc, timeout=1.0 if mode == "token_slow" else 10.0)
    code = "email_unverified" if mode == "email_unverified" else "oauth_failed"
    await refused(env, await through(env, "rogue"), f"{BASE}/?error={code}")


@pytest.mark.parametrize("iss", ["wrong", "omit"])
async def test_a_wrong_or_missing_iss_in_the_authorization_response_is_refused(
    make_env, rogue_oidc, iss
):
    rogue_oidc.authorize_iss = "wrong"
    env = await rogue_env(make_env, rogue_oidc)
    if iss == "omit":
        # Discovery promised iss (RFC 9207); the answer then comes without it.
        rogue_oidc.authorize_iss = "omit"
    await refused(env, await through(env, "rogue"), FAILED)


async def test_a_rotated_signing_key_is_fetched_once(make_env, rogue_oidc):
    env = await rogue_env(make_env, rogue_oidc)
    assert (await through(env, "rogue")).headers["location"] == f"{BASE}/"
    env.client.cookies.clear()
    rogue_oidc.rotate_key()
    assert (await through(env, "rogue")).headers["location"] == f"{BASE}/"
