"""Device management over HTTP: GET /sessions, DELETE /sessions/{handle}, /logout-all,
/csrf/refresh (``SessionTransport(management_routes=True)``)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from crudauth import BearerTransport, SessionTransport
from crudauth.ratelimit import RateLimit
from tests.account_support import FIREFOX, IPHONE, PASSWORD, new_client, sign_in
from tests.conftest import User, login, register


def managed(**options: object) -> list[object]:
    return [SessionTransport(management_routes=True, **options)]  # type: ignore[arg-type]


async def test_the_routes_are_off_unless_asked_for(make_env):
    env = await make_env()
    await register(env.client)
    browser = await sign_in(env)
    assert (await browser.client.get("/sessions")).status_code == 404
    assert (await browser.post("/logout-all")).status_code == 404


async def test_session_list_shows_devices_by_handle_never_by_token(make_env):
    env = await make_env(transports=managed())
    await register(env.client)
    laptop = await sign_in(env, user_agent=FIREFOX)
    phone = await sign_in(env, user_agent=IPHONE)

    r = await laptop.client.get("/sessions")

    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    sessions = r.json()
    assert len(sessions) == 2
    by_current = {s["current"]: s for s in sessions}
    mine, other = by_current[True], by_current[False]
    assert mine["device"]["browser"].startswith("Firefox")
    assert mine["device"]["kind"] == "desktop"
    assert other["device"]["kind"] == "mobile"
    assert other["device"]["os"].startswith("iOS")
    assert set(mine) == {
        "id", "device", "user_agent", "ip", "created_at", "last_activity", "remember_me",
        "current",
    }  # fmt: skip
    body = r.text
    for secret in (laptop.session_id, phone.session_id, laptop.csrf, phone.csrf):
        assert secret not in body
    # A handle presented as a cookie is nobody's session.
    stranger = new_client(env)
    r = await stranger.get("/me", headers={"Cookie": f"session_id={other['id']}"})
    assert r.status_code == 401


async def test_revoking_another_device(make_env):
    env = await make_env(transports=managed())
    await register(env.client)
    laptop, phone = await sign_in(env), await sign_in(env)
    handle = next(
        s["id"] for s in (await laptop.client.get("/sessions")).json() if not s["current"]
    )

    assert (await laptop.client.delete(f"/sessions/{handle}")).status_code == 403  # CSRF
    r = await laptop.delete(f"/sessions/{handle}")

    assert (r.status_code, r.json()) == (200, {"detail": "Session revoked."})
    assert "session_id" not in r.headers.get("set-cookie", "")
    assert (await phone.client.get("/me")).status_code == 401
    assert (await laptop.client.get("/me")).status_code == 200
    r = await laptop.delete(f"/sessions/{handle}")
    assert (r.status_code, r.json()["detail"]) == (404, "Session not found.")


async def test_revoking_the_current_session_clears_its_cookies(make_env):
    env = await make_env(transports=managed())
    await register(env.client)
    laptop = await sign_in(env)
    [mine] = (await laptop.client.get("/sessions")).json()
    r = await laptop.delete(f"/sessions/{mine['id']}")
    assert r.status_code == 200
    assert 'session_id=""' in r.headers["set-cookie"]
    assert (await laptop.client.get("/me")).status_code == 401


async def test_another_users_handle_is_not_found(make_env):
    env = await make_env(transports=managed())
    await register(env.client)
    await register(env.client, username="bob", email="bob@example.com")
    alice, bob = await sign_in(env), await sign_in(env, "bob")
    [bobs] = (await bob.client.get("/sessions")).json()

    for handle in (bobs["id"], "nonexistent", "x" * 200, "%C3%A9t%C3%A9"):
        r = await alice.delete(f"/sessions/{handle}")
        assert (r.status_code, r.json()["detail"]) == (404, "Session not found.")
    assert (await bob.client.get("/me")).status_code == 200


async def test_logout_all_ends_every_session_and_bearer_token(make_env):
    env = await make_env(transports=[*managed(), BearerTransport])
    await register(env.client)
    laptop, phone = await sign_in(env), await sign_in(env)
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}

    r = await laptop.post("/logout-all")

    assert r.status_code == 200
    assert r.json()["revoked"] == 2
    assert 'session_id=""' in r.headers["set-cookie"]
    for browser in (laptop, phone):
        assert (await browser.client.get("/me")).status_code == 401
    assert (await new_client(env).get("/me", headers=bearer)).status_code == 401


async def test_logout_all_keep_current(make_env):
    env = await make_env(transports=managed())
    await register(env.client)
    laptop, phone, tablet = await sign_in(env), await sign_in(env), await sign_in(env)

    r = await laptop.post("/logout-all", params={"keep_current": "true"})

    assert (r.status_code, r.json()["revoked"]) == (200, 2)
    assert "set-cookie" not in r.headers
    assert (await laptop.client.get("/me")).status_code == 200
    assert (await laptop.post("/private")).status_code == 200
    assert (await phone.client.get("/me")).status_code == 401
    assert (await tablet.client.get("/me")).status_code == 401
    async with env.sessionmaker() as db:
        assert (await db.scalars(select(User.token_version))).one() == 1


async def test_logout_all_needs_csrf_and_a_session(make_env):
    env = await make_env(transports=[*managed(), BearerTransport])
    await register(env.client)
    laptop = await sign_in(env)
    r = await laptop.client.post("/logout-all")
    assert (r.status_code, r.json()["detail"]) == (403, "Missing CSRF token")
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await new_client(env).post("/logout-all", headers=bearer)).status_code == 401
    assert (await new_client(env).get("/sessions", headers=bearer)).status_code == 401


async def test_logout_all_is_rate_limited_per_user(make_env):
    env = await make_env(transports=managed(), rate_limits={"logout_all": RateLimit(2, 3600)})
    await register(env.client)
    laptop = await sign_in(env)
    for _ in range(2):
        assert (
            await laptop.post("/logout-all", params={"keep_current": "true"})
        ).status_code == 200
    r = await laptop.post("/logout-all", params={"keep_current": "true"})
    assert r.status_code == 429
    assert "retry-after" in r.headers


# -- /csrf/refresh ------------------------------------------------------------------------------


async def test_csrf_refresh_returns_a_matching_cookie_unchanged(make_env):
    env = await make_env(transports=managed())
    await register(env.client)
    laptop = await sign_in(env)
    r = await laptop.client.post("/csrf/refresh")  # no X-CSRF-Token needed
    assert (r.status_code, r.json()) == (200, {"csrf_token": laptop.csrf})
    assert "set-cookie" not in r.headers


async def test_csrf_refresh_rotates_a_lost_token(make_env):
    env = await make_env(transports=managed())
    await register(env.client)
    laptop = await sign_in(env)
    old = laptop.csrf
    laptop.client.cookies.delete("csrf_token")

    r = await laptop.client.post("/csrf/refresh")

    assert r.status_code == 200
    new = r.json()["csrf_token"]
    assert new != old
    assert laptop.client.cookies["csrf_token"] == new
    assert (await laptop.client.post("/private", headers={"X-CSRF-Token": old})).status_code == 403
    assert (await laptop.client.post("/private", headers={"X-CSRF-Token": new})).status_code == 200


async def test_csrf_refresh_without_a_session_is_401(make_env):
    env = await make_env(transports=managed())
    r = await new_client(env).post("/csrf/refresh")
    assert r.status_code == 401
    r = await new_client(env).post("/csrf/refresh", headers={"Cookie": "session_id=" + "a" * 43})
    assert r.status_code == 401


async def test_csrf_refresh_when_csrf_is_off(make_env):
    env = await make_env(transports=managed(csrf=False))
    await register(env.client)
    laptop = await sign_in(env)
    r = await laptop.client.post("/csrf/refresh")
    assert (r.status_code, r.json()["detail"]) == (400, "CSRF is disabled.")


async def test_csrf_refresh_is_rate_limited_per_address(make_env):
    env = await make_env(transports=managed(), rate_limits={"csrf_refresh": RateLimit(3, 3600)})
    await register(env.client)
    laptop = await sign_in(env)
    for _ in range(3):
        assert (await laptop.client.post("/csrf/refresh")).status_code == 200
    assert (await laptop.client.post("/csrf/refresh")).status_code == 429


async def test_csrf_refresh_never_pools_address_less_requests_in_one_bucket(make_env):
    # One client without a peer address must not spend the quota of every other such client.
    env = await make_env(transports=managed(), rate_limits={"csrf_refresh": RateLimit(1, 3600)})
    await register(env.client)
    browsers = [await sign_in(env), await sign_in(env)]
    for browser in browsers:
        cookies = dict(browser.client.cookies)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=env.app, client=None),  # type: ignore[arg-type]
            base_url="http://testserver",
            cookies=cookies,
        ) as no_address:
            for _ in range(2):
                assert (await no_address.post("/csrf/refresh")).status_code == 200


async def test_csrf_refresh_refuses_a_disabled_account(make_env):
    env = await make_env(transports=managed())
    await register(env.client)
    laptop = await sign_in(env)
    async with env.sessionmaker() as db:
        user = (await db.scalars(select(User))).one()
        user.is_active = False
        await db.commit()
    assert (await laptop.client.post("/csrf/refresh")).status_code == 401


@pytest.mark.parametrize("remember", ["true", "false"])
async def test_a_rotated_csrf_cookie_lives_as_long_as_the_session_cookie(make_env, remember):
    env = await make_env(transports=managed())
    await register(env.client)
    client = new_client(env)
    r = await login(client, remember_me=remember)
    session_cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("session_id"))
    client.cookies.delete("csrf_token")
    r = await client.post("/csrf/refresh")
    [csrf_cookie] = r.headers.get_list("set-cookie")
    assert ("Max-Age" in csrf_cookie) == ("Max-Age" in session_cookie)
