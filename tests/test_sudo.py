"""Sudo mode over HTTP: POST /sudo, auth.require_sudo(), one session per grant, lockout."""

import asyncio
from datetime import datetime
from typing import Annotated, Any

import pytest
from fastapi import Depends, Request
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth import (
    AuthHooks,
    BearerTransport,
    ConfigurationError,
    Principal,
    SessionTransport,
    SudoConfig,
    make_unusable_password,
)
from crudauth.ratelimit import RateLimit
from tests.account_support import PASSWORD, Browser, new_client, sign_in
from tests.conftest import Env, User, register


async def sudo_env(make_env: Any, config: SudoConfig | None = None, **options: Any) -> Env:
    env: Env = await make_env(sudo=config or SudoConfig(), **options)
    auth = env.auth

    @env.app.post("/danger")
    async def danger(p: Annotated[Principal, Depends(auth.require_sudo())]) -> dict[str, Any]:
        return {"user_id": p.user_id}

    @env.app.post("/my-sudo")
    async def my_sudo(
        request: Request,
        password: str,
        db: Annotated[AsyncSession, Depends(env.auth.session)],
        p: Annotated[Principal, Depends(auth.current_user())],
    ) -> dict[str, str]:
        assert auth.sudo is not None
        until = await auth.sudo.elevate(p, password, db=db, request=request)
        return {"until": until.isoformat()}

    await register(env.client)
    return env


async def elevate(browser: Browser, password: str = PASSWORD) -> Any:
    r = await browser.post("/sudo", json={"password": password})
    if r.status_code == 200:
        browser.csrf = r.json()["csrf_token"]  # a new session id and CSRF token
    return r


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"window_seconds": 0},
        {"window_seconds": -5},
        {"window_seconds": 2 * 86400},
        {"max_attempts": 0},
        {"max_attempts": True},
        {"max_attempts": 2.5},
        {"lockout_seconds": 0},
        {"failure_window_seconds": 0},
        {"rate_limit": (10, 60)},
    ],
)
def test_sudo_config_is_validated(options):
    with pytest.raises(ConfigurationError):
        SudoConfig(**options)


def test_sudo_config_defaults():
    config = SudoConfig()
    assert (config.window_seconds, config.max_attempts, config.lockout_seconds) == (300, 3, 900)
    assert config.failure_window_seconds == 900
    assert config.rate_limit == RateLimit(10, 60)


async def test_sudo_needs_a_session_transport(make_env):
    with pytest.raises(ConfigurationError):
        await make_env(sudo=SudoConfig(), transports=[BearerTransport])


async def test_require_sudo_needs_sudo_configured(make_env):
    env = await make_env()
    assert env.auth.sudo is None
    with pytest.raises(ConfigurationError):
        env.auth.require_sudo()
    assert (await env.client.post("/sudo", json={"password": "x"})).status_code == 404


# -- granting -----------------------------------------------------------------------------------


async def test_sudo_unlocks_a_gated_route_for_the_window(make_env):
    events: list[dict[str, Any]] = []
    env = await sudo_env(
        make_env, hooks=AuthHooks(on_after_sudo=lambda u, *, request, context: events.append(u))
    )
    browser = await sign_in(env)

    r = await browser.post("/danger")
    assert (r.status_code, r.json()["detail"]) == (403, "Re-authentication required.")
    assert r.headers["x-error-code"] == "sudo_required"

    old_session = browser.session_id
    r = await elevate(browser)
    assert r.status_code == 200, r.text
    assert r.json()["detail"] == "Sudo mode enabled."
    until = datetime.fromisoformat(r.json()["sudo_until"])
    assert until.timestamp() == env.clock.now() + 300
    assert browser.session_id != old_session  # re-authentication issues a new session id
    stale = new_client(env)
    assert (
        await stale.get("/me", headers={"Cookie": f"session_id={old_session}"})
    ).status_code == 401

    assert (await browser.post("/danger")).status_code == 200
    [user] = events
    assert user["username"] == "alice" and "hashed_password" not in user

    env.clock.advance(299)
    assert (await browser.post("/danger")).status_code == 200
    env.clock.advance(2)
    assert (await browser.post("/danger")).status_code == 403


async def test_wrong_password_is_401(make_env):
    env = await sudo_env(make_env)
    browser = await sign_in(env)
    r = await elevate(browser, "nope")
    assert (r.status_code, r.json()["detail"]) == (401, "Incorrect password.")
    assert (await browser.post("/danger")).status_code == 403


async def test_a_code_without_two_factor_sign_in_is_a_422_not_a_500(make_env):
    env = await sudo_env(make_env)
    browser = await sign_in(env)
    r = await browser.post("/sudo", json={"code": "123456"})
    assert r.status_code == 422, r.text
    assert "confirm with the password" in r.json()["detail"]
    assert (await browser.post("/danger")).status_code == 403


async def test_sudo_needs_the_csrf_header(make_env):
    env = await sudo_env(make_env)
    browser = await sign_in(env)
    r = await browser.client.post("/sudo", json={"password": PASSWORD})
    assert (r.status_code, r.json()["detail"]) == (403, "Missing CSRF token")


async def test_a_grant_belongs_to_one_session(make_env):
    env = await sudo_env(make_env)
    a, b = await sign_in(env), await sign_in(env)
    assert (await elevate(a)).status_code == 200
    assert (await a.post("/danger")).status_code == 200
    assert (await b.post("/danger")).status_code == 403


async def test_s14_concurrent_calls_from_another_session_stay_refused(make_env):
    env = await sudo_env(make_env)
    a, b = await sign_in(env), await sign_in(env)

    async def b_calls() -> list[int]:
        return [(await b.post("/danger")).status_code for _ in range(5)]

    results = await asyncio.gather(elevate(a), *(b_calls() for _ in range(8)))
    assert results[0].status_code == 200
    assert all(code == 403 for codes in results[1:] for code in codes)
    assert (await a.post("/danger")).status_code == 200


async def test_logout_drops_the_grant(make_env):
    env = await sudo_env(make_env)
    browser = await sign_in(env)
    assert (await elevate(browser)).status_code == 200
    assert (await browser.post("/logout")).status_code == 200
    again = await sign_in(env)
    assert (await again.post("/danger")).status_code == 403


async def test_a_bearer_principal_cannot_enter_sudo(make_env):
    env = await sudo_env(make_env, transports=[SessionTransport, BearerTransport])
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    client = new_client(env)
    for url, body in (("/sudo", {"password": PASSWORD}), ("/danger", None)):
        r = await client.post(url, json=body, headers=headers)
        assert (r.status_code, r.json()["detail"]) == (403, "Sudo requires a session-backed login.")


async def test_elevate_from_an_app_route(make_env):
    env = await sudo_env(make_env)
    browser = await sign_in(env)
    r = await browser.post("/my-sudo", params={"password": PASSWORD})
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["until"]).timestamp() == env.clock.now() + 300
    assert (await browser.post("/danger")).status_code == 200  # same session, same cookie


async def test_sudo_makes_set_password_fresh(make_env):
    env = await sudo_env(make_env)
    browser = await sign_in(env)
    env.clock.advance(700)  # past fresh_sign_in_seconds=600
    await browser.client.get("/me")
    assert (await elevate(browser)).status_code == 200
    async with env.sessionmaker() as db:
        await db.execute(update(User).values(hashed_password=make_unusable_password()))
        await db.commit()
    r = await browser.post("/set-password", json={"new_password": "a brand new passphrase"})
    assert r.status_code == 200, r.text


# -- failures -----------------------------------------------------------------------------------


async def test_failures_lock_sudo_and_drop_every_grant(make_env):
    env = await sudo_env(make_env)
    a, b = await sign_in(env), await sign_in(env)
    assert (await elevate(a)).status_code == 200

    assert (await elevate(b, "wrong 1")).status_code == 401
    assert (await elevate(b, "wrong 2")).status_code == 401
    r = await elevate(b, "wrong 3")  # the third failure locks at once

    assert r.status_code == 429
    assert r.headers["retry-after"] == "900"
    assert r.headers["x-error-code"] == "sudo_locked"
    assert (await a.post("/danger")).status_code == 403  # the lock dropped A's grant too
    verifications = env.hasher.verifications
    r = await elevate(b)
    assert r.status_code == 429  # even the right password, without being checked
    assert env.hasher.verifications == verifications

    env.clock.advance(901)
    await a.client.get("/me")
    assert (await elevate(a)).status_code == 200


async def test_the_failure_window_is_separate_from_the_grant_window(make_env):
    env = await sudo_env(make_env, SudoConfig(window_seconds=60, failure_window_seconds=3600))
    browser = await sign_in(env)
    assert (await elevate(browser, "wrong")).status_code == 401
    env.clock.advance(600)
    await browser.client.get("/me")
    assert (await elevate(browser, "wrong")).status_code == 401
    env.clock.advance(600)
    await browser.client.get("/me")
    assert (await elevate(browser, "wrong")).status_code == 429  # still counted after 20 min


async def test_success_forgets_earlier_failures(make_env):
    env = await sudo_env(make_env)
    browser = await sign_in(env)
    for _ in range(2):
        assert (await elevate(browser, "wrong")).status_code == 401
    assert (await elevate(browser)).status_code == 200
    for _ in range(2):
        assert (await elevate(browser, "wrong")).status_code == 401


async def test_concurrent_guesses_never_check_more_than_max_attempts(make_env):
    env = await sudo_env(make_env, SudoConfig(rate_limit=None))
    browser = await sign_in(env)
    before = env.hasher.verifications
    results = await asyncio.gather(*(elevate(browser, f"guess {i}") for i in range(12)))
    assert env.hasher.verifications - before <= 3
    assert sorted({r.status_code for r in results}) == [401, 429]


async def test_reauthentication_is_rate_limited(make_env):
    env = await sudo_env(make_env, SudoConfig(rate_limit=RateLimit(2, 60), max_attempts=10))
    browser = await sign_in(env)
    assert (await elevate(browser)).status_code == 200
    assert (await elevate(browser)).status_code == 200
    r = await elevate(browser)
    assert r.status_code == 429
    assert r.headers["x-error-code"] == "rate_limited"


@pytest.mark.redis
async def test_grants_and_lockout_live_in_redis(make_env):
    from tests.conftest import REDIS_TEST_URL

    env = await sudo_env(make_env, redis_url=REDIS_TEST_URL)
    await env.auth.initialize()
    try:
        a, b = await sign_in(env), await sign_in(env)
        assert (await elevate(a)).status_code == 200
        assert (await a.post("/danger")).status_code == 200
        assert (await b.post("/danger")).status_code == 403
        for attempt in range(3):
            r = await elevate(b, f"wrong {attempt}")
        assert r.status_code == 429
        assert (await a.post("/danger")).status_code == 403
    finally:
        await env.auth.shutdown()
