"""``CRUDAuth(legacy_verifiers=...)``: hashes of a format crudauth does not know.

A verifier that matches signs the user in and the hash becomes argon2id; one that does not
match, or raises, is a wrong password that costs what a wrong password costs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from typing import Any

import argon2
import pytest

from crudauth import ConfigurationError, verify_password
from tests.conftest import login, register
from tests.test_passwords import PASSWORD, set_user, stored_hash


def pbkdf2_hash(password: str, iterations: int = 1_000) -> str:
    """A Django-style ``pbkdf2_sha256$<iterations>$<salt>$<hash>``, as an older system stored."""
    salt = secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def verify_pbkdf2(password: str, hashed: str) -> bool:
    algorithm, iterations, salt, expected = hashed.split("$")
    if algorithm != "pbkdf2_sha256":
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    return hmac.compare_digest(base64.b64encode(digest).decode(), expected)


class Recorder:
    """A verifier that records its calls and answers like ``verify_pbkdf2``."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, password: str, hashed: str) -> bool:
        self.calls += 1
        return verify_pbkdf2(password, hashed)


@pytest.fixture
def argon_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 verification made, whatever hasher made it."""
    seen: list[str] = []
    real = argon2.PasswordHasher.verify

    def counting(self: argon2.PasswordHasher, hashed: Any, password: Any) -> Any:
        seen.append(str(hashed))
        return real(self, hashed, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting)
    return seen


async def test_a_legacy_hash_signs_in_and_is_upgraded_to_argon2id(make_env):
    verifier = Recorder()
    env = await make_env(legacy_verifiers=[verifier])
    await register(env.client)
    await set_user(env, hashed_password=pbkdf2_hash(PASSWORD))

    r = await login(env.client)

    assert r.status_code == 200, r.text
    assert verifier.calls == 1
    upgraded = await stored_hash(env)
    assert upgraded.startswith("$argon2id$")
    assert verify_password(PASSWORD, upgraded)
    env.client.cookies.clear()
    assert (await login(env.client)).status_code == 200
    assert verifier.calls == 1  # the argon2id hash no longer goes to the verifier


async def test_a_single_callable_is_accepted(make_env):
    env = await make_env(legacy_verifiers=verify_pbkdf2)
    await register(env.client)
    await set_user(env, hashed_password=pbkdf2_hash(PASSWORD))

    assert (await login(env.client)).status_code == 200
    assert (await stored_hash(env)).startswith("$argon2id$")


async def test_a_non_matching_legacy_hash_costs_the_same_as_a_wrong_password(
    make_env, argon_checks
):
    env = await make_env(legacy_verifiers=[Recorder()])
    await register(env.client)
    await register(env.client, username="bob", email="bob@example.com")
    legacy = pbkdf2_hash(PASSWORD)
    await set_user(env, username="bob", hashed_password=legacy)

    argon_checks.clear()
    wrong_argon = await login(env.client, password="wrong password")
    argon_for_argon = len(argon_checks)
    argon_checks.clear()
    wrong_legacy = await login(env.client, username="bob", password="wrong password")
    argon_for_legacy = len(argon_checks)

    assert wrong_legacy.status_code == wrong_argon.status_code == 401
    assert wrong_legacy.json() == wrong_argon.json()
    assert wrong_legacy.headers.get("x-error-code") == wrong_argon.headers.get("x-error-code")
    assert argon_for_argon == argon_for_legacy == 1  # the legacy miss pays one full hash too
    assert await stored_hash(env, "bob") == legacy


async def test_a_verifier_that_raises_is_a_wrong_password_and_is_logged(make_env, caplog):
    def broken(password: str, hashed: str) -> bool:
        raise RuntimeError(f"cannot parse {hashed} for {password}")

    env = await make_env(legacy_verifiers=[broken, verify_pbkdf2])
    await register(env.client)
    legacy = "md5$" + hashlib.md5(PASSWORD.encode()).hexdigest()  # noqa: S324 - an old format
    await set_user(env, hashed_password=legacy)

    with caplog.at_level(logging.WARNING, logger="crudauth"):
        r = await login(env.client)

    assert r.status_code == 401
    assert r.json() == {"detail": "Incorrect username or password"}
    assert await stored_hash(env) == legacy
    logged = [rec.getMessage() for rec in caplog.records]
    assert any("broken" in m and "RuntimeError" in m for m in logged), logged
    assert not any(PASSWORD in m or legacy in m for m in logged)  # no secret in the log


async def test_the_next_verifier_is_tried_after_one_that_raises(make_env):
    def broken(password: str, hashed: str) -> bool:
        raise ValueError("not my format")

    env = await make_env(legacy_verifiers=[broken, verify_pbkdf2])
    await register(env.client)
    await set_user(env, hashed_password=pbkdf2_hash(PASSWORD))

    assert (await login(env.client)).status_code == 200


@pytest.mark.parametrize("value", [["not callable"], [], [verify_pbkdf2, 3]])
async def test_legacy_verifiers_that_are_not_callables_are_refused(make_env, value):
    with pytest.raises(ConfigurationError, match="legacy_verifiers"):
        await make_env(legacy_verifiers=value)
