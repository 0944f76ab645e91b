"""Managing a second factor while signed in, sudo by code, notices, hooks, keys at rest, and
the construction-time checks of ``MfaConfig``."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from crudauth import AuthHooks, CRUDAuth, SudoConfig
from crudauth.errors import ConfigurationError
from crudauth.mfa import MfaConfig
from crudauth.mfa.codes import SecretBox
from crudauth.ratelimit import LockoutConfig
from tests.conftest import SECRET, User
from tests.email_support import Outbox, email_config
from tests.mfa_support import (
    MFA_KEY,
    PASSWORD,
    MfaUser,
    challenge_of,
    code,
    csrf,
    enrol,
    mfa_config,
    mfa_env,
    password_step,
    verify,
    wrong_code,
)


async def signed_in(env: Any, secret: str) -> None:
    r = await verify(env.client, await challenge_of(env.client), code(secret, env.clock.now()))
    assert r.status_code == 200, r.text
    env.clock.advance(30)


async def alice(env: Any) -> Any:
    async with env.sessionmaker() as db:
        return (await db.execute(select(MfaUser).where(MfaUser.username == "alice"))).scalar_one()


# -- construction ------------------------------------------------------------------------------


async def _noop_session() -> Any:  # never called: construction only
    yield None


def build(**options: Any) -> CRUDAuth:
    options.setdefault("user_model", MfaUser)
    return CRUDAuth(session=_noop_session, SECRET_KEY=SECRET, **options)


def test_mfa_needs_its_columns_on_the_model() -> None:
    with pytest.raises(ConfigurationError, match="totp_secret_encrypted"):
        build(user_model=User, mfa=mfa_config())


def test_the_encryption_key_must_not_be_the_secret_key() -> None:
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        build(mfa=mfa_config(key=SECRET))
    fernet_shaped_secret = Fernet.generate_key().decode()
    with pytest.raises(ConfigurationError, match="must not be SECRET_KEY"):
        CRUDAuth(
            session=_noop_session,
            user_model=MfaUser,
            SECRET_KEY=fernet_shaped_secret,
            mfa=mfa_config(key=fernet_shaped_secret),
        )


def test_a_bad_encryption_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        build(mfa=mfa_config(key=[MFA_KEY, b"not-a-key"]))


@pytest.mark.parametrize(
    "options",
    [{"issuer": ""}, {"max_code_attempts": 0}, {"challenge_ttl_seconds": 5}, {"required": "yes"}],
)
def test_mfa_config_values_are_checked(options: dict[str, Any]) -> None:
    options = {"issuer": "Example", "encryption_key": MFA_KEY, **options}
    with pytest.raises(ConfigurationError):
        MfaConfig(**options)


def test_the_encryption_keys_stay_out_of_reprs() -> None:
    auth = build(mfa=mfa_config())
    assert auth.mfa is not None
    assert MFA_KEY.decode() not in repr(mfa_config()) + repr(auth.mfa.box)


def test_the_mfa_router_needs_mfa() -> None:
    auth = build()
    assert auth.mfa is None
    with pytest.raises(RuntimeError):
        _ = auth.mfa_router


# -- status, setup, confirm --------------------------------------------------------------------


async def test_status_before_and_after_enrolment(make_env: Any) -> None:
    enabled: list[dict[str, Any]] = []
    env = await mfa_env(
        make_env, hooks=AuthHooks(on_after_mfa_enabled=lambda u, **k: enabled.append(u))
    )
    await password_step(env.client)
    status = (await env.client.get("/mfa")).json()
    assert status == {"enabled": False, "required": False, "recovery_codes_remaining": 0}
    await env.client.post("/logout", headers=csrf(env.client))
    enrolled = await enrol(env)
    await signed_in(env, enrolled.secret)
    assert (await env.client.get("/mfa")).json()["enabled"] is True
    assert [u["username"] for u in enabled] == ["alice"]
    assert not {"totp_secret_encrypted", "mfa_recovery_codes", "hashed_password"} & set(enabled[0])


async def test_setup_needs_the_password_and_confirm_a_pending_secret(make_env: Any) -> None:
    env = await mfa_env(make_env)
    await password_step(env.client)
    r = await env.client.post(
        "/mfa/totp/setup", json={"password": "nope"}, headers=csrf(env.client)
    )
    assert (r.status_code, r.json()["detail"]) == (401, "Incorrect password")
    r = await env.client.post(
        "/mfa/totp/confirm", json={"code": "123456"}, headers=csrf(env.client)
    )
    assert r.status_code == 400  # nothing pending
    r = await env.client.post(
        "/mfa/totp/setup", json={"password": PASSWORD}, headers=csrf(env.client)
    )
    secret = r.json()["secret"]
    bad = wrong_code(secret, env.clock.now())
    r = await env.client.post("/mfa/totp/confirm", json={"code": bad}, headers=csrf(env.client))
    assert r.status_code == 401
    good = code(secret, env.clock.now())
    r = await env.client.post("/mfa/totp/confirm", json={"code": good}, headers=csrf(env.client))
    assert r.status_code == 200
    r = await env.client.post(
        "/mfa/totp/setup", json={"password": PASSWORD}, headers=csrf(env.client)
    )
    assert r.status_code == 400  # already enabled


async def test_a_pending_secret_dies_with_the_epoch(make_env: Any) -> None:
    env = await mfa_env(make_env)
    await password_step(env.client)
    r = await env.client.post(
        "/mfa/totp/setup", json={"password": PASSWORD}, headers=csrf(env.client)
    )
    secret = r.json()["secret"]
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "username", "alice")
        await env.auth.repo.bump_token_version(db, user)
        assert env.auth.mfa is not None
        with pytest.raises(Exception, match="No two-factor setup"):
            await env.auth.mfa.confirm(db, user, code(secret, env.clock.now()))


# -- secrets at rest and key rotation ----------------------------------------------------------


async def test_the_secret_is_encrypted_at_rest_and_codes_are_keyed_hashes(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    user = await alice(env)
    assert enrolled.secret not in user.totp_secret_encrypted
    assert Fernet(MFA_KEY).decrypt(user.totp_secret_encrypted.encode()).decode() == enrolled.secret
    stored = user.mfa_recovery_codes
    bare = hashlib.sha256(enrolled.recovery_codes[0].replace("-", "").encode()).hexdigest()
    assert bare not in stored and enrolled.recovery_codes[0] not in stored


async def test_a_new_key_first_keeps_enrolments_and_re_encrypts_on_use(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    new_key = Fernet.generate_key()
    # The deploy that puts a new key first: the same app, its box now [new, old].
    assert env.auth.mfa is not None
    env.auth.mfa.box = SecretBox([new_key, MFA_KEY], env.auth.runtime.keys)
    await signed_in(env, enrolled.secret)
    user = await alice(env)
    assert Fernet(new_key).decrypt(user.totp_secret_encrypted.encode()).decode() == enrolled.secret


async def test_reencrypt_all_moves_every_secret_to_the_first_key(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    new_key = Fernet.generate_key()
    assert env.auth.mfa is not None
    env.auth.mfa.box = SecretBox([new_key, MFA_KEY], env.auth.runtime.keys)
    async with env.sessionmaker() as db:
        assert await env.auth.mfa.reencrypt_all(db) == 1
        assert await env.auth.mfa.reencrypt_all(db) == 0
    env.auth.mfa.box = SecretBox([new_key], env.auth.runtime.keys)  # the old key retired
    await signed_in(env, enrolled.secret)


# -- disable and regenerate --------------------------------------------------------------------


async def test_disabling_needs_a_fresh_code_and_notifies_the_owner(make_env: Any) -> None:
    outbox = Outbox()
    fired: list[str] = []
    hooks = AuthHooks(on_after_mfa_disabled=lambda user, **k: fired.append(user["username"]))
    env = await mfa_env(make_env, email=email_config(outbox), hooks=hooks)
    enrolled = await enrol(env)
    await signed_in(env, enrolled.secret)
    r = await env.client.post("/mfa/totp/disable", json={}, headers=csrf(env.client))
    assert r.status_code == 401  # no code, no sudo
    bad = wrong_code(enrolled.secret, env.clock.now())
    r = await env.client.post("/mfa/totp/disable", json={"code": bad}, headers=csrf(env.client))
    assert r.status_code == 401
    good = code(enrolled.secret, env.clock.now())
    r = await env.client.post("/mfa/totp/disable", json={"code": good}, headers=csrf(env.client))
    assert r.status_code == 200, r.text
    assert fired == ["alice"]
    assert [m["to"] for m in outbox.of("mfa_disabled")] == ["alice@example.com"]
    await env.client.post("/logout", headers=csrf(env.client))
    assert "csrf_token" in (await password_step(env.client)).json()  # the password alone now


async def test_disabling_is_refused_while_mfa_is_required(make_env: Any) -> None:
    env = await mfa_env(make_env, mfa=mfa_config(required=lambda user: True))
    r = await password_step(env.client)
    secret = r.json()["setup"]["secret"]
    r = await verify(env.client, r.json()["challenge"], code(secret, env.clock.now()))
    env.clock.advance(30)
    good = code(secret, env.clock.now())
    r = await env.client.post("/mfa/totp/disable", json={"code": good}, headers=csrf(env.client))
    assert r.status_code == 403


async def test_regenerating_replaces_the_whole_set(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    await signed_in(env, enrolled.secret)
    r = await env.client.post(
        "/mfa/recovery-codes/regenerate",
        json={"code": enrolled.recovery_codes[0]},
        headers=csrf(env.client),
    )
    assert r.status_code == 200, r.text
    fresh = r.json()["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(enrolled.recovery_codes)
    assert (await env.client.get("/mfa")).json()["recovery_codes_remaining"] == 10
    await env.client.post("/logout", headers=csrf(env.client))
    old = enrolled.recovery_codes[5]
    assert (await verify(env.client, await challenge_of(env.client), old)).status_code == 401
    new = fresh[0]
    assert (await verify(env.client, await challenge_of(env.client), new)).status_code == 200


async def test_using_a_recovery_code_fires_the_hook_and_notifies_the_owner(
    make_env: Any,
) -> None:
    outbox = Outbox()
    used: list[str] = []
    hooks = AuthHooks(on_after_recovery_code_used=lambda user, **k: used.append(user["email"]))
    env = await mfa_env(make_env, email=email_config(outbox), hooks=hooks)
    enrolled = await enrol(env)
    r = await verify(env.client, await challenge_of(env.client), enrolled.recovery_codes[0])
    assert r.status_code == 200
    assert used == ["alice@example.com"]
    notice = outbox.of("recovery_code_used")
    assert len(notice) == 1 and notice[0]["to"] == "alice@example.com"
    assert enrolled.recovery_codes[0] not in notice[0]["body"]
    assert (await env.client.get("/mfa")).json()["recovery_codes_remaining"] == 9


async def test_one_recovery_code_spent_concurrently_signs_in_once(make_env: Any) -> None:
    env = await mfa_env(make_env, lockout=LockoutConfig(max_attempts=50))
    enrolled = await enrol(env)
    from tests.email_support import device

    browsers = [device(env.app) for _ in range(6)]
    try:
        challenges = [await challenge_of(b) for b in browsers]
        answers = await asyncio.gather(
            *(
                verify(b, c, enrolled.recovery_codes[0])
                for b, c in zip(browsers, challenges, strict=True)
            )
        )
    finally:
        for b in browsers:
            await b.aclose()
    assert sorted(a.status_code for a in answers) == [200] + [401] * 5


async def test_one_totp_code_on_four_pending_sign_ins_signs_in_once(make_env: Any) -> None:
    env = await mfa_env(make_env, lockout=LockoutConfig(max_attempts=50))
    enrolled = await enrol(env)
    from tests.email_support import device

    browsers = [device(env.app) for _ in range(4)]
    try:
        challenges = [await challenge_of(b) for b in browsers]
        now = code(enrolled.secret, env.clock.now())
        answers = await asyncio.gather(
            *(verify(b, c, now) for b, c in zip(browsers, challenges, strict=True))
        )
    finally:
        for b in browsers:
            await b.aclose()
    assert sorted(a.status_code for a in answers) == [200] + [401] * 3


# -- step-up -----------------------------------------------------------------------------------


async def test_sudo_accepts_a_totp_or_recovery_code(make_env: Any) -> None:
    env = await mfa_env(make_env, sudo=SudoConfig())
    enrolled = await enrol(env)
    await signed_in(env, enrolled.secret)
    bad = wrong_code(enrolled.secret, env.clock.now())
    r = await env.client.post("/sudo", json={"code": bad}, headers=csrf(env.client))
    assert r.status_code == 401
    good = code(enrolled.secret, env.clock.now())
    r = await env.client.post("/sudo", json={"code": good}, headers=csrf(env.client))
    assert r.status_code == 200, r.text
    r = await env.client.post("/sudo", json={"code": good}, headers=csrf(env.client))
    assert r.status_code == 401  # the step is spent
    r = await env.client.post(
        "/sudo", json={"code": enrolled.recovery_codes[1]}, headers=csrf(env.client)
    )
    assert r.status_code == 200


async def test_sudo_lets_mfa_be_disabled_without_a_code(make_env: Any) -> None:
    env = await mfa_env(make_env, sudo=SudoConfig())
    enrolled = await enrol(env)
    await signed_in(env, enrolled.secret)
    r = await env.client.post("/sudo", json={"password": PASSWORD}, headers=csrf(env.client))
    assert r.status_code == 200
    r = await env.client.post("/mfa/totp/disable", json={}, headers=csrf(env.client))
    assert r.status_code == 200, r.text


async def test_an_account_without_a_password_enters_sudo_by_code(make_env: Any) -> None:
    env = await mfa_env(make_env, sudo=SudoConfig())
    enrolled = await enrol(env)
    await signed_in(env, enrolled.secret)
    from crudauth.passwords import make_unusable_password

    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "username", "alice")
        await env.auth.repo.update(db, user, {"hashed_password": make_unusable_password()})
    r = await env.client.post("/sudo", json={"password": PASSWORD}, headers=csrf(env.client))
    assert r.status_code == 400  # no password to confirm
    good = code(enrolled.secret, env.clock.now())
    r = await env.client.post("/sudo", json={"code": good}, headers=csrf(env.client))
    assert r.status_code == 200, r.text
