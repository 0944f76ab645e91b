"""Session lifecycle over HTTP: fixation, the per-user cap, expiry, epoch, logout, garbage."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from sqlalchemy import update

from crudauth import BearerTransport, SessionTransport
from tests.conftest import User, login, register

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def as_cookie(session_id: str | bytes) -> dict[str, bytes]:
    """A ``Cookie`` header presenting exactly this session id (it overrides the client jar)."""
    raw = session_id.encode("utf-8") if isinstance(session_id, str) else session_id
    return {"Cookie": b"session_id=" + raw}


async def me_with(client: httpx.AsyncClient, session_id: str | bytes) -> httpx.Response:
    return await client.get("/me", headers=as_cookie(session_id))


async def update_user(env: Any, username: str, **values: Any) -> None:
    async with env.sessionmaker() as db:
        await db.execute(update(User).where(User.username == username).values(**values))
        await db.commit()


async def fresh_login(env: Any, **extra: Any) -> httpx.Response:
    """Log in as a new browser would: presenting no earlier cookie."""
    env.client.cookies.clear()
    r = await login(env.client, **extra)
    assert r.status_code == 200, r.text
    return r


# -- fixation -------------------------------------------------------------------------------


async def test_login_revokes_the_presented_session_and_issues_a_new_id(make_env):
    env = await make_env()
    await register(env.client)
    old = (await fresh_login(env)).cookies["session_id"]

    r = await login(env.client)  # the client still presents ``old``

    new = r.cookies["session_id"]
    assert new != old
    assert (await me_with(env.client, new)).status_code == 200
    assert (await me_with(env.client, old)).status_code == 401


async def test_login_as_another_user_ends_the_first_users_session(make_env):
    env = await make_env()
    await register(env.client)
    await register(env.client, username="bob", email="bob@example.com")
    alice = (await fresh_login(env)).cookies["session_id"]

    r = await login(env.client, username="bob")

    assert r.status_code == 200, r.text
    assert (await me_with(env.client, alice)).status_code == 401
    assert (await env.client.get("/me")).json()["username"] == "bob"


async def test_attacker_chosen_session_id_is_never_adopted(make_env):
    env = await make_env()
    await register(env.client)
    planted = secrets.token_urlsafe(32)  # well-formed, but never issued by the server

    r = await me_with(env.client, planted)
    assert r.status_code == 401

    r = await env.client.post(
        "/login",
        data={"username": "alice", "password": "correct horse battery"},
        headers=as_cookie(planted),
    )
    assert r.status_code == 200, r.text
    issued = r.cookies["session_id"]
    assert issued != planted
    assert (await me_with(env.client, planted)).status_code == 401
    assert await env.auth.sessions.validate(planted) is None
    sessions = await env.auth.sessions.list_for_user(r.json()["id"])
    assert len(sessions) == 1


# -- the per-user cap -----------------------------------------------------------------------


async def test_sixth_login_evicts_the_least_recently_active_session(make_env):
    env = await make_env()
    await register(env.client)
    ids = []
    for _ in range(5):
        ids.append((await fresh_login(env)).cookies["session_id"])
        env.clock.advance(2 * MINUTE)
    # The oldest session is used again, so the second one is now the least recently active.
    assert (await me_with(env.client, ids[0])).status_code == 200
    env.clock.advance(2 * MINUTE)

    sixth = (await fresh_login(env)).cookies["session_id"]

    assert (await me_with(env.client, ids[1])).status_code == 401
    for survivor in [ids[0], *ids[2:], sixth]:
        assert (await me_with(env.client, survivor)).status_code == 200


async def test_cap_is_per_user(make_env):
    env = await make_env()
    await register(env.client)
    await register(env.client, username="bob", email="bob@example.com")
    bob = (await fresh_login(env, username="bob")).cookies["session_id"]
    env.clock.advance(2 * MINUTE)

    for _ in range(6):
        await fresh_login(env)
        env.clock.advance(2 * MINUTE)

    r = await me_with(env.client, bob)
    assert r.status_code == 200
    assert len(await env.auth.sessions.list_for_user(r.json()["user_id"])) == 1


# -- expiry ---------------------------------------------------------------------------------


async def test_idle_session_expires_after_thirty_minutes(make_env):
    env = await make_env()
    await register(env.client)
    await fresh_login(env)

    env.clock.advance(30 * MINUTE - 1)
    assert (await env.client.get("/me")).status_code == 200

    env.clock.advance(30 * MINUTE + 1)
    r = await env.client.get("/me")
    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}


async def test_untouched_session_expires_one_second_past_idle_timeout(make_env):
    env = await make_env()
    await register(env.client)
    await fresh_login(env)

    env.clock.advance(30 * MINUTE + 1)

    assert (await env.client.get("/me")).status_code == 401


async def test_activity_slides_the_idle_window(make_env):
    env = await make_env()
    await register(env.client)
    await fresh_login(env)

    for _ in range(6):  # two hours, a request every twenty minutes
        env.clock.advance(20 * MINUTE)
        assert (await env.client.get("/me")).status_code == 200

    env.clock.advance(30 * MINUTE + 1)
    assert (await env.client.get("/me")).status_code == 401


async def test_absolute_timeout_is_not_extended_by_activity(make_env):
    env = await make_env(transports=[SessionTransport(absolute_timeout_hours=1)])
    await register(env.client)
    await fresh_login(env)

    for step in (20, 20, 19):  # last request at 59 minutes
        env.clock.advance(step * MINUTE)
        assert (await env.client.get("/me")).status_code == 200

    env.clock.advance(2 * MINUTE)  # 61 minutes after login, 2 minutes after the last activity
    assert (await env.client.get("/me")).status_code == 401


async def test_absolute_timeout_also_caps_remember_me(make_env):
    env = await make_env(transports=[SessionTransport(absolute_timeout_hours=1)])
    await register(env.client)
    await fresh_login(env, remember_me="true")

    env.clock.advance(50 * MINUTE)
    assert (await env.client.get("/me")).status_code == 200
    env.clock.advance(11 * MINUTE)
    assert (await env.client.get("/me")).status_code == 401


async def test_remember_me_has_a_thirty_day_idle_window(make_env):
    env = await make_env()
    await register(env.client)
    remembered = (await fresh_login(env, remember_me="true")).cookies["session_id"]
    plain = (await fresh_login(env)).cookies["session_id"]

    env.clock.advance(29 * DAY)

    assert (await me_with(env.client, remembered)).status_code == 200
    assert (await me_with(env.client, plain)).status_code == 401


async def test_remember_me_session_expires_after_thirty_idle_days(make_env):
    env = await make_env()
    await register(env.client)
    await fresh_login(env, remember_me="true")

    env.clock.advance(30 * DAY + 1)

    assert (await env.client.get("/me")).status_code == 401


# -- epoch and account state ----------------------------------------------------------------


async def test_bumped_token_version_invalidates_the_session(make_env):
    env = await make_env()
    await register(env.client)
    await fresh_login(env)
    assert (await env.client.get("/me")).status_code == 200

    await update_user(env, "alice", token_version=1)

    assert (await env.client.get("/me")).status_code == 401
    # The session is gone for good, even if the epoch were rolled back.
    await update_user(env, "alice", token_version=0)
    assert (await env.client.get("/me")).status_code == 401


async def test_disabled_user_loses_every_session(make_env):
    env = await make_env()
    await register(env.client)
    first = (await fresh_login(env)).cookies["session_id"]
    second = (await fresh_login(env)).cookies["session_id"]

    await update_user(env, "alice", is_active=False)

    assert (await me_with(env.client, first)).status_code == 401
    assert (await me_with(env.client, second)).status_code == 401


async def test_disabled_user_cannot_log_in(make_env):
    env = await make_env()
    await register(env.client)
    await update_user(env, "alice", is_active=False)

    r = await login(env.client)

    assert r.status_code == 401
    assert "session_id" not in r.cookies


# -- logout ---------------------------------------------------------------------------------


async def test_logout_of_a_live_session_requires_the_csrf_token(make_env):
    env = await make_env()
    await register(env.client)
    await fresh_login(env)

    r = await env.client.post("/logout")

    assert r.status_code == 403
    assert r.headers["x-csrf-error"] == "true"
    assert r.json() == {"detail": "Missing CSRF token"}
    assert (await env.client.get("/me")).status_code == 200  # still signed in


async def test_logout_with_a_wrong_csrf_token_is_refused(make_env):
    env = await make_env()
    await register(env.client)
    await fresh_login(env)

    r = await env.client.post("/logout", headers={"X-CSRF-Token": secrets.token_urlsafe(32)})

    assert r.status_code == 403
    assert r.headers["x-csrf-error"] == "true"
    assert r.json() == {"detail": "Invalid CSRF token"}
    assert (await env.client.get("/me")).status_code == 200


async def test_logout_ends_the_session_and_clears_both_cookies(make_env):
    env = await make_env()
    await register(env.client)
    r = await fresh_login(env)
    session_id, csrf = r.cookies["session_id"], r.json()["csrf_token"]

    r = await env.client.post("/logout", headers={"X-CSRF-Token": csrf})

    assert r.status_code == 200, r.text
    assert r.json() == {"detail": "Logged out"}
    cleared = {h.split("=", 1)[0]: h for h in r.headers.get_list("set-cookie")}
    assert set(cleared) == {"session_id", "csrf_token"}
    for header in cleared.values():
        assert "max-age=0" in header.lower()
        assert "path=/" in header.lower()
    assert (await me_with(env.client, session_id)).status_code == 401
    assert (await env.client.get("/me")).status_code == 401


async def test_logout_of_an_expired_session_needs_no_csrf_token(make_env):
    env = await make_env()
    await register(env.client)
    await fresh_login(env)
    env.clock.advance(30 * MINUTE + 1)

    r = await env.client.post("/logout")

    assert r.status_code == 200, r.text
    assert r.json() == {"detail": "Logged out"}
    assert {h.split("=", 1)[0] for h in r.headers.get_list("set-cookie")} == {
        "session_id",
        "csrf_token",
    }


async def test_logout_of_an_unknown_session_needs_no_csrf_token(make_env):
    env = await make_env()

    r = await env.client.post("/logout", headers=as_cookie(secrets.token_urlsafe(32)))

    assert r.status_code == 200, r.text
    assert r.json() == {"detail": "Logged out"}


async def test_logout_by_get_is_not_allowed(make_env):
    env = await make_env()
    await register(env.client)
    await fresh_login(env)

    r = await env.client.get("/logout")

    assert r.status_code == 405
    assert (await env.client.get("/me")).status_code == 200


async def test_logout_ends_only_the_current_session(make_env):
    env = await make_env()
    await register(env.client)
    other = (await fresh_login(env)).cookies["session_id"]
    csrf = (await fresh_login(env)).json()["csrf_token"]

    r = await env.client.post("/logout", headers={"X-CSRF-Token": csrf})

    assert r.status_code == 200, r.text
    assert (await me_with(env.client, other)).status_code == 200


# -- garbage cookies ------------------------------------------------------------------------


GARBAGE = [
    b"A" * 10_240,
    b"abc\x00def",
    "\u00e9\u4e2d\u0000\U0001f600".encode(),
    b"%00",
    b"%00" * 15 + b"A" * 2,
    b"../../etc/passwd",
    b'"quoted"',
    b"",
]


async def test_garbage_session_cookies_are_unauthenticated_not_errors(make_env):
    env = await make_env()

    for value in GARBAGE:
        r = await me_with(env.client, value)
        assert r.status_code == 401, (value[:20], r.status_code)
        r = await env.client.get("/private", headers=as_cookie(value))
        assert r.status_code == 401, (value[:20], r.status_code)


async def test_garbage_session_cookies_on_unsafe_routes_are_not_errors(make_env):
    env = await make_env()

    for value in GARBAGE:
        r = await env.client.post("/private", headers=as_cookie(value))
        assert r.status_code in (401, 403), (value[:20], r.status_code)
        r = await env.client.post("/logout", headers=as_cookie(value))
        assert r.status_code == 200, (value[:20], r.status_code)


# -- what a sign-in or sign-out ends ------------------------------------------------------------


async def test_session_logout_revokes_the_refresh_family_of_the_same_browser(make_env):
    env = await make_env(transports=[SessionTransport(), BearerTransport(refresh="cookie")])
    await register(env.client)
    r = await env.client.post(
        "/token", data={"username": "alice", "password": "correct horse battery"}
    )
    assert r.status_code == 200
    refresh_cookie = env.client.cookies.get("refresh_token")
    assert refresh_cookie
    csrf = (await login(env.client)).json()["csrf_token"]
    assert (await env.client.post("/logout", headers={"X-CSRF-Token": csrf})).status_code == 200
    # A copy of the refresh cookie taken before the logout is dead on the server too.
    env.client.cookies.clear()
    env.client.cookies.set("refresh_token", refresh_cookie)
    assert (await env.client.post("/refresh")).status_code == 401


async def test_a_failed_login_does_not_sign_the_presented_session_out(make_env):
    env = await make_env()
    await register(env.client)
    await login(env.client)
    r = await env.client.post("/login", data={"username": "alice", "password": "not it at all"})
    assert r.status_code == 401
    assert (await env.client.get("/me")).status_code == 200
