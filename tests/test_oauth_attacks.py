"""The OAuth attack table: each row is refused with no session, and never a 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.oauth_support import (
    BASE,
    CLIENT_ID,
    OIDCProvider,
    oauth_env,
    provider_redirect,
    query_of,
    sign_in,
)

FAILED = f"{BASE}/?error=oauth_failed"
BAD_STATE = f"{BASE}/?error=invalid_state"


async def corp_env(make_env: Any, idp: OIDCProvider | None = None, **options: Any) -> Any:
    idp = idp or OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(make_env, {"corp": provider}, **options)
    env.idp, env.provider = idp, provider
    return env


async def callback_url(env: Any, name: str = "corp", **params: str) -> str:
    start = await env.client.get(f"/oauth/{name}/authorize", params=params)
    return await provider_redirect(env.provider, start.headers["location"])


async def assert_refused(env: Any, answer: httpx.Response, location: str) -> None:
    assert answer.status_code == 307, answer.text
    assert answer.headers["location"] == location
    assert "session_id" not in answer.cookies
    assert (await env.client.get("/me")).status_code == 401


# -- state -----------------------------------------------------------------------------------


async def test_a_wrong_state_is_refused(make_env):
    env = await corp_env(make_env)
    url = await callback_url(env)
    forged = url.replace(query_of(url)["state"], "A" * 43)
    await assert_refused(env, await env.client.get(forged), BAD_STATE)


async def test_a_state_from_another_browser_is_refused(make_env):
    env = await corp_env(make_env)
    url = await callback_url(env)
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app), base_url=BASE)
    async with other:
        answer = await other.get(url)  # the victim's code and state, the attacker's browser
        assert answer.status_code == 307
        assert answer.headers["location"] == BAD_STATE
        assert "session_id" not in answer.cookies


async def test_a_replayed_state_is_refused(make_env):
    env = await corp_env(make_env)
    url = await callback_url(env)
    assert (await env.client.get(url)).headers["location"] == f"{BASE}/"
    await env.client.post("/logout", headers={"X-CSRF-Token": env.client.cookies["csrf_token"]})
    await assert_refused(env, await env.client.get(url), BAD_STATE)


async def test_a_state_of_provider_a_on_provider_b_callback_is_refused(make_env):
    a, b = OIDCProvider(), OIDCProvider(issuer="http://127.0.0.1:9/other")
    pa, pb = a.provider("a"), b.provider("b")
    env = await oauth_env(make_env, {"a": pa, "b": pb})
    start = await env.client.get("/oauth/a/authorize")
    url = await provider_redirect(pa, start.headers["location"])
    answer = await env.client.get(url.replace("/oauth/a/callback", "/oauth/b/callback"))
    assert answer.headers["location"] == BAD_STATE
    assert b.token_calls == 0 and a.token_calls == 0


async def test_an_expired_state_is_refused(make_env):
    env = await corp_env(make_env)
    url = await callback_url(env)
    env.clock.advance(601)
    env.idp.clock = None
    await assert_refused(env, await env.client.get(url), BAD_STATE)


async def test_json_mode_answers_a_bad_state_with_the_reference_text(make_env):
    env = await corp_env(make_env, oauth_response_mode="json")
    answer = await env.client.get("/oauth/corp/callback", params={"state": "x", "code": "y"})
    assert answer.status_code == 400
    assert answer.json() == {"detail": "Invalid or expired OAuth state"}


async def test_a_wrong_pkce_verifier_is_refused_by_the_provider(make_env):
    env = await corp_env(make_env)
    url = await callback_url(env)
    store, keys = env.auth.tokens, env.auth.runtime.keys
    key = "oauth_state:" + keys.digest("oauth-state", query_of(url)["state"])
    record = json.loads(await store.get(key))
    record["code_verifier"] = "x" * 43
    await store.set(key, json.dumps(record), 600)
    await assert_refused(env, await env.client.get(url), FAILED)


async def test_an_authorization_response_from_another_issuer_is_refused(make_env):
    env = await corp_env(make_env)
    url = await callback_url(env)
    mixed = url.replace(
        httpx.QueryParams({"iss": env.idp.issuer}).__str__(), "iss=http%3A%2F%2Fevil"
    )
    assert "iss=http%3A%2F%2Fevil" in mixed
    await assert_refused(env, await env.client.get(mixed), FAILED)
    assert env.idp.token_calls == 0


async def test_a_missing_iss_is_refused_when_the_provider_promises_it(make_env):
    env = await corp_env(make_env)
    url = await callback_url(env)
    params = query_of(url)
    params.pop("iss")
    answer = await env.client.get("/oauth/corp/callback", params=params)
    await assert_refused(env, answer, FAILED)


async def test_provider_error_parameters_are_never_reflected(make_env):
    env = await corp_env(make_env)
    url = await callback_url(env)
    state = query_of(url)["state"]
    answer = await env.client.get(
        "/oauth/corp/callback",
        params={"state": state, "error": "access_denied", "error_description": "<script>x"},
    )
    await assert_refused(env, answer, FAILED)
    assert "script" not in answer.text


@pytest.mark.parametrize(
    "target", ["//evil.example", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
async def test_an_open_redirect_to_lands_on_the_default_page(make_env, target):
    env = await corp_env(make_env)
    answer = await sign_in(env.client, env.provider, "corp", redirect_to=target)
    assert answer.headers["location"] == f"{BASE}/"
    assert (await env.client.get("/me")).status_code == 200


# -- the ID token ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        {"signing": "none"},
        {"signing": "other-key"},
        {"signing": "hs256"},
        {"claims": {"iss": "http://127.0.0.1:9/evil"}},
        {"claims": {"aud": "another-client"}},
        {"claims": {"aud": [CLIENT_ID, "another-client"]}},
        {"claims": {"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}},
        {"claims": {"exp": 1}},
        {"claims": {"iat": 4_000_000_000, "exp": 4_000_000_100}},
        {"claims": {"nonce": "not-the-one-we-sent"}},
        {"claims": {"nonce": None}},
        {"claims": {"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}},
        {"claims": {"sub": None}},
        {"userinfo_sub": "someone-else"},
    ],
    ids=lambda t: json.dumps(t),
)
async def test_a_bad_id_token_is_refused(make_env, tamper):
    idp = OIDCProvider()
    for name, value in tamper.items():
        setattr(idp, name, value)
    env = await corp_env(make_env, idp)
    answer = await sign_in(env.client, env.provider, "corp")
    await assert_refused(env, answer, FAILED)


async def test_several_audiences_with_our_azp_are_accepted(make_env):
    idp = OIDCProvider(claims={"aud": [CLIENT_ID, "another"], "azp": CLIENT_ID})
    env = await corp_env(make_env, idp)
    answer = await sign_in(env.client, env.provider, "corp")
    assert answer.headers["location"] == f"{BASE}/"


async def test_an_unknown_kid_refetches_the_key_set_at_most_once_a_minute(make_env):
    idp = OIDCProvider()
    env = await corp_env(make_env, idp)
    await sign_in(env.client, env.provider, "corp")  # first fetch
    env.client.cookies.clear()
    fetched = idp.jwks_calls
    idp.signing = "unknown-kid"
    env.clock.advance(61)
    await assert_refused(env, await sign_in(env.client, env.provider, "corp"), FAILED)
    assert idp.jwks_calls == fetched + 1
    await assert_refused(env, await sign_in(env.client, env.provider, "corp"), FAILED)
    assert idp.jwks_calls == fetched + 1  # within the minute: no second fetch


# -- the profile -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user, code",
    [
        ({"sub": "u9", "email": "x@example.com", "email_verified": False}, "email_unverified"),
        ({"sub": "u9", "email": "x@example.com", "email_verified": "true"}, "email_unverified"),
        ({"sub": "u9"}, "email_missing"),
        (
            {"sub": "u9", "email": "x" * 330 + "@example.com", "email_verified": True},
            "email_too_long",
        ),
    ],
)
async def test_an_unusable_email_is_refused(make_env, user, code):
    env = await corp_env(make_env, OIDCProvider(user=user))
    answer = await sign_in(env.client, env.provider, "corp")
    await assert_refused(env, answer, f"{BASE}/?error={code}")


async def test_an_inactive_account_is_refused(make_env):
    env = await corp_env(make_env)
    await sign_in(env.client, env.provider, "corp")
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "email", "ada@example.com")
        await env.auth.repo.update(db, user, {"is_active": False})
    env.client.cookies.clear()
    answer = await sign_in(env.client, env.provider, "corp")
    await assert_refused(env, answer, f"{BASE}/?error=account_inactive")


# -- the provider fails ----------------------------------------------------------------------


async def test_a_token_endpoint_error_ends_in_oauth_failed(make_env):
    env = await corp_env(make_env, OIDCProvider(token_status=500))
    await assert_refused(env, await sign_in(env.client, env.provider, "corp"), FAILED)


async def test_a_jwks_outage_ends_in_oauth_failed(make_env):
    env = await corp_env(make_env, OIDCProvider(jwks_status=503))
    await assert_refused(env, await sign_in(env.client, env.provider, "corp"), FAILED)


async def test_discovery_naming_another_issuer_ends_in_oauth_failed(make_env):
    env = await corp_env(make_env, OIDCProvider(discovery_issuer="http://127.0.0.1:9/evil"))
    start = await env.client.get("/oauth/corp/authorize")
    assert start.status_code == 307
    assert start.headers["location"] == FAILED


class Failing(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, mode: str, path: str) -> None:
        self.inner, self.mode, self.path = inner, mode, path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith(self.path):
            return await self.inner.handle_async_request(request)
        if self.mode == "timeout":
            raise httpx.ReadTimeout("slow provider", request=request)
        if self.mode == "refused":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, content=b"<html>not json", request=request)


@pytest.mark.parametrize("mode", ["timeout", "refused", "not-json"])
@pytest.mark.parametrize("path", ["/token", "/me", "/jwks"])
async def test_a_provider_that_misbehaves_ends_in_oauth_failed(make_env, mode, path):
    env = await corp_env(make_env)
    env.provider.transport = Failing(env.provider.transport, mode, path)
    answer = await sign_in(env.client, env.provider, "corp")
    await assert_refused(env, answer, FAILED)


async def test_the_default_timeout_is_ten_seconds(make_env):
    env = await corp_env(make_env)
    assert env.provider.timeout == 10.0
    assert env.provider.http_client().timeout.read == 10.0


async def test_the_state_cookie_is_cleared_with_its_attributes(make_env):
    env = await corp_env(make_env)
    answer = await env.client.get(await callback_url(env))
    [cleared] = [c for c in answer.headers.get_list("set-cookie") if c.startswith("oauth_state=")]
    assert "Max-Age=0" in cleared and "HttpOnly" in cleared and "SameSite=lax" in cleared


async def test_linking_with_a_provider_that_is_down_is_a_400_not_a_500(make_env):
    env = await corp_env(make_env, OIDCProvider(discovery_issuer="http://127.0.0.1:9/evil"))
    await env.client.post(
        "/register",
        json={"username": "bob", "email": "bob@example.com", "password": "correct horse 1"},
    )
    await env.client.post("/login", data={"username": "bob", "password": "correct horse 1"})
    csrf = {"X-CSRF-Token": env.client.cookies["csrf_token"]}
    answer = await env.client.post("/oauth/corp/link", headers=csrf)
    assert answer.status_code == 400
    assert answer.json() == {"detail": "oauth_failed"}
    assert (await env.client.post("/oauth/corp/link")).status_code == 403  # no CSRF header


@pytest.mark.redis
async def test_one_callback_sent_four_times_at_once_signs_in_once(make_env):
    from tests.conftest import REDIS_TEST_URL

    env = await corp_env(make_env, redis_url=REDIS_TEST_URL)
    url = await callback_url(env)
    cookies = {"oauth_state": env.client.cookies["oauth_state"]}
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=env.app), base_url=BASE, cookies=cookies
        )
        for _ in range(4)
    ]
    try:
        answers = await asyncio.gather(*(c.get(url) for c in clients))
    finally:
        for c in clients:
            await c.aclose()
    locations = sorted(a.headers["location"] for a in answers)
    assert locations == [f"{BASE}/"] + [BAD_STATE] * 3
    assert sum("session_id" in a.cookies for a in answers) == 1
    assert env.idp.token_calls == 1
