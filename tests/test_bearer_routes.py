"""``POST /token``, ``/refresh`` and ``/logout`` over HTTP, and every claim of the tokens."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends

from crudauth import AuthHooks, BearerTransport, CookieConfig, Principal, SessionTransport
from crudauth.keys import Purpose
from tests.bearer_support import (
    PASSWORD,
    assert_invalid_token,
    bearer,
    claims_of,
    get_tokens,
    header_of,
    rebuild,
    sign_up,
    update_user,
)
from tests.conftest import REDIS_TEST_URL

DAY = 86400


def cookies_set(response: Any) -> dict[str, str]:
    return {
        header.split("=", 1)[0]: header.lower()
        for header in response.headers.get_list("set-cookie")
    }


# -- /token ---------------------------------------------------------------------------------


async def test_token_in_body_mode_returns_both_tokens(make_env):
    env = await make_env(transports=[BearerTransport(refresh="body")])
    await sign_up(env.client)
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200
    assert set(r.json()) == {"access_token", "token_type", "refresh_token"}
    assert r.json()["token_type"] == "bearer"
    assert "refresh_token" not in cookies_set(r)
    assert r.headers["cache-control"] == "no-store"


async def test_token_by_email_works_too(make_env):
    env = await make_env(transports=[BearerTransport(refresh="body")])
    await sign_up(env.client)
    r = await env.client.post(
        "/token", data={"username": "alice@example.com", "password": PASSWORD}
    )
    assert r.status_code == 200


async def test_access_token_claims(make_env):
    env = await make_env(transports=[BearerTransport(refresh="body")])
    await sign_up(env.client)
    tokens = await get_tokens(env.client)
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    claims = claims_of(access)
    now = int(env.clock.now())
    assert claims == {
        "iss": "crudauth",
        "aud": "crudauth",
        "sub": "1",
        "ver": 0,
        "scopes": [],
        "token_type": "access",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": claims["jti"],
    }
    assert len(claims["jti"]) >= 43
    keys = env.auth.runtime.keys
    assert header_of(access) == {
        "alg": "HS256",
        "typ": "at+jwt",
        "kid": keys.kid(Purpose.ACCESS_TOKEN),
    }
    assert header_of(refresh) == {
        "alg": "HS256",
        "typ": "rt+jwt",
        "kid": keys.kid(Purpose.REFRESH_TOKEN),
    }
    refresh_claims = claims_of(refresh)
    assert refresh_claims["token_type"] == "refresh"
    assert refresh_claims["gen"] == 0
    assert refresh_claims["fst"] == now
    assert refresh_claims["exp"] == now + 14 * DAY  # the idle window
    assert refresh_claims["jti"] != claims["jti"]


async def test_issuer_and_audience_are_configurable(make_env):
    transport = BearerTransport(refresh="body", issuer="https://api.example", audience="shop")
    env = await make_env(transports=[transport])
    await sign_up(env.client)
    access = (await get_tokens(env.client))["access_token"]
    assert (claims_of(access)["iss"], claims_of(access)["aud"]) == ("https://api.example", "shop")
    assert (await env.client.get("/me", headers=bearer(access))).status_code == 200


async def test_wrong_password_is_refused_and_reported(make_env):
    failures: list[tuple[str, str]] = []
    hooks = AuthHooks(
        on_login_failed=lambda ident, *, user, reason, context: failures.append(
            (ident, context.transport)
        )
    )
    env = await make_env(transports=[BearerTransport()], hooks=hooks)
    await sign_up(env.client)
    r = await env.client.post("/token", data={"username": "alice", "password": "wrong password"})
    assert r.status_code == 401
    assert r.json() == {"detail": "Incorrect username or password"}
    r = await env.client.post("/token", data={"username": "nobody", "password": PASSWORD})
    assert r.status_code == 401
    assert failures == [("alice", "bearer"), ("nobody", "bearer")]


async def test_token_shares_the_login_lockout(make_env):
    env = await make_env(transports=[SessionTransport(), BearerTransport()])
    await sign_up(env.client)
    for _ in range(5):
        r = await env.client.post("/login", data={"username": "alice", "password": "wrong"})
        assert r.status_code == 401
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 429
    assert "retry-after" in r.headers


async def test_a_disabled_account_gets_no_tokens(make_env):
    env = await make_env(transports=[BearerTransport()])
    await sign_up(env.client)
    await update_user(env, "alice", is_active=False)
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 401


async def test_successful_token_login_fires_on_after_login(make_env):
    seen: list[Any] = []
    hooks = AuthHooks(
        on_after_login=lambda user, *, request, context: seen.append(
            (user["username"], context.transport)
        )
    )
    env = await make_env(transports=[BearerTransport(refresh="body")], hooks=hooks)
    await sign_up(env.client)
    await get_tokens(env.client)
    assert seen == [("alice", "bearer")]


async def test_cookie_mode_sets_an_httponly_refresh_cookie(make_env):
    env = await make_env(
        transports=[BearerTransport(refresh_cookie_path="/auth")],
        cookies=CookieConfig(secure=True, samesite="strict"),
    )
    await sign_up(env.client)
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200
    assert set(r.json()) == {"access_token", "token_type"}
    cookie = cookies_set(r)["refresh_token"]
    for part in ("httponly", "secure", "samesite=strict", "path=/auth", f"max-age={14 * DAY}"):
        assert part in cookie, cookie
    assert "domain" not in cookie


async def test_cross_site_token_requests_are_refused_in_cookie_mode_only(make_env):
    cross = {"Sec-Fetch-Site": "cross-site"}
    form = {"username": "alice", "password": PASSWORD}
    env = await make_env(transports=[BearerTransport()])
    await sign_up(env.client)
    r = await env.client.post("/token", data=form, headers=cross)
    assert r.status_code == 403
    assert r.json() == {"detail": "Cross-site login requests are not allowed."}

    env = await make_env(transports=[BearerTransport(refresh="body")])
    await sign_up(env.client)
    assert (await env.client.post("/token", data=form, headers=cross)).status_code == 200


# -- scopes ---------------------------------------------------------------------------------


async def test_scopes_are_clamped_to_the_grantable_set(make_env):
    transport = BearerTransport(
        refresh="body", default_scopes=["read"], grantable_scopes=["read", "write"]
    )
    env = await make_env(transports=[transport])
    await sign_up(env.client)

    @env.app.post("/write")
    async def write(
        p: Principal = Depends(env.auth.current_user(scopes=["write"])),
    ) -> dict[str, Any]:
        return {"scopes": sorted(p.scopes)}

    default = (await get_tokens(env.client))["access_token"]
    assert claims_of(default)["scopes"] == ["read"]
    r = await env.client.post("/write", headers=bearer(default))
    assert r.status_code == 403
    assert r.json() == {"detail": "Insufficient scope"}

    asked = (await get_tokens(env.client, scope="write admin"))["access_token"]
    assert claims_of(asked)["scopes"] == ["write"]
    r = await env.client.post("/write", headers=bearer(asked))
    assert r.status_code == 200
    assert r.json() == {"scopes": ["write"]}
    me = await env.client.get("/me", headers=bearer(asked))
    assert me.json()["scopes"] == ["write"]


@pytest.mark.redis
async def test_refresh_reclamps_scopes_to_the_current_configuration(make_env):
    # A redeploy with narrower settings, its refresh families kept in Redis across it.
    wide = BearerTransport(refresh="body", grantable_scopes=["read", "write"])
    env = await make_env(transports=[wide], redis_url=REDIS_TEST_URL)
    await sign_up(env.client)
    refresh = (await get_tokens(env.client, scope="read write"))["refresh_token"]
    async with rebuild(
        env,
        transports=[BearerTransport(refresh="body", grantable_scopes=["read"])],
        redis_url=REDIS_TEST_URL,
    ) as narrowed:
        r = await narrowed.post("/refresh", json={"refresh_token": refresh})
        assert r.status_code == 200, r.text
        assert claims_of(r.json()["access_token"])["scopes"] == ["read"]
        assert claims_of(r.json()["refresh_token"])["scopes"] == ["read"]


# -- /refresh -------------------------------------------------------------------------------


async def test_refresh_in_body_mode(make_env):
    env = await make_env(transports=[BearerTransport(refresh="body")])
    await sign_up(env.client)
    first = await get_tokens(env.client)
    env.clock.advance(60)
    r = await env.client.post("/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    assert set(r.json()) == {"access_token", "token_type", "refresh_token"}
    assert r.headers["cache-control"] == "no-store"
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert claims_of(second["refresh_token"])["fam"] == claims_of(first["refresh_token"])["fam"]
    assert claims_of(second["refresh_token"])["gen"] == 1
    assert (await env.client.get("/me", headers=bearer(second["access_token"]))).status_code == 200


async def test_refresh_in_cookie_mode_rotates_the_cookie(make_env):
    env = await make_env(transports=[BearerTransport()])
    await sign_up(env.client)
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    first = r.cookies["refresh_token"]
    r = await env.client.post("/refresh")  # the client's jar carries the cookie
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"access_token", "token_type"}
    assert r.cookies["refresh_token"] != first
    assert "httponly" in cookies_set(r)["refresh_token"]


async def test_refresh_without_a_token(make_env):
    for mode in ("cookie", "body"):
        env = await make_env(transports=[BearerTransport(refresh=mode)])
        r = await env.client.post("/refresh")
        assert r.status_code == 401
        assert r.json() == {"detail": "Refresh token missing"}
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_cookie_mode_ignores_a_refresh_token_in_the_body(make_env):
    env = await make_env(transports=[BearerTransport()])
    await sign_up(env.client)
    refresh = env.auth.issue_tokens(await _alice(env))["refresh_token"]
    r = await env.client.post("/refresh", json={"refresh_token": refresh})
    assert r.status_code == 401
    assert r.json() == {"detail": "Refresh token missing"}


async def test_an_invalid_refresh_cookie_is_cleared(make_env):
    env = await make_env(transports=[BearerTransport()])
    r = await env.client.post("/refresh", headers={"Cookie": "refresh_token=junk"})
    assert_invalid_token(r)
    assert r.json() == {"detail": "Invalid or expired refresh token"}
    assert (
        'refresh_token=""' in r.headers["set-cookie"]
        or "max-age=0" in r.headers["set-cookie"].lower()
    )


async def test_refresh_by_cookie_refuses_cross_site_requests(make_env):
    env = await make_env(transports=[BearerTransport()])
    await sign_up(env.client)
    await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    r = await env.client.post("/refresh", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403


# -- revocation through the user row -----------------------------------------------------------


async def test_a_token_version_bump_kills_access_and_refresh_tokens_at_once(make_env):
    env = await make_env(transports=[BearerTransport(refresh="body")])
    await sign_up(env.client)
    tokens = await get_tokens(env.client)
    await update_user(env, "alice", token_version=1)
    assert_invalid_token(await env.client.get("/me", headers=bearer(tokens["access_token"])))
    r = await env.client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_invalid_token(r)
    fresh = await get_tokens(env.client)
    assert claims_of(fresh["access_token"])["ver"] == 1
    assert (await env.client.get("/me", headers=bearer(fresh["access_token"]))).status_code == 200


async def test_disabling_or_deleting_the_account_kills_its_tokens(make_env):
    env = await make_env(transports=[BearerTransport(refresh="body")])
    await sign_up(env.client)
    tokens = await get_tokens(env.client)
    await update_user(env, "alice", is_active=False)
    assert_invalid_token(await env.client.get("/me", headers=bearer(tokens["access_token"])))
    r = await env.client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_invalid_token(r)


# -- /logout (cookie mode, no session transport) -----------------------------------------------


async def test_cookie_mode_logout_revokes_the_family_and_clears_the_cookie(make_env):
    env = await make_env(transports=[BearerTransport()])
    await sign_up(env.client)
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    cookie = r.cookies["refresh_token"]
    r = await env.client.post("/logout")
    assert r.status_code == 200
    assert r.json() == {"detail": "Logged out"}
    assert (
        "max-age=0" in cookies_set(r)["refresh_token"]
        or 'refresh_token=""' in r.headers["set-cookie"]
    )
    r = await env.client.post("/refresh", headers={"Cookie": f"refresh_token={cookie}"})
    assert r.status_code == 401


async def test_logout_without_a_cookie_still_answers(make_env):
    env = await make_env(transports=[BearerTransport()])
    assert (await env.client.post("/logout")).json() == {"detail": "Logged out"}
    r = await env.client.post("/logout", headers={"Cookie": "refresh_token=junk"})
    assert r.status_code == 200


async def test_body_mode_mounts_no_logout(make_env):
    env = await make_env(transports=[BearerTransport(refresh="body")])
    assert (await env.client.post("/logout")).status_code in (404, 405)


# -- issue_tokens ---------------------------------------------------------------------------


async def _alice(env: Any) -> Any:
    async with env.sessionmaker() as db:
        return await env.auth.repo.get(db, 1)


async def test_issue_tokens_is_synchronous_and_may_be_awaited(make_env):
    env = await make_env(transports=[BearerTransport(grantable_scopes=["read", "write"])])
    await sign_up(env.client)
    user = await _alice(env)
    plain = env.auth.issue_tokens(user, scopes=["read", "admin"])
    assert set(plain) == {"access_token", "token_type", "refresh_token"}
    assert claims_of(plain["access_token"])["scopes"] == ["read"]
    awaited = await env.auth.issue_tokens(user)
    assert set(awaited) == {"access_token", "token_type", "refresh_token"}
    assert isinstance(awaited, dict)
    r = await env.client.post(
        "/refresh", headers={"Cookie": f"refresh_token={plain['refresh_token']}"}
    )
    assert r.status_code == 200


async def test_issue_tokens_without_a_bearer_transport_raises(make_env):
    env = await make_env()
    await sign_up(env.client)
    import pytest

    with pytest.raises(RuntimeError):
        env.auth.issue_tokens(await _alice(env))
