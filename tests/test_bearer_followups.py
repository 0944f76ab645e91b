"""Bearer edges that rely on the shared machinery: the /refresh throttle and the reuse hook."""

from __future__ import annotations

from typing import Any

from crudauth import AuthHooks, BearerTransport
from crudauth.ratelimit import RateLimit
from tests.bearer_support import get_tokens, sign_up


async def test_refresh_is_rate_limited_per_address(make_env):
    env = await make_env(
        transports=[BearerTransport(refresh="body")],
        rate_limits={"refresh": RateLimit(2, 60)},
    )
    await sign_up(env.client)
    tokens = await get_tokens(env.client)
    token = tokens["refresh_token"]
    for _ in range(2):
        r = await env.client.post("/refresh", json={"refresh_token": token})
        assert r.status_code == 200, r.text
        token = r.json()["refresh_token"]
    r = await env.client.post("/refresh", json={"refresh_token": token})
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
    assert (await env.client.post("/refresh", json={"refresh_token": spent})).status_code == 200
    replay = await env.client.post("/refresh", json={"refresh_token": spent})
    assert replay.status_code == 401
    assert replay.headers["WWW-Authenticate"].startswith("Bearer")
    assert [u["username"] for u in seen] == ["alice"]
    assert "hashed_password" not in seen[0]


async def test_a_memoised_access_token_still_expires(make_env):
    """The verified-token memo skips only the signature work: time is checked every time."""
    env = await make_env(transports=[BearerTransport(refresh="body", access_ttl=60)])
    await sign_up(env.client)
    headers = {"Authorization": f"Bearer {(await get_tokens(env.client))['access_token']}"}
    assert (await env.client.get("/private", headers=headers)).status_code == 200
    assert (await env.client.get("/private", headers=headers)).status_code == 200  # memoised
    env.clock.advance(60 + 31)  # past exp and any leeway
    r = await env.client.get("/private", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_memoised_token_does_not_vouch_for_a_tampered_copy(make_env):
    env = await make_env(transports=[BearerTransport(refresh="body")])
    await sign_up(env.client)
    token = (await get_tokens(env.client))["access_token"]
    assert (
        await env.client.get("/private", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}"
    r = await env.client.get("/private", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
