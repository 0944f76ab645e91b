"""The account service without HTTP: what a CLI, a worker or an admin screen can call."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth import BearerTransport, SessionTransport, Transport
from crudauth.credentials import AccountService
from crudauth.errors import IncorrectPassword, InvalidToken
from crudauth.transports.bearer.claims import REVOKED, ClaimsEntries
from tests.conftest import Env, User

PASSWORD = "correct horse battery"
NEW = "a brand new passphrase"


class StatelessTransport(Transport):
    """A transport that keeps nothing server-side (an API key read from a header, say)."""

    name = "stateless"

    async def authenticate(self, request: Any, ctx: Any) -> None:
        return None


async def _env(make_env: Any, *transports: Any) -> tuple[Env, AccountService, User]:
    env: Env = await make_env(transports=list(transports) or [SessionTransport()])
    async with env.sessionmaker() as db:
        user = User(
            username="alice",
            email="alice@example.com",
            hashed_password=env.hasher.hash(PASSWORD),
        )
        db.add(user)
        await db.commit()
    return env, AccountService(env.auth.runtime, env.auth.transports), user


async def _user(env: Env) -> User:
    async with env.sessionmaker() as db:
        return (await db.scalars(select(User))).one()


async def _session_keys(env: Env) -> set[str]:
    return {key for key, _ in await env.auth.sessions.list_for_user(1)}


async def _epochs(env: Env) -> dict[str, int | None]:
    return {key: record.token_version for key, record in await env.auth.sessions.list_for_user(1)}


async def test_change_password_bumps_the_epoch_and_keeps_only_the_given_session(make_env):
    env, accounts, _ = await _env(make_env)
    *_, here = await env.auth.sessions.create_session(1, token_version=0)
    await env.auth.sessions.create_session(1, token_version=0)

    async with env.sessionmaker() as db:
        user = await db.get(User, 1)
        settled = await accounts.change_password(db, user, NEW, keep=here.key)

    stored = await _user(env)
    assert stored.token_version == 1
    assert env.hasher.verify(NEW, stored.hashed_password).ok
    assert settled.kept and settled.ended == {"session": 1}
    assert await _epochs(env) == {here.key: 1}  # `there` ended; `here` is at the new epoch


async def test_a_kept_session_that_is_already_gone_is_not_revived(make_env):
    env, accounts, _ = await _env(make_env)
    *_, gone = await env.auth.sessions.create_session(1, token_version=0)
    await env.auth.sessions.revoke_key(gone.key)

    settled = await accounts.keep_session_end_others(1, 1, keep=gone.key)

    assert not settled.kept
    assert await _session_keys(env) == set()


async def test_a_failing_commit_leaves_hash_and_epoch_unchanged(make_env, monkeypatch):
    env, accounts, _ = await _env(make_env)
    *_, here = await env.auth.sessions.create_session(1, token_version=0)
    *_, there = await env.auth.sessions.create_session(1, token_version=0)
    before = await _user(env)

    async def broken_commit(self: AsyncSession) -> None:
        raise RuntimeError("database went away")

    async with env.sessionmaker() as db:
        user = await db.get(User, 1)
        monkeypatch.setattr(AsyncSession, "commit", broken_commit)
        with pytest.raises(RuntimeError):
            await accounts.change_password(db, user, NEW, keep=here.key)
        monkeypatch.undo()

    after = await _user(env)
    assert (after.hashed_password, after.token_version) == (before.hashed_password, 0)
    assert await _session_keys(env) == {here.key, there.key}


async def test_a_refused_confirmation_changes_nothing(make_env):
    env, accounts, _ = await _env(make_env)
    *_, session = await env.auth.sessions.create_session(1, token_version=0)
    before = await _user(env)

    async def wrong_password(user: Any) -> None:
        raise IncorrectPassword("Current password is incorrect.")

    async with env.sessionmaker() as db:
        user = await db.get(User, 1)
        with pytest.raises(IncorrectPassword):
            await accounts.change_password(db, user, NEW, confirm=wrong_password)

    after = await _user(env)
    assert (after.hashed_password, after.token_version) == (before.hashed_password, 0)
    assert await _session_keys(env) == {session.key}


async def test_sign_out_everywhere_ends_sessions_refresh_families_and_cached_bearer_claims(
    make_env,
):
    env, accounts, _ = await _env(make_env, SessionTransport(), BearerTransport())
    bearer = env.auth.transports[1]
    assert isinstance(bearer, BearerTransport)
    await env.auth.sessions.create_session(1, token_version=0)
    async with env.sessionmaker() as db:
        user = await db.get(User, 1)
        issued = bearer.issue_tokens(user)
        await issued  # the refresh family is recorded
        await bearer.claims_entries.get("1", stale=False)  # the claims entry is cached
        settled = await accounts.sign_out_everywhere(db, user)

    assert not settled.kept and settled.ended == {"session": 1, "bearer": 1}
    assert await _session_keys(env) == set()
    entry = await env.auth.runtime.tokens.get(ClaimsEntries.key("1"))
    assert entry is not None and entry.startswith(REVOKED)
    async with env.sessionmaker() as db:
        with pytest.raises(InvalidToken):
            await bearer.refresh(db, issued["refresh_token"])


async def test_revoke_user_asks_every_transport_what_it_holds(make_env):
    env, accounts, _ = await _env(
        make_env, SessionTransport(), BearerTransport(), StatelessTransport()
    )
    await env.auth.sessions.create_session(1, token_version=0)
    await env.auth.sessions.create_session(1, token_version=0)

    # Sessions: 2; the bearer claims entry: 1; a transport that keeps nothing: 0.
    assert await accounts.revoke_user(1) == 3
    assert await _session_keys(env) == set()
    assert await env.auth.revoke_user(1) == 1  # the root asks the same service
