"""Email change: confirm via the new address, bump the epoch, keep only the asking session."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crudauth import AuthHooks
from crudauth.errors import InvalidRequest
from crudauth.ratelimit import LockoutConfig, RateLimit
from tests.conftest import User
from tests.email_support import (
    NEW_PASSWORD,
    PASSWORD,
    Outbox,
    device,
    email_config,
    sign_in,
    signup,
)

INVALID = {"detail": "Invalid or expired token"}
SENT = {"detail": "If the address is available, a confirmation email has been sent."}


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


async def _user(env: Any, name: str = "alice") -> User:
    async with env.sessionmaker() as db:
        return (await db.execute(select(User).where(User.username == name))).scalar_one()


async def _signed_in(env: Any, name: str = "alice") -> dict[str, str]:
    r = await sign_in(env.client, name)
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


async def _ask(env: Any, csrf: dict[str, str], new_email: str, password: str = PASSWORD) -> Any:
    return await env.client.post(
        "/email/change-request",
        json={"new_email": new_email, "password": password},
        headers=csrf,
    )


async def test_change_confirms_through_the_new_address_and_tells_the_old(make_env, outbox):
    changed: list[dict[str, Any]] = []
    hooks = AuthHooks(on_after_email_changed=lambda user, **_: changed.append(user))
    env = await make_env(email=email_config(outbox), hooks=hooks)
    await signup(env.client)
    await signup(env.client, "bob")
    other = device(env.app)
    assert (await sign_in(other)).status_code == 200
    csrf = await _signed_in(env)

    r = await _ask(env, csrf, "Alice.New@Example.com")
    assert r.status_code == 200 and r.json() == SENT
    [mail] = outbox.of("change_email")
    assert mail["to"] == "alice.new@example.com"
    assert mail["ctx"].link.startswith("https://app.example.com/confirm-email-change?token=")
    assert (await _user(env)).email == "alice@example.com"  # nothing changes before confirming

    token = outbox.last_token("change_email")
    r = await env.client.post("/email/change-confirm", json={"token": token})
    assert r.status_code == 200 and r.json() == {"detail": "Email changed successfully."}
    user = await _user(env)
    assert (user.email, user.email_verified, user.token_version) == (
        "alice.new@example.com",
        True,
        1,
    )
    [notice] = outbox.of("email_changed")
    assert notice["to"] == "alice@example.com" and notice["ctx"].link is None
    assert "alice.new" not in notice["body"]
    assert len(changed) == 1 and "hashed_password" not in changed[0]
    # The session that asked survives the epoch bump; the other device is signed out.
    assert (await env.client.get("/private")).status_code == 200
    assert (await other.get("/private")).status_code == 401
    await other.aclose()
    replay = await env.client.post("/email/change-confirm", json={"token": token})
    assert replay.status_code == 400 and replay.json() == {"detail": "Token already used"}


async def test_wrong_password_same_address_and_anonymous_callers(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    anonymous = await env.client.post(
        "/email/change-request", json={"new_email": "x@example.com", "password": PASSWORD}
    )
    assert anonymous.status_code == 401
    csrf = await _signed_in(env)
    r = await _ask(env, csrf, "x@example.com", password="wrong password")
    assert r.status_code == 400 and r.json() == {"detail": "Incorrect password"}
    r = await _ask(env, csrf, "ALICE@example.com")
    assert r.status_code == 400 and r.json() == {"detail": "New email matches current email"}
    r = await _ask(env, csrf, "a" * 400 + "@example.com")
    assert r.status_code == 422
    assert outbox.of("change_email") == []


async def test_a_taken_address_gets_the_same_answer_and_no_mail(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    await signup(env.client, "bob")
    csrf = await _signed_in(env)
    taken = await _ask(env, csrf, "bob@example.com")
    free = await _ask(env, csrf, "free@example.com")
    assert taken.status_code == free.status_code == 200
    assert taken.json() == free.json() == SENT
    assert [m["to"] for m in outbox.of("change_email")] == ["free@example.com"]


async def test_an_address_taken_before_confirming_is_refused_and_the_token_kept(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    csrf = await _signed_in(env)
    await _ask(env, csrf, "wanted@example.com")
    token = outbox.last_token("change_email")
    async with env.sessionmaker() as db:
        bob = User(username="bob", email="wanted@example.com", hashed_password="!x")
        db.add(bob)
        await db.commit()
    r = await env.client.post("/email/change-confirm", json={"token": token})
    assert r.status_code == 422 and r.json() == {"detail": "Email already in use"}
    assert (await _user(env)).email == "alice@example.com"


async def test_the_change_race_a_token_for_a_never_sets_b(make_env, outbox):
    """SECURITY.md S4: change to A, concurrently to B; A's token can never set B."""
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    csrf = await _signed_in(env)
    await asyncio.gather(_ask(env, csrf, "a@example.com"), _ask(env, csrf, "b@example.com"))
    tokens = {m["to"]: m["ctx"].link.split("token=")[1] for m in outbox.of("change_email")}
    answers = await asyncio.gather(
        *(env.client.post("/email/change-confirm", json={"token": t}) for t in tokens.values())
    )
    assert sorted(a.status_code for a in answers) == [200, 400]
    winner = next(addr for addr, a in zip(tokens, answers, strict=True) if a.status_code == 200)
    assert (await _user(env)).email == winner  # only the newest request's address can win
    for token in tokens.values():  # and nothing can change it again
        r = await env.client.post("/email/change-confirm", json={"token": token})
        assert r.status_code == 400


async def test_a_change_token_dies_after_a_password_reset(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    csrf = await _signed_in(env)
    await _ask(env, csrf, "later@example.com")
    change = outbox.last_token("change_email")
    await env.client.post("/password/reset-request", json={"email": "alice@example.com"})
    reset = outbox.last_token("reset_password")
    r = await env.client.post(
        "/password/reset-confirm", json={"token": reset, "new_password": NEW_PASSWORD}
    )
    assert r.status_code == 200
    r = await env.client.post("/email/change-confirm", json={"token": change})
    assert r.status_code == 400 and r.json() == INVALID
    assert (await _user(env)).email == "alice@example.com"


async def test_change_password_checks_count_toward_the_lockout(make_env, outbox):
    limits = {"email_change_request": RateLimit(100, 3600)}
    env = await make_env(email=email_config(outbox), rate_limits=limits)
    await signup(env.client)
    csrf = await _signed_in(env)
    codes = [(await _ask(env, csrf, "x@example.com", "wrong")).status_code for _ in range(7)]
    assert codes[:5] == [400] * 5 and codes[5:] == [429, 429]
    # Even the right password waits for the lock now.
    assert (await _ask(env, csrf, "x@example.com")).status_code == 429


async def test_change_requests_are_throttled_per_address(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    csrf = await _signed_in(env)
    codes = [(await _ask(env, csrf, f"n{i}@example.com")).status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]


async def test_the_password_check_of_an_email_change_is_the_sign_in_check(make_env, outbox):
    """Guessing through the username locks the account, whatever identifier the check of the
    email change names it by; its owner, signed in, is told of that lock before any hashing,
    exactly as /change-password tells her: one password check for every route asking for one."""
    env = await make_env(
        email=email_config(outbox),
        lockout=LockoutConfig(max_attempts=3, device_cookie=False),
        trusted_proxy_hops=1,
    )
    await signup(env.client)
    csrf = await _signed_in(env)
    guesser = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.app), base_url="http://testserver"
    )
    for i in range(3):  # from addresses of its own: the owner's address stays unlocked
        r = await guesser.post(
            "/login",
            data={"username": "alice", "password": "guess"},
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )
        assert r.status_code == 401
    verifications = env.hasher.verifications

    r = await _ask(env, csrf, "alice.new@example.com")

    assert r.status_code == 429, r.text
    assert env.hasher.verifications == verifications
    assert outbox.of("change_email") == []


async def test_the_service_checks_the_password_of_an_email_change_without_a_request(
    make_env, outbox
):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    emails = env.auth.emails
    assert emails is not None
    async with env.sessionmaker() as db:
        user = (await db.execute(select(User))).scalar_one()
        with pytest.raises(InvalidRequest) as refused:
            await emails.request_email_change(
                db, user, "x@example.com", "wrong password", client_ip="192.0.2.7"
            )
        assert refused.value.code == "incorrect_password"
        await emails.request_email_change(db, user, "x@example.com", PASSWORD)
    assert [m["to"] for m in outbox.of("change_email")] == ["x@example.com"]
