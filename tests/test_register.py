"""``POST /register``: bodies, duplicates, identifier hygiene, gated fields; login by either id."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select

from tests.conftest import User, login, register


async def user_count(env: Any) -> int:
    async with env.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(User)) or 0)


async def test_register_returns_the_new_account(make_env):
    env = await make_env()

    r = await register(env.client)

    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "email", "username"}
    assert isinstance(body["id"], int)
    assert body["email"] == "alice@example.com"
    assert body["username"] == "alice"
    assert "password" not in r.text
    assert await user_count(env) == 1


async def test_register_stores_the_email_lower_cased(make_env):
    env = await make_env()

    r = await register(env.client, email="Alice@Example.COM")

    assert r.status_code == 200, r.text
    assert r.json()["email"] == "alice@example.com"


async def test_duplicate_username_is_refused(make_env):
    env = await make_env()
    await register(env.client)

    r = await register(env.client, email="other@example.com")

    assert r.status_code == 422
    assert r.json() == {"detail": "Username already taken"}
    assert await user_count(env) == 1


async def test_usernames_are_unique_case_insensitively(make_env):
    env = await make_env()
    await register(env.client, username="alice")

    r = await register(env.client, username="Alice", email="other@example.com")

    assert r.status_code == 422
    assert r.json() == {"detail": "Username already taken"}
    assert await user_count(env) == 1


async def test_usernames_are_unique_after_nfkc(make_env):
    env = await make_env()
    r = await register(env.client, username="iamthe\u03a9", email="greek@example.com")
    assert r.status_code == 200, r.text

    r = await register(env.client, username="iamthe\u2126", email="ohm@example.com")  # OHM SIGN

    assert r.status_code == 422, r.text
    assert r.json() == {"detail": "Username already taken"}
    assert await user_count(env) == 1


async def test_non_ascii_usernames_are_unique_case_insensitively(make_env):
    env = await make_env()
    await register(env.client, username="\u00c9mile", email="emile@example.com")

    r = await register(env.client, username="\u00e9mile", email="other@example.com")

    assert r.status_code == 422, r.text
    assert r.json() == {"detail": "Username already taken"}
    assert await user_count(env) == 1


async def test_fullwidth_username_collides_with_ascii(make_env):
    env = await make_env()
    await register(env.client, username="alice")

    r = await register(env.client, username="\uff41\uff4c\uff49\uff43\uff45", email="o@example.com")

    assert r.status_code == 422, r.text
    assert r.json() == {"detail": "Username already taken"}


async def test_duplicate_email_is_refused_case_insensitively(make_env):
    env = await make_env()
    await register(env.client)

    for email in ("alice@example.com", "ALICE@Example.com", " alice@example.com"):
        r = await register(env.client, username="another", email=email)
        assert r.status_code == 422, (email, r.text)
        assert r.json() == {"detail": "Email already registered"}
    assert await user_count(env) == 1


async def test_password_policy_failure_is_a_validation_list(make_env):
    env = await make_env()

    r = await register(env.client, password="short")

    assert r.status_code == 422
    errors = r.json()["detail"]
    assert isinstance(errors, list)
    assert any(
        e["type"] == "string_too_short" and e["loc"] == ["body", "password"] for e in errors
    ), errors
    assert env.hasher.hashes == 0
    assert await user_count(env) == 0


async def test_eight_character_password_meets_the_default_policy(make_env):
    env = await make_env()

    r = await register(env.client, password="12345678")

    assert r.status_code == 200, r.text


async def test_overlong_username_is_refused_quickly(make_env):
    env = await make_env()

    started = time.perf_counter()
    r = await register(env.client, username="a" * 1_000_000)
    elapsed = time.perf_counter() - started

    assert r.status_code == 413  # the body is over crudauth's limit, unparsed
    assert elapsed < 2.0
    assert env.hasher.hashes == 0
    assert await user_count(env) == 0


async def test_username_longer_than_the_column_is_refused(make_env):
    env = await make_env()

    r = await register(env.client, username="a" * 65)

    assert r.status_code == 422
    errors = r.json()["detail"]
    assert errors[0]["type"] == "string_too_long"
    assert errors[0]["loc"] == ["body", "username"]
    assert (await register(env.client, username="a" * 64)).status_code == 200


async def test_overlong_email_is_refused(make_env):
    env = await make_env()

    r = await register(env.client, email="a" * 1_000_000 + "@example.com")

    assert r.status_code == 413  # the body is over crudauth's limit, unparsed
    assert env.hasher.hashes == 0


async def test_username_with_bidi_override_is_refused(make_env):
    env = await make_env()

    for name in ("admin\u202eresu", "ali\u200bce", "bob\u0000"):
        r = await register(env.client, username=name, email="x@example.com")
        assert r.status_code == 422, (name, r.text)
    assert await user_count(env) == 0


async def test_privileged_fields_in_the_body_are_ignored(make_env):
    env = await make_env()

    r = await env.client.post(
        "/register",
        json={
            "username": "mallory",
            "email": "mallory@example.com",
            "password": "correct horse battery",
            "is_superuser": True,
            "email_verified": True,
            "is_active": False,
            "token_version": 99,
            "hashed_password": "!planted",
            "id": 4242,
        },
    )

    assert r.status_code == 200, r.text
    assert r.json()["id"] != 4242
    async with env.sessionmaker() as db:
        user = await db.scalar(select(User).where(User.username == "mallory"))
    assert user is not None
    assert user.is_superuser is False
    assert user.email_verified is False
    assert user.is_active is True
    assert user.token_version == 0
    assert user.hashed_password.startswith("$argon2id$")
    r = await login(env.client, username="mallory")
    assert r.status_code == 200, r.text
    assert (await env.client.get("/me")).json()["is_superuser"] is False


async def test_login_by_username_or_email_in_any_case(make_env):
    env = await make_env()
    user_id = (await register(env.client, email="Alice@Example.com")).json()["id"]

    for identifier in ("alice", "ALICE", "Alice", "alice@example.com", "Alice@Example.com"):
        env.client.cookies.clear()
        r = await login(env.client, username=identifier)
        assert r.status_code == 200, (identifier, r.text)
        assert r.json()["id"] == user_id
        assert (await env.client.get("/me")).json()["user_id"] == user_id


async def test_non_ascii_username_logs_in_as_registered(make_env):
    env = await make_env()
    await register(env.client, username="\u00c9mile", email="emile@example.com")

    for identifier in ("\u00c9mile", "\u00e9mile", "E\u0301mile"):  # composed, lower, decomposed
        env.client.cookies.clear()
        r = await login(env.client, username=identifier)
        assert r.status_code == 200, (identifier, r.text)


async def test_login_with_nfkc_equivalent_username(make_env):
    env = await make_env()
    await register(env.client, username="iamthe\u03a9", email="greek@example.com")

    r = await login(env.client, username="IAMTHE\u2126")

    assert r.status_code == 200, r.text


async def test_registered_user_can_log_in_and_see_me(make_env):
    env = await make_env()
    registered = (await register(env.client)).json()

    assert (await login(env.client)).status_code == 200
    r = await env.client.get("/me")

    assert r.status_code == 200, r.text
    assert r.json() == {
        "user_id": registered["id"],
        "username": "alice",
        "email": "alice@example.com",
        "is_superuser": False,
        "scopes": [],
        "via": "session",
    }
