"""Password storage, legacy formats, rehash at login and timing-equalised login failures."""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from typing import Any

import bcrypt
import httpx
from sqlalchemy import select, update

from crudauth import (
    get_password_hash,
    is_unusable_password,
    make_unusable_password,
    verify_password,
)
from tests.conftest import User, login, register

PASSWORD = "correct horse battery"


def reference_hash(password: str) -> str:
    """The reference crudauth format: bcrypt over base64(SHA-256(NFKC(password)))."""
    digest = hashlib.sha256(unicodedata.normalize("NFKC", password).encode("utf-8")).digest()
    return bcrypt.hashpw(base64.b64encode(digest), bcrypt.gensalt(rounds=4)).decode("ascii")


def plain_bcrypt(password: str | bytes) -> str:
    raw = password.encode("utf-8") if isinstance(password, str) else password
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=4)).decode("ascii")


def phc_parameters(hashed: str) -> tuple[str, dict[str, int]]:
    """``("argon2id", {"m": ..., "t": ..., "p": ...})`` from a PHC string."""
    _, algorithm, _version, params, _salt, _digest = hashed.split("$")
    return algorithm, {k: int(v) for k, v in (item.split("=") for item in params.split(","))}


async def stored_hash(env: Any, username: str = "alice") -> str:
    async with env.sessionmaker() as db:
        value = await db.scalar(select(User.hashed_password).where(User.username == username))
    assert value is not None
    return str(value)


async def set_user(env: Any, username: str = "alice", **values: Any) -> None:
    async with env.sessionmaker() as db:
        await db.execute(update(User).where(User.username == username).values(**values))
        await db.commit()


# -- hashing --------------------------------------------------------------------------------


def test_default_hash_is_argon2id_with_owasp_parameters():
    hashed = get_password_hash(PASSWORD)

    algorithm, params = phc_parameters(hashed)
    assert algorithm == "argon2id"
    assert params["m"] >= 19_456
    assert params["t"] >= 2
    assert params["p"] == 1
    assert verify_password(PASSWORD, hashed)
    assert not verify_password(PASSWORD + "x", hashed)


def test_hashes_are_salted():
    assert get_password_hash(PASSWORD) != get_password_hash(PASSWORD)


async def test_registered_password_is_stored_as_argon2id(make_env):
    env = await make_env()
    await register(env.client)

    hashed = await stored_hash(env)

    assert hashed.startswith("$argon2id$")
    assert PASSWORD not in hashed


# -- legacy formats -------------------------------------------------------------------------


def test_reference_format_verifies():
    hashed = reference_hash(PASSWORD)

    assert hashed.startswith("$2b$")
    assert verify_password(PASSWORD, hashed)
    assert not verify_password(PASSWORD + "!", hashed)
    assert not verify_password(PASSWORD.upper(), hashed)


def test_reference_format_is_not_truncated_at_72_bytes():
    long_password = "x" * 100
    hashed = reference_hash(long_password)

    assert verify_password(long_password, hashed)
    assert not verify_password("x" * 72, hashed)
    assert not verify_password("x" * 99 + "y", hashed)


def test_reference_format_accepts_the_nfkc_form():
    typed = "\ufb01ne \uff50\uff41\uff53\uff53word"  # a ligature and fullwidth letters
    hashed = reference_hash(typed)

    assert verify_password(typed, hashed)
    assert verify_password("fine password", hashed)  # the same NFKC form


def test_plain_bcrypt_verifies():
    hashed = plain_bcrypt(PASSWORD)

    assert verify_password(PASSWORD, hashed)
    assert not verify_password(PASSWORD + "x", hashed)


def test_plain_bcrypt_never_matches_on_a_72_byte_prefix():
    prefix = "p" * 72
    hashed = plain_bcrypt(prefix)  # what bcrypt compares of any longer password

    assert verify_password(prefix, hashed)
    assert not verify_password(prefix + "A", hashed)
    assert not verify_password(prefix + "B", hashed)
    assert not verify_password(prefix + "attacker suffix of any length", hashed)


def test_leaked_reference_digest_is_not_accepted_as_a_password():
    digest = base64.b64encode(hashlib.sha256(PASSWORD.encode("utf-8")).digest()).decode("ascii")
    assert len(digest) == 44

    # Typing the unsalted digest must not pass the plain-bcrypt fallback of a reference hash.
    assert not verify_password(digest, reference_hash(PASSWORD))
    # Nor a plain bcrypt of a digest-shaped value.
    assert not verify_password(digest, plain_bcrypt(digest))


async def test_reference_hash_logs_in_and_is_upgraded_to_argon2id(make_env):
    env = await make_env()
    await register(env.client)
    await set_user(env, hashed_password=reference_hash(PASSWORD))
    env.hasher.hashes = 0

    r = await login(env.client)

    assert r.status_code == 200, r.text
    assert env.hasher.hashes == 1
    upgraded = await stored_hash(env)
    assert upgraded.startswith("$argon2id$")
    assert verify_password(PASSWORD, upgraded)
    env.client.cookies.clear()
    assert (await login(env.client)).status_code == 200
    assert env.hasher.hashes == 1  # an up-to-date hash is not rehashed again


async def test_plain_bcrypt_hash_logs_in_and_is_upgraded(make_env):
    env = await make_env()
    await register(env.client)
    await set_user(env, hashed_password=plain_bcrypt(PASSWORD))

    r = await login(env.client)

    assert r.status_code == 200, r.text
    assert (await stored_hash(env)).startswith("$argon2id$")


async def test_wrong_password_leaves_a_legacy_hash_untouched(make_env):
    env = await make_env()
    await register(env.client)
    legacy = reference_hash(PASSWORD)
    await set_user(env, hashed_password=legacy)

    r = await login(env.client, password=PASSWORD + "x")

    assert r.status_code == 401
    assert await stored_hash(env) == legacy


async def test_current_hash_is_not_rehashed_at_login(make_env):
    env = await make_env()
    await register(env.client)
    before = await stored_hash(env)
    env.hasher.hashes = 0

    assert (await login(env.client)).status_code == 200

    assert env.hasher.hashes == 0
    assert await stored_hash(env) == before


# -- no truncation, no case folding ---------------------------------------------------------


async def test_password_is_compared_exactly(make_env):
    env = await make_env()
    await register(env.client)

    for wrong in (PASSWORD + "x", PASSWORD[:-1], PASSWORD.upper(), " " + PASSWORD):
        r = await login(env.client, password=wrong)
        assert r.status_code == 401, wrong
    assert (await login(env.client)).status_code == 200


async def test_long_passwords_are_accepted_and_not_truncated(make_env):
    env = await make_env()
    long_password = "L" * 100

    r = await register(env.client, password=long_password)
    assert r.status_code == 200, r.text

    assert (await login(env.client, password="L" * 72)).status_code == 401
    assert (await login(env.client, password="L" * 99 + "M")).status_code == 401
    assert (await login(env.client, password=long_password)).status_code == 200


# -- unusable passwords ---------------------------------------------------------------------


def test_unusable_passwords():
    marker = make_unusable_password()

    assert is_unusable_password(marker)
    assert is_unusable_password("")
    assert is_unusable_password(None)
    assert not is_unusable_password(get_password_hash(PASSWORD))
    assert not is_unusable_password(reference_hash(PASSWORD))
    assert make_unusable_password() != marker
    assert not verify_password(marker, marker)
    assert not verify_password("", marker)


async def test_user_with_unusable_password_cannot_log_in(make_env):
    env = await make_env()
    await register(env.client)
    marker = make_unusable_password()
    await set_user(env, hashed_password=marker)

    for attempt in (PASSWORD, marker, ""):
        r = await login(env.client, password=attempt)
        assert r.status_code in (401, 422), attempt
        assert "session_id" not in r.cookies


# -- timing equalisation and anti-enumeration -----------------------------------------------


async def failed_login_cases(env: Any) -> dict[str, tuple[httpx.Response, int]]:
    """Each refused login with the number of password verifications it cost."""
    await register(env.client)
    await register(env.client, username="dora", email="dora@example.com")
    await register(env.client, username="una", email="una@example.com")
    await set_user(env, "dora", is_active=False)
    await set_user(env, "una", hashed_password=make_unusable_password())
    cases = {
        "unknown user": ("nobody", PASSWORD),
        "unknown email": ("nobody@example.com", PASSWORD),
        "wrong password": ("alice", PASSWORD + "x"),
        "disabled user, right password": ("dora", PASSWORD),
        "disabled user, wrong password": ("dora", PASSWORD + "x"),
        "unusable password": ("una", PASSWORD),
    }
    out = {}
    for name, (username, password) in cases.items():
        env.clock.advance(61)  # each attempt in a fresh window: no throttling in play
        env.hasher.verifications = 0
        env.client.cookies.clear()
        r = await login(env.client, username=username, password=password)
        out[name] = (r, env.hasher.verifications)
    return out


async def test_every_refused_login_costs_exactly_one_verification(make_env):
    env = await make_env()

    cases = await failed_login_cases(env)

    costs = {name: cost for name, (_, cost) in cases.items()}
    assert costs == dict.fromkeys(cases, 1)


async def test_successful_login_costs_one_verification(make_env):
    env = await make_env()
    await register(env.client)
    env.hasher.verifications = 0

    assert (await login(env.client)).status_code == 200

    assert env.hasher.verifications == 1


async def test_every_refused_login_gets_the_same_response(make_env):
    env = await make_env()

    cases = await failed_login_cases(env)

    def shape(r: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
        headers = sorted((k, v) for k, v in r.headers.items() if k.lower() != "date")
        return r.status_code, r.content, headers

    reference = shape(cases["wrong password"][0])
    assert reference[0] == 401
    assert cases["wrong password"][0].json() == {"detail": "Incorrect username or password"}
    assert all(k != "set-cookie" for k, _ in reference[2])
    for name, (response, _) in cases.items():
        assert shape(response) == reference, name


async def test_megabyte_password_is_refused_before_hashing(make_env):
    env = await make_env()

    r = await register(env.client, password="p" * 1_000_000)

    assert r.status_code == 413  # the body is over crudauth's limit, unparsed
    assert env.hasher.hashes == 0
    assert env.hasher.verifications == 0
    async with env.sessionmaker() as db:
        assert await db.scalar(select(User.id)) is None
