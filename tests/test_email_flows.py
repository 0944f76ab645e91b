"""Recovery flows over HTTP: verify, reset and change, with their single-use tokens."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from crudauth import AuthHooks
from tests.conftest import User
from tests.email_support import (
    FRONTEND,
    NEW_PASSWORD,
    PASSWORD,
    Outbox,
    device,
    email_config,
    sign_in,
    signup,
)

USED = {"detail": "Token already used"}
INVALID = {"detail": "Invalid or expired token"}


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


async def _user(env: Any, name: str = "alice") -> User:
    async with env.sessionmaker() as db:
        return (await db.execute(select(User).where(User.username == name))).scalar_one()


async def _reset_token(env: Any, outbox: Outbox, email: str = "alice@example.com") -> str:
    r = await env.client.post("/password/reset-request", json={"email": email})
    assert r.status_code == 200, r.text
    return outbox.last_token("reset_password")


async def test_register_answers_202_and_sends_a_verification_link(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    r = await signup(env.client)
    assert r.status_code == 202
    assert r.json() == {
        "detail": "If the email is available, check your inbox to finish signing up."
    }
    [mail] = outbox.of("verify_email")
    assert mail["to"] == "alice@example.com"
    assert mail["ctx"].link.startswith(f"{FRONTEND}/verify-email?token=")
    assert mail["body"].endswith(mail["ctx"].link)
    token = outbox.last_token("verify_email")
    assert token not in repr(vars(mail["ctx"])).replace(mail["ctx"].link, "")

    r = await env.client.post("/email/verify-confirm", json={"token": token})
    assert r.status_code == 200 and r.json() == {"detail": "Verified successfully."}
    assert (await _user(env)).email_verified is True
    replay = await env.client.post("/email/verify-confirm", json={"token": token})
    assert replay.status_code == 400 and replay.json() == USED


async def test_verify_hook_fires_once_and_never_sees_the_hash(make_env, outbox):
    seen: list[dict[str, Any]] = []
    hooks = AuthHooks(on_after_recovery_verified=lambda user, **_: seen.append(user))
    env = await make_env(email=email_config(outbox), hooks=hooks)
    await signup(env.client)
    first = outbox.last_token("verify_email")
    await env.client.post("/email/verify-request", json={"email": "alice@example.com"})
    assert len(outbox.of("verify_email")) == 2  # unverified: a fresh link replaces the first
    stale = await env.client.post("/email/verify-confirm", json={"token": first})
    assert stale.status_code == 400 and stale.json() == INVALID
    latest = outbox.last_token("verify_email")
    assert (await env.client.post("/email/verify-confirm", json={"token": latest})).is_success
    assert len(seen) == 1 and "hashed_password" not in seen[0]
    await env.client.post("/email/verify-request", json={"email": "alice@example.com"})
    assert len(outbox.of("verify_email")) == 2  # verified now: nothing is sent


async def test_reset_changes_the_password_ends_sessions_and_clears_the_lockout(make_env, outbox):
    reset_users: list[dict[str, Any]] = []
    hooks = AuthHooks(on_after_password_reset=lambda user, **_: reset_users.append(user))
    env = await make_env(email=email_config(outbox), hooks=hooks, trusted_proxy_hops=1)
    await signup(env.client)
    browser = device(env.app)
    assert (await sign_in(browser)).status_code == 200
    assert (await browser.get("/private")).status_code == 200
    for i in range(6):  # one guess each from many addresses: the identifier locks
        await env.client.post(
            "/login",
            data={"username": "alice", "password": "nope nope"},
            headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
        )
    env.client.cookies.clear()
    assert (await sign_in(env.client)).status_code == 429

    token = await _reset_token(env, outbox)
    r = await env.client.post(
        "/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 200 and r.json() == {"detail": "Password reset successfully."}
    assert (await _user(env)).token_version == 1
    assert (await browser.get("/private")).status_code == 401
    await browser.aclose()
    assert await env.auth.sessions.list_for_user((await _user(env)).id) == []
    env.client.cookies.clear()
    assert (await sign_in(env.client, password=PASSWORD)).status_code == 401
    assert (await sign_in(env.client, password=NEW_PASSWORD)).status_code == 200
    assert len(reset_users) == 1 and "hashed_password" not in reset_users[0]

    replay = await env.client.post(
        "/password/reset-confirm", json={"token": token, "new_password": "yet another one 1"}
    )
    assert replay.status_code == 400 and replay.json() == USED


async def test_policy_failure_is_422_and_spends_nothing(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    token = await _reset_token(env, outbox)
    weak = await env.client.post(
        "/password/reset-confirm", json={"token": token, "new_password": "short"}
    )
    assert weak.status_code == 422
    ok = await env.client.post(
        "/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert ok.status_code == 200


async def test_a_token_for_one_purpose_is_refused_for_another(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    verify = outbox.last_token("verify_email")
    reset = await _reset_token(env, outbox)
    r = await env.client.post(
        "/password/reset-confirm", json={"token": verify, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 400 and r.json() == INVALID
    r = await env.client.post("/email/verify-confirm", json={"token": reset})
    assert r.status_code == 400 and r.json() == INVALID
    r = await env.client.post("/email/change-confirm", json={"token": reset})
    assert r.status_code == 400 and r.json() == INVALID


async def test_tokens_expire_and_forgeries_fail(make_env, outbox):
    env = await make_env(email=email_config(outbox, reset_ttl=600))
    await signup(env.client)
    token = await _reset_token(env, outbox)
    body, _, sig = token.rpartition(".")
    for bad in (body + "." + sig[::-1], "garbage", "a.b", token + "x"):
        r = await env.client.post(
            "/password/reset-confirm", json={"token": bad, "new_password": NEW_PASSWORD}
        )
        assert r.status_code == 400 and r.json() == INVALID
    env.clock.advance(601)
    r = await env.client.post(
        "/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 400 and r.json() == INVALID


async def test_a_newer_reset_link_supersedes_the_older_one(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    older = await _reset_token(env, outbox)
    newer = await _reset_token(env, outbox)
    r = await env.client.post(
        "/password/reset-confirm", json={"token": older, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 400 and r.json() == INVALID
    r = await env.client.post(
        "/password/reset-confirm", json={"token": newer, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 200


async def test_a_reset_token_dies_when_the_password_or_email_changes(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    token = await _reset_token(env, outbox)
    async with env.sessionmaker() as db:
        user = await db.get(User, (await _user(env)).id)
        user.hashed_password = env.auth.runtime.hasher.hash("changed elsewhere 1")
        await db.commit()
    r = await env.client.post(
        "/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 400 and r.json() == INVALID

    token = await _reset_token(env, outbox)
    async with env.sessionmaker() as db:
        user = await db.get(User, (await _user(env)).id)
        user.email = "alice.new@example.com"
        await db.commit()
    r = await env.client.post(
        "/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 400 and r.json() == INVALID


async def test_a_failed_commit_keeps_the_old_password_and_the_token(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    token = await _reset_token(env, outbox)
    failures = {"left": 1}

    async def flaky_session():
        async with env.sessionmaker() as db:
            real_commit = db.commit

            async def commit() -> None:
                if failures["left"]:
                    failures["left"] -= 1
                    raise OperationalError("COMMIT", {}, ConnectionError("database went away"))
                await real_commit()

            db.commit = commit  # type: ignore[method-assign]
            yield db

    env.app.dependency_overrides[env.auth.session] = flaky_session
    r = await env.client.post(
        "/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 503
    assert r.json() == {"detail": "The change could not be saved. Try again."}
    assert (await sign_in(env.client, password=PASSWORD)).status_code == 200
    assert (await _user(env)).token_version == 0

    r = await env.client.post(
        "/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 200, r.text
    env.client.cookies.clear()
    assert (await sign_in(env.client, password=NEW_PASSWORD)).status_code == 200


async def test_redirect_to_is_echoed_only_when_it_is_a_same_origin_path(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    for sent, echoed in (("/dashboard?tab=1", "/dashboard?tab=1"), ("//evil.example", None)):
        await env.client.post(
            "/password/reset-request", json={"email": "alice@example.com", "redirect_to": sent}
        )
        token = outbox.last_token("reset_password")
        r = await env.client.post(
            "/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD + sent}
        )
        assert r.status_code == 200
        assert r.json().get("redirect_to") == echoed


async def test_links_ignore_the_host_header(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    await env.client.post(
        "/password/reset-request",
        json={"email": "alice@example.com"},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    link = outbox.of("reset_password")[-1]["ctx"].link
    assert link.startswith(f"{FRONTEND}/reset-password?token=") and "evil" not in link
