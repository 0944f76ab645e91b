"""The migration guides' examples, driven over HTTP with users as the old systems stored them.

- From crudauth 0.8: rows written without a ``username_key`` and with the 0.8 password format
  (bcrypt over base64(SHA-256)); after the guide's one data step they sign in, by username in
  any case, and their hash becomes argon2id.
- From fastapi-users: its table (UUID ids, emails as typed, ``is_verified``), with the hashes
  its password helper writes (pwdlib's argon2 and bcrypt defaults, the same formats passlib
  wrote), made here with argon2-cffi and bcrypt directly; they sign in through a session and
  through bearer tokens, and are upgraded.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import argon2
import bcrypt
from sqlalchemy import insert, select

from crudauth import verify_password
from tests.test_docs_examples import Loader, load_example, serve

__all__ = ["load_example"]  # the fixture, used by name

OUR_ARGON2 = "$argon2id$v=19$m=19456,t=2,p=1$"


def crudauth_08_hash(password: str) -> str:
    """What crudauth 0.6-0.8 stored: bcrypt (cost 12) over base64(SHA-256(NFKC(password)))."""
    digest = base64.b64encode(hashlib.sha256(password.encode()).digest())
    return bcrypt.hashpw(digest, bcrypt.gensalt(rounds=12)).decode()


def fastapi_users_argon2(password: str) -> str:
    """fastapi-users' default (pwdlib ``Argon2Hasher()``: argon2-cffi's default parameters)."""
    return argon2.PasswordHasher().hash(password)


def fastapi_users_bcrypt(password: str) -> str:
    """fastapi-users' bcrypt (pwdlib ``BcryptHasher()``, passlib before it): ``$2b$12$``."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=12)).decode()


async def stored_hash(example: Any, **where: Any) -> str:
    async with example.SessionLocal() as db:
        user = await db.scalar(select(example.User).filter_by(**where))
        assert user is not None
        return str(user.hashed_password)


# -- from crudauth 0.6-0.8 ---------------------------------------------------------------


async def test_users_of_crudauth_08_sign_in_and_are_upgraded(load_example: Loader) -> None:
    example = load_example("migrate_from_crudauth")
    async with serve(example, base_url="https://testserver") as new_client:
        async with example.SessionLocal() as db:
            # As 0.8 wrote them: no username_key (a bulk insert skips the ORM listener).
            await db.execute(
                insert(example.User),
                [
                    {
                        "username": "Alice",
                        "email": "alice@example.com",
                        "hashed_password": crudauth_08_hash("old password of alice"),
                    },
                    {
                        "username": "bob",
                        "email": "bob@example.com",
                        "hashed_password": crudauth_08_hash("old password of bob"),
                    },
                ],
            )
            await db.commit()
            assert await example.fill_username_keys(db) == 2
            assert await example.fill_username_keys(db) == 0  # once is enough

        client = new_client()
        r = await client.post(
            "/login", data={"username": "ALICE", "password": "old password of alice"}
        )
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"id", "username", "csrf_token"}  # the 0.8 body
        assert (await client.get("/dashboard")).json() == {"hello": "Alice"}
        upgraded = await stored_hash(example, username="Alice")
        assert upgraded.startswith(OUR_ARGON2)
        assert verify_password("old password of alice", upgraded)

        wrong = new_client()
        r = await wrong.post("/login", data={"username": "bob", "password": "not it"})
        assert r.status_code == 401
        assert r.json() == {"detail": "Incorrect username or password"}
        assert (await stored_hash(example, username="bob")).startswith("$2b$12$")

        # The kept knob: a week of absolute lifetime instead of the 12-hour default.
        (transport,) = example.auth.transports
        assert transport.settings.absolute_timeout == 7 * 24 * 3600


# -- from fastapi-users --------------------------------------------------------------------


async def _plant_fastapi_users(example: Any) -> None:
    async with example.SessionLocal() as db:
        db.add_all(
            [
                example.User(
                    email="Carol.Argon@Example.com",
                    hashed_password=fastapi_users_argon2("carol's password 1"),
                    is_verified=True,
                ),
                example.User(
                    email="Dave.Bcrypt@Example.com",
                    hashed_password=fastapi_users_bcrypt("dave's password 2"),
                    is_superuser=True,
                ),
            ]
        )
        await db.commit()
        assert await example.lower_case_emails(db) == 2


async def test_fastapi_users_hashes_sign_in_with_a_session_and_are_upgraded(
    load_example: Loader,
) -> None:
    example = load_example("migrate_from_fastapi_users")
    async with serve(example, base_url="https://testserver") as new_client:
        await _plant_fastapi_users(example)
        for email, password, kind in (
            ("carol.argon@example.com", "carol's password 1", "$argon2id$v=19$m=65536,t=3,p=4$"),
            ("dave.bcrypt@example.com", "dave's password 2", "$2b$12$"),
        ):
            assert (await stored_hash(example, email=email)).startswith(kind)
            client = new_client()
            typed = email.upper()  # any case, as fastapi-users allowed
            r = await client.post("/auth/login", data={"username": typed, "password": password})
            assert r.status_code == 200, r.text
            assert (await client.get("/protected")).json() == {"hello": email}
            upgraded = await stored_hash(example, email=email)
            assert upgraded.startswith(OUR_ARGON2), upgraded
            assert verify_password(password, upgraded)

        client = new_client()
        r = await client.post(
            "/auth/login", data={"username": "carol.argon@example.com", "password": "wrong"}
        )
        assert r.status_code == 401


async def test_fastapi_users_accounts_get_bearer_tokens_and_the_same_gates(
    load_example: Loader,
) -> None:
    example = load_example("migrate_from_fastapi_users")
    async with serve(example, base_url="https://testserver") as new_client:
        await _plant_fastapi_users(example)
        client = new_client()

        async def token(email: str, password: str) -> dict[str, Any]:
            r = await client.post("/auth/token", data={"username": email, "password": password})
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        carol = await token("carol.argon@example.com", "carol's password 1")
        dave = await token("dave.bcrypt@example.com", "dave's password 2")
        assert (await stored_hash(example, email="dave.bcrypt@example.com")).startswith(OUR_ARGON2)

        def bearer(tokens: dict[str, Any]) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens['access_token']}"}

        r = await client.get("/protected", headers=bearer(carol))
        assert r.json() == {"hello": "carol.argon@example.com"}
        assert (await client.get("/admin", headers=bearer(carol))).status_code == 403
        assert (await client.get("/admin", headers=bearer(dave))).json() == {"admin": True}
        assert (await client.get("/auth/me", headers=bearer(carol))).json()["via"] == "bearer"

        # Unlike fastapi-users' JWT strategy, refresh tokens rotate and a replay ends them.
        spent = carol["refresh_token"]
        r = await client.post("/auth/refresh", json={"refresh_token": spent})
        assert r.status_code == 200, r.text
        fresh = r.json()["refresh_token"]
        assert fresh != spent
        assert (
            await client.post("/auth/refresh", json={"refresh_token": spent})
        ).status_code == 401
        assert (
            await client.post("/auth/refresh", json={"refresh_token": fresh})
        ).status_code == 401


async def test_register_takes_fastapi_users_body(load_example: Loader) -> None:
    example = load_example("migrate_from_fastapi_users")
    async with serve(example, base_url="https://testserver") as new_client:
        client = new_client()
        r = await client.post(
            "/auth/register", json={"email": "Erin@Example.com", "password": "erin's password 3"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["email"] == "erin@example.com"
        assert (await stored_hash(example, email="erin@example.com")).startswith(OUR_ARGON2)
