"""/change-password and /set-password over HTTP: transactional, lockout-bound, session-aware."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth import AuthHooks, PasswordPolicy, make_unusable_password
from crudauth.ratelimit import LockoutConfig
from tests.account_support import PASSWORD, Browser, sign_in
from tests.conftest import User, login, register

NEW = "a brand new passphrase"


async def change(browser: Browser, current: str = PASSWORD, new: str = NEW) -> httpx.Response:
    return await browser.post(
        "/change-password", json={"current_password": current, "new_password": new}
    )


async def stored(env: Any, username: str = "alice") -> User:
    async with env.sessionmaker() as db:
        return (await db.scalars(select(User).where(User.username == username))).one()


async def test_change_password_rebinds_this_session_and_ends_the_others(make_env):
    events: list[tuple[dict[str, Any], Any]] = []
    env = await make_env(
        hooks=AuthHooks(
            on_after_password_changed=lambda u, *, db, context: events.append((u, context))
        )
    )
    await register(env.client)
    here, there = await sign_in(env), await sign_in(env)

    r = await change(here)

    assert r.status_code == 200, r.text
    assert r.json() == {"detail": "Password changed."}
    assert (await here.client.get("/me")).status_code == 200  # rebound to the new epoch
    assert (await here.post("/private")).status_code == 200
    assert (await there.client.get("/me")).status_code == 401  # every other session ended
    assert (await stored(env)).token_version == 1
    assert (await login(httpx_client(env), password=PASSWORD)).status_code == 401
    assert (await login(httpx_client(env), password=NEW)).status_code == 200
    [(user, context)] = events
    assert "hashed_password" not in user and user["username"] == "alice"
    assert context.session_handle is not None


def httpx_client(env: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app), base_url="http://t")


async def test_wrong_current_password_is_401_and_changes_nothing(make_env):
    env = await make_env()
    await register(env.client)
    browser = await sign_in(env)
    before = (await stored(env)).hashed_password

    r = await change(browser, current="not my password")

    assert (r.status_code, r.json()["detail"]) == (401, "Current password is incorrect.")
    assert (await stored(env)).hashed_password == before
    assert (await browser.client.get("/me")).status_code == 200  # still signed in


async def test_current_password_checks_share_the_login_lockout(make_env):
    env = await make_env(lockout=LockoutConfig(max_attempts=3, device_cookie=False))
    await register(env.client)
    browser = await sign_in(env)
    for _ in range(3):
        assert (await change(browser, current="guess")).status_code == 401
    verifications = env.hasher.verifications

    r = await change(browser)  # even the right password: the identifier is locked

    assert r.status_code == 429
    assert "retry-after" in r.headers
    assert env.hasher.verifications == verifications  # refused before any hashing
    assert (await login(httpx_client(env))).status_code == 429  # the same lock as /login


async def test_a_signed_in_owner_is_told_of_an_account_lock_set_through_another_identifier(
    make_env,
):
    """Guessing through the username locks the account (the password check of
    /change-password names it by its email); its owner, signed in, gets the 429 (she knows her
    own account), not a misleading "current password is incorrect"."""
    env = await make_env(
        lockout=LockoutConfig(max_attempts=3, device_cookie=False), trusted_proxy_hops=1
    )
    await register(env.client)
    browser = await sign_in(env)
    guesser = httpx_client(env)
    for i in range(3):  # from addresses of its own: the owner's address stays unlocked
        r = await guesser.post(
            "/login",
            data={"username": "alice", "password": "guess"},
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )
        assert r.status_code == 401
    verifications = env.hasher.verifications

    r = await change(browser)

    assert r.status_code == 429, r.text
    assert env.hasher.verifications == verifications


async def test_change_password_needs_the_csrf_header(make_env):
    env = await make_env()
    await register(env.client)
    browser = await sign_in(env)
    r = await browser.client.post(
        "/change-password", json={"current_password": PASSWORD, "new_password": NEW}
    )
    assert (r.status_code, r.json()["detail"]) == (403, "Missing CSRF token")


async def test_new_password_goes_through_the_policy(make_env):
    env = await make_env(password_policy=PasswordPolicy(min_length=12))
    await register(env.client, password="a long enough one")
    browser = await sign_in(env, password="a long enough one")
    hashes = env.hasher.hashes

    r = await change(browser, current="a long enough one", new="short")

    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "new_password"]
    assert env.hasher.hashes == hashes


async def test_an_account_without_a_password_cannot_change_it(make_env):
    env = await make_env()
    await register(env.client)
    browser = await sign_in(env)
    async with env.sessionmaker() as db:
        await db.execute(update(User).values(hashed_password=make_unusable_password()))
        await db.commit()
    r = await change(browser)
    assert r.status_code == 400


async def test_a_failed_commit_keeps_the_old_password_and_every_session(make_env, monkeypatch):
    env = await make_env()
    await register(env.client)
    here, there = await sign_in(env), await sign_in(env)

    async def broken_commit(self: AsyncSession) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(AsyncSession, "commit", broken_commit)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.app, raise_app_exceptions=False),
        base_url="http://testserver",
        cookies=here.client.cookies,
    )
    r = await client.post(
        "/change-password",
        json={"current_password": PASSWORD, "new_password": NEW},
        headers={"X-CSRF-Token": here.csrf},
    )
    monkeypatch.undo()

    assert r.status_code == 500
    user = await stored(env)
    assert user.token_version == 0
    assert (await here.client.get("/me")).status_code == 200
    assert (await there.client.get("/me")).status_code == 200
    assert (await login(httpx_client(env), password=PASSWORD)).status_code == 200
    assert (await login(httpx_client(env), password=NEW)).status_code == 401


async def test_change_password_with_a_bearer_token_ends_every_session(make_env):
    from crudauth import BearerTransport, SessionTransport

    env = await make_env(transports=[SessionTransport, BearerTransport])
    await register(env.client)
    browser = await sign_in(env)
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    token = r.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    bearer = httpx_client(env)

    r = await bearer.post(
        "/change-password",
        json={"current_password": PASSWORD, "new_password": NEW},
        headers=headers,
    )

    assert r.status_code == 200, r.text
    assert (await browser.client.get("/me")).status_code == 401
    assert (await bearer.get("/me", headers=headers)).status_code == 401  # epoch bumped


# -- /set-password ----------------------------------------------------------------------------


async def make_passwordless(env: Any) -> None:
    async with env.sessionmaker() as db:
        await db.execute(update(User).values(hashed_password=make_unusable_password()))
        await db.commit()


async def test_set_password_right_after_sign_in(make_env):
    env = await make_env()
    await register(env.client)
    browser = await sign_in(env)
    await make_passwordless(env)  # as if the account came from OAuth

    r = await browser.post("/set-password", json={"new_password": NEW})

    assert (r.status_code, r.json()) == (200, {"detail": "Password set."})
    assert (await stored(env)).token_version == 0  # no epoch bump
    assert (await browser.client.get("/me")).status_code == 200
    assert (await login(httpx_client(env), password=NEW)).status_code == 200


async def test_set_password_refuses_a_stale_sign_in(make_env):
    env = await make_env(fresh_sign_in_seconds=600)
    await register(env.client)
    browser = await sign_in(env)
    await make_passwordless(env)
    env.clock.advance(601)
    await browser.client.get("/me")  # keep the session alive past the freshness window

    r = await browser.post("/set-password", json={"new_password": NEW})

    assert (r.status_code, r.json()["detail"]) == (403, "Sign in again to continue.")
    assert r.headers["x-error-code"] == "fresh_sign_in_required"


async def test_set_password_is_400_when_a_password_exists(make_env):
    env = await make_env()
    await register(env.client)
    browser = await sign_in(env)
    r = await browser.post("/set-password", json={"new_password": NEW})
    assert r.status_code == 400


@pytest.mark.parametrize("seconds", [0])
async def test_fresh_sign_in_seconds_zero_closes_set_password(make_env, seconds):
    env = await make_env(fresh_sign_in_seconds=seconds)
    await register(env.client)
    browser = await sign_in(env)
    await make_passwordless(env)
    r = await browser.post("/set-password", json={"new_password": NEW})
    assert r.status_code == 403


async def test_set_password_with_a_bearer_token_is_never_fresh(make_env):
    from crudauth import BearerTransport, SessionTransport

    env = await make_env(transports=[SessionTransport, BearerTransport])
    await register(env.client)
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    await make_passwordless(env)
    r = await httpx_client(env).post("/set-password", json={"new_password": NEW}, headers=headers)
    assert (r.status_code, r.json()["detail"]) == (403, "Sign in again to continue.")


# -- the opt-in validators ----------------------------------------------------------------------


def test_the_bundled_list_holds_at_least_3000_common_passwords():
    from crudauth.policy import common_passwords

    words = common_passwords()
    assert len(words) >= 3000
    assert {"password", "123456", "qwerty", "iloveyou", "1q2w3e4r5t6y"} <= words


async def test_common_and_context_validators_over_http(make_env):
    from crudauth import common_password_validator, context_words_validator

    env = await make_env(
        password_policy=PasswordPolicy(
            validators=[
                common_password_validator(["acme-rocks"]),
                context_words_validator(["acme"]),
            ]
        )
    )
    for password, reason in (
        ("PassWord1", "This password is too common"),  # case is ignored
        ("ACME-rocks", "This password is too common"),
        ("i-love-acme-a-lot", "This password is too close to your account details"),
        ("xx-ALICE-xx-yy", "This password is too close to your account details"),
        ("alice.smith!!", "This password is too close to your account details"),
    ):
        r = await register(env.client, email="alice.smith@example.com", password=password)
        assert r.status_code == 422, password
        assert r.json()["detail"][0]["msg"] == reason
    assert (await register(env.client, password="correct horse battery")).status_code == 200
    browser = await sign_in(env)
    r = await change(browser, new="1qaz2wsx3edc")
    assert r.status_code == 422
