"""Refresh-token families: rotation, reuse detection, grace window, lifetimes, key rotation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from crudauth import AuthHooks, BearerTransport
from crudauth.ratelimit import RateLimit
from tests.bearer_support import (
    assert_invalid_token,
    bearer,
    claims_of,
    get_tokens,
    header_of,
    hs256,
    rebuild,
    refresh_key,
    sign_up,
)
from tests.conftest import REDIS_TEST_URL, SECRET

DAY = 86400


async def body_env(make_env: Any, redis_url: str | None = None, **options: Any) -> Any:
    stores = {"redis_url": redis_url} if redis_url else {}
    env = await make_env(transports=[BearerTransport(refresh="body", **options)], **stores)
    await sign_up(env.client)
    return env


async def refresh(env: Any, token: str) -> Any:
    return await env.client.post("/refresh", json={"refresh_token": token})


async def test_each_refresh_rotates_and_the_new_token_works(make_env):
    env = await body_env(make_env)
    token = (await get_tokens(env.client))["refresh_token"]
    for generation in range(1, 6):
        env.clock.advance(600)
        r = await refresh(env, token)
        assert r.status_code == 200, r.text
        token = r.json()["refresh_token"]
        assert claims_of(token)["gen"] == generation


async def test_reusing_a_spent_token_revokes_the_whole_family(make_env, caplog):
    env = await body_env(make_env)
    a = (await get_tokens(env.client))["refresh_token"]
    r = await refresh(env, a)
    b = r.json()["refresh_token"]
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        assert_invalid_token(await refresh(env, a))  # the thief (or the victim) replays A
    assert any("reuse" in record.getMessage() for record in caplog.records)
    assert a not in caplog.text and b not in caplog.text
    assert_invalid_token(await refresh(env, b))  # ... and B, the live member, died with it


async def test_a_revoked_family_can_never_restart(make_env):
    env = await body_env(make_env)
    a = (await get_tokens(env.client))["refresh_token"]
    b = (await refresh(env, a)).json()["refresh_token"]
    c = (await refresh(env, b)).json()["refresh_token"]
    assert (await refresh(env, a)).status_code == 401  # reuse: the family is revoked
    for token in (a, b, c):
        assert (await refresh(env, token)).status_code == 401
    # A generation-0 token re-signed with the same claims (a different encoding) is dead too:
    # revocation is keyed by the family id, never by the token's bytes.
    claims = claims_of(a)
    reencoded = hs256(header_of(a), dict(reversed(list(claims.items()))), refresh_key(env.auth))
    assert reencoded != a
    assert (await refresh(env, reencoded)).status_code == 401


async def test_other_families_of_the_same_user_survive_a_reuse(make_env):
    env = await body_env(make_env)
    laptop = (await get_tokens(env.client))["refresh_token"]
    phone = (await get_tokens(env.client))["refresh_token"]
    await refresh(env, laptop)
    assert (await refresh(env, laptop)).status_code == 401
    assert (await refresh(env, phone)).status_code == 200


async def test_concurrent_double_submit_has_exactly_one_winner(make_env):
    env = await body_env(make_env)
    for _ in range(3):
        a = (await get_tokens(env.client))["refresh_token"]
        answers = await asyncio.gather(*(refresh(env, a) for _ in range(6)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [200] + [401] * 5, codes
        winner = next(r for r in answers if r.status_code == 200).json()["refresh_token"]
        # Without a grace window the losers prove a copy exists: the family is revoked.
        assert (await refresh(env, winner)).status_code == 401


async def test_the_grace_window_forgives_an_honest_double_submit(make_env):
    env = await body_env(make_env, reuse_grace_seconds=10)
    a = (await get_tokens(env.client))["refresh_token"]
    b = (await refresh(env, a)).json()["refresh_token"]
    env.clock.advance(5)
    assert_invalid_token(await refresh(env, a))  # refused, but not treated as theft
    r = await refresh(env, b)
    assert r.status_code == 200
    c = r.json()["refresh_token"]
    env.clock.advance(11)
    assert (await refresh(env, b)).status_code == 401  # outside the window: reuse
    assert (await refresh(env, c)).status_code == 401


async def test_the_grace_window_covers_the_previous_member_only(make_env):
    env = await body_env(make_env, reuse_grace_seconds=10)
    a = (await get_tokens(env.client))["refresh_token"]
    b = (await refresh(env, a)).json()["refresh_token"]
    c = (await refresh(env, b)).json()["refresh_token"]
    assert (await refresh(env, a)).status_code == 401  # two generations old: reuse
    assert (await refresh(env, c)).status_code == 401


async def test_the_family_has_an_absolute_lifetime_despite_activity(make_env):
    env = await body_env(make_env, refresh_ttl_days=30, refresh_idle_days=14)
    token = (await get_tokens(env.client))["refresh_token"]
    started = env.clock.now()
    while env.clock.now() + 10 * DAY < started + 30 * DAY:
        env.clock.advance(10 * DAY)
        r = await refresh(env, token)
        assert r.status_code == 200, r.text
        token = r.json()["refresh_token"]
        assert claims_of(token)["exp"] <= started + 30 * DAY
    env.clock.set(started + 30 * DAY + 11)  # past the absolute limit and the leeway
    assert_invalid_token(await refresh(env, token))


async def test_an_idle_family_expires(make_env):
    env = await body_env(make_env, refresh_idle_days=14)
    token = (await get_tokens(env.client))["refresh_token"]
    token = (await refresh(env, token)).json()["refresh_token"]
    env.clock.advance(14 * DAY + 11)
    assert_invalid_token(await refresh(env, token))


async def test_the_store_never_holds_a_raw_token(make_env):
    env = await body_env(make_env)
    a = (await get_tokens(env.client))["refresh_token"]
    b = (await refresh(env, a)).json()["refresh_token"]
    dump = repr(vars(env.auth.tokens))
    for token in (a, b):
        claims = claims_of(token)
        for secret in (token, claims["jti"], claims["fam"], token.split(".")[2]):
            assert secret not in dump


async def test_revoke_refresh_token_ends_the_family(make_env):
    env = await body_env(make_env)
    a = (await get_tokens(env.client))["refresh_token"]
    b = (await refresh(env, a)).json()["refresh_token"]
    transport = next(t for t in env.auth.transports if t.name == "bearer")
    assert await transport.revoke_refresh_token(b) is True
    assert (await refresh(env, b)).status_code == 401
    assert await transport.revoke_refresh_token("junk") is False


@pytest.mark.redis
async def test_rotating_the_secret_logs_nobody_out(make_env):
    # A redeploy with a new secret, its refresh families kept in Redis across it.
    env = await body_env(make_env, redis_url=REDIS_TEST_URL)
    tokens = await get_tokens(env.client)
    new_secret = "another-secret-that-is-long-enough-987654321"
    rotated = rebuild(
        env,
        SECRET_KEY=new_secret,
        secret_fallbacks=[SECRET],
        transports=[BearerTransport(refresh="body")],
        redis_url=REDIS_TEST_URL,
    )
    async with rotated:
        r = await rotated.get("/me", headers=bearer(tokens["access_token"]))
        assert r.status_code == 200, r.text
        r = await rotated.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200, r.text
        fresh = r.json()
        assert header_of(fresh["access_token"])["kid"] != header_of(tokens["access_token"])["kid"]
        assert (await rotated.get("/me", headers=bearer(fresh["access_token"]))).status_code == 200
    # Without the fallback, the old tokens are worthless.
    async with rebuild(
        env, SECRET_KEY=new_secret, transports=[BearerTransport(refresh="body")]
    ) as forgot:
        assert_invalid_token(await forgot.get("/me", headers=bearer(tokens["access_token"])))


async def test_body_mode_never_reads_a_refresh_cookie(make_env):
    env = await body_env(make_env)
    first = (await get_tokens(env.client))["refresh_token"]
    second = (await get_tokens(env.client))["refresh_token"]
    # A stray cookie of the same name (another app of the site, an old deploy in cookie mode):
    # junk, or even a live refresh token of this very app.
    for stray in ("junk", second):
        env.clock.advance(1)
        r = await env.client.post(
            "/refresh",
            json={"refresh_token": first},
            headers={"Cookie": f"refresh_token={stray}"},
        )
        assert r.status_code == 200, r.text
        assert claims_of(r.json()["refresh_token"])["fam"] == claims_of(first)["fam"]
        assert "set-cookie" not in r.headers
        first = r.json()["refresh_token"]

    # Without a token in the body, the cookie is not a fallback.
    r = await env.client.post("/refresh", headers={"Cookie": f"refresh_token={second}"})
    assert r.status_code == 401 and r.json() == {"detail": "Refresh token missing"}
    assert "set-cookie" not in r.headers
    # A bad body token is refused on its own; there is no cookie to clear.
    r = await env.client.post(
        "/refresh", json={"refresh_token": "a.b.c"}, headers={"Cookie": f"refresh_token={second}"}
    )
    assert r.status_code == 401 and r.json() == {"detail": "Invalid or expired refresh token"}
    assert "set-cookie" not in r.headers
    # The cookie's token was never spent.
    assert (await refresh(env, second)).status_code == 200


# -- the /refresh throttle and the reuse hook ---------------------------------------------------


async def test_refresh_is_rate_limited_per_address(make_env):
    env = await make_env(
        transports=[BearerTransport(refresh="body")],
        rate_limits={"refresh": RateLimit(2, 60)},
    )
    await sign_up(env.client)
    token = (await get_tokens(env.client))["refresh_token"]
    for _ in range(2):
        r = await refresh(env, token)
        assert r.status_code == 200, r.text
        token = r.json()["refresh_token"]
    r = await refresh(env, token)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1


async def test_refresh_token_reuse_fires_the_hook_with_no_secrets(make_env):
    seen: list[dict[str, Any]] = []
    env = await make_env(
        transports=[BearerTransport(refresh="body")],
        hooks=AuthHooks(on_refresh_reuse=lambda user, **kw: seen.append(user)),
    )
    await sign_up(env.client)
    spent = (await get_tokens(env.client))["refresh_token"]
    assert (await refresh(env, spent)).status_code == 200
    replay = await refresh(env, spent)
    assert replay.status_code == 401
    assert replay.headers["WWW-Authenticate"].startswith("Bearer")
    assert [u["username"] for u in seen] == ["alice"]
    assert "hashed_password" not in seen[0]
