"""``PrincipalAccount`` without HTTP: what ``/me``, ``/set-password`` and ``/change-password``
do, called the way a CLI or a test would."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from crudauth import SessionTransport
from crudauth.account.service import NOT_FRESH, WRONG_CURRENT, PrincipalAccount
from crudauth.errors import IncorrectPassword, InvalidRequest, SignInNotFresh
from crudauth.passwords import make_unusable_password
from crudauth.principal import Principal
from tests.conftest import Env, User

PASSWORD = "correct horse battery"
NEW = "a brand new passphrase"


async def _env(make_env: Any, hashed: str | None = None) -> tuple[Env, User]:
    env: Env = await make_env(transports=[SessionTransport()])
    async with env.sessionmaker() as db:
        user = User(
            username="alice",
            email="alice@example.com",
            hashed_password=hashed or env.hasher.hash(PASSWORD),
        )
        db.add(user)
        await db.commit()
    return env, user


def _account(env: Env, *, fresh: bool = False) -> PrincipalAccount:
    async def is_fresh(principal: Principal) -> bool:
        return fresh

    return PrincipalAccount(
        env.auth.runtime, accounts=env.auth.accounts, fresh=is_fresh, session_transport="session"
    )


async def test_describe_names_the_caller_and_its_transport(make_env):
    env, user = await _env(make_env)
    principal = Principal(user_id=1, user=user, transport="bearer", scopes=frozenset({"b", "a"}))

    assert _account(env).describe(principal) == {
        "user_id": 1,
        "username": "alice",
        "email": "alice@example.com",
        "is_superuser": False,
        "scopes": ["a", "b"],
        "via": "bearer",
    }


async def test_change_password_proves_the_current_one_and_keeps_only_the_callers_session(
    make_env,
):
    env, _ = await _env(make_env)
    *_, here = await env.auth.sessions.create_session(1, token_version=0)
    await env.auth.sessions.create_session(1, token_version=0)
    account = _account(env)

    async with env.sessionmaker() as db:
        user = await db.get(User, 1)
        principal = Principal(user_id=1, user=user, metadata={"session_key": here.key})
        with pytest.raises(IncorrectPassword) as refused:
            await account.change_password(db, principal, "not the password", NEW)
        assert refused.value.message == WRONG_CURRENT
        await account.change_password(db, principal, PASSWORD, NEW)

    async with env.sessionmaker() as db:
        stored = (await db.scalars(select(User))).one()
    assert env.hasher.verify(NEW, stored.hashed_password).ok
    assert [key for key, _ in await env.auth.sessions.list_for_user(1)] == [here.key]


async def test_set_password_needs_a_fresh_sign_in_and_an_account_without_one(make_env):
    env, _ = await _env(make_env, hashed=make_unusable_password())

    async with env.sessionmaker() as db:
        user = await db.get(User, 1)
        principal = Principal(user_id=1, user=user)
        with pytest.raises(SignInNotFresh) as stale:
            await _account(env).set_password(db, principal, NEW)
        assert stale.value.message == NOT_FRESH
        await _account(env, fresh=True).set_password(db, principal, NEW)
        with pytest.raises(InvalidRequest):
            await _account(env, fresh=True).set_password(db, principal, NEW)
