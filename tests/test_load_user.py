"""``current_user(load_user=False)``: no SQL, and revocation through the library still bites.

Statements are counted with a SQLAlchemy ``before_cursor_execute`` listener on the test engine;
Redis round trips with a wrapper around the client's ``execute_command``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import Depends
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from crudauth import BearerTransport, ConfigurationError, Principal, SessionTransport
from tests.bearer_support import bearer, get_tokens, sign_up, update_user
from tests.conftest import REDIS_TEST_URL, Env, User, login, register


class Statements:
    def __init__(self) -> None:
        self.sql: list[str] = []

    @property
    def selects(self) -> list[str]:
        return [s for s in self.sql if s.lstrip().upper().startswith("SELECT")]


@contextmanager
def counting(env: Env) -> Iterator[Statements]:
    engine: AsyncEngine = env.sessionmaker.kw["bind"]
    seen = Statements()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.sql.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


def add_routes(env: Env) -> None:
    auth = env.auth

    @env.app.get("/claims")
    async def claims(p: Principal = Depends(auth.current_user(load_user=False))) -> dict[str, Any]:
        return {"user_id": p.user_id, "loaded": p.user is not None, "su": p.is_superuser}

    @env.app.post("/claims")
    async def claims_post(
        p: Principal = Depends(auth.current_user(load_user=False)),
    ) -> dict[str, Any]:
        return {"user_id": p.user_id}

    @env.app.get("/claims/admin")
    async def admin(
        p: Principal = Depends(auth.current_user(load_user=False, superuser=True)),
    ) -> dict[str, Any]:
        return {"user_id": p.user_id}


async def session_env(make_env: Any, **options: Any) -> Env:
    env: Env = await make_env(**options)
    add_routes(env)
    assert (await register(env.client)).status_code == 200
    assert (await login(env.client)).status_code == 200
    return env


# -- sessions ----------------------------------------------------------------------------------


async def test_session_claims_run_no_sql(make_env: Any) -> None:
    env = await session_env(make_env)
    with counting(env) as seen:
        for _ in range(3):
            r = await env.client.get("/claims")
            assert r.status_code == 200, r.text
            assert r.json() == {"user_id": 1, "loaded": False, "su": False}
    assert seen.sql == []


async def test_default_path_is_one_select_by_primary_key(make_env: Any) -> None:
    env = await session_env(make_env)
    with counting(env) as seen:
        r = await env.client.get("/private")
    assert r.status_code == 200
    assert len(seen.sql) == 1, seen.sql
    assert len(seen.selects) == 1
    assert "WHERE users.id =" in seen.selects[0]


async def test_claims_keep_the_csrf_check(make_env: Any) -> None:
    env = await session_env(make_env)
    assert (await env.client.post("/claims")).status_code == 403
    token = env.client.cookies["csrf_token"]
    r = await env.client.post("/claims", headers={"X-CSRF-Token": token})
    assert r.status_code == 200


async def test_logout_ends_claims_at_once(make_env: Any) -> None:
    env = await session_env(make_env)
    cookie = env.client.cookies["session_id"]
    csrf = env.client.cookies["csrf_token"]
    assert (await env.client.post("/logout", headers={"X-CSRF-Token": csrf})).status_code == 200
    env.client.cookies.set("session_id", cookie)
    assert (await env.client.get("/claims")).status_code == 401


async def test_revoke_all_and_revoke_user_end_claims_at_once(make_env: Any) -> None:
    env = await session_env(make_env)
    assert (await env.client.get("/claims")).status_code == 200
    await env.auth.sessions.revoke_all(1)
    assert (await env.client.get("/claims")).status_code == 401

    assert (await login(env.client)).status_code == 200
    assert (await env.client.get("/claims")).status_code == 200
    # The library's path for a credential change: bump the epoch, commit, then revoke.
    async with env.sessionmaker() as db:
        user = await db.get(User, 1)
        await env.auth.repo.bump_token_version(db, user)
    assert await env.auth.revoke_user(1) >= 1
    assert (await env.client.get("/claims")).status_code == 401


async def test_direct_sql_deactivation_is_not_seen_by_claims(make_env: Any) -> None:
    """The documented limit: a change made straight in SQL only reaches the full path."""
    env = await session_env(make_env)
    await update_user(env, "alice", is_active=False)
    # load_user=False cannot see the row: the session record is still live.
    assert (await env.client.get("/claims")).status_code == 200
    # The full path reads the row, refuses, and deletes the session record ...
    assert (await env.client.get("/private")).status_code == 401
    # ... so from then on the claims path refuses too.
    assert (await env.client.get("/claims")).status_code == 401


async def test_direct_sql_token_version_bump_is_seen_by_the_full_path(make_env: Any) -> None:
    env = await session_env(make_env)
    await update_user(env, "alice", token_version=User.token_version + 1)
    assert (await env.client.get("/claims")).status_code == 200  # documented limit
    assert (await env.client.get("/private")).status_code == 401
    assert (await env.client.get("/claims")).status_code == 401


async def test_superuser_snapshot_is_healed_by_the_full_path(make_env: Any) -> None:
    env = await session_env(make_env)
    assert (await env.client.get("/claims/admin")).status_code == 403
    await update_user(env, "alice", is_superuser=True)
    assert (await env.client.get("/claims/admin")).status_code == 403  # snapshot from sign-in
    assert (await env.client.get("/private")).status_code == 200  # reads the row, heals
    assert (await env.client.get("/claims/admin")).status_code == 200
    await update_user(env, "alice", is_superuser=False)
    assert (await env.client.get("/private")).status_code == 200
    assert (await env.client.get("/claims/admin")).status_code == 403


async def test_session_without_snapshot_takes_the_full_path_once(make_env: Any) -> None:
    env = await session_env(make_env)
    key = next(iter(await env.auth.sessions.list_for_user(1)))[0]
    await env.auth.sessions.store.update(key, {"metadata": {}})
    with counting(env) as seen:
        r = await env.client.get("/claims")
    assert r.status_code == 200
    assert r.json()["loaded"] is False
    assert len(seen.selects) == 1


async def test_a_sign_in_racing_a_reset_leaves_no_session_for_load_user_false(
    make_env: Any,
) -> None:
    """A sign-in that read the row before a reset committed and created its session after the
    reset's sweep must not leave a session at the old epoch."""
    env: Env = await make_env()
    add_routes(env)
    assert (await register(env.client)).status_code == 200
    manager = env.auth.sessions
    original = manager.create_session

    async def reset_commits_first(*args: Any, **kwargs: Any) -> Any:
        # What a password reset does between this sign-in's read and its session: commit the
        # new epoch, then end every session the user has.
        await update_user(env, "alice", token_version=User.token_version + 1)
        await env.auth.revoke_user(1)
        return await original(*args, **kwargs)

    manager.create_session = reset_commits_first  # type: ignore[method-assign]
    try:
        r = await login(env.client)
    finally:
        manager.create_session = original  # type: ignore[method-assign]
    assert r.status_code == 401
    assert r.json() == {"detail": "Incorrect username or password"}
    assert "session_id" not in env.client.cookies
    assert await manager.list_for_user(1) == []  # nothing left for a claims path to accept
    assert (await login(env.client)).status_code == 200  # the next sign-in is a normal one
    assert (await env.client.get("/claims")).status_code == 200


@pytest.mark.redis
async def test_redis_session_request_is_one_round_trip(make_env: Any) -> None:
    env = await session_env(make_env, redis_url=REDIS_TEST_URL)
    store = env.auth.sessions.store
    client, lane = store.client, store.lane  # type: ignore[attr-defined]
    assert lane is not None, "a plain redis-py client gets the pipelined lane"
    sent: list[str] = []
    on_client, on_lane = client.execute_command, lane.send

    def spy(original: Any, where: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            first = args[0]
            if isinstance(first, bytes):  # a packed RESP command: *N, $len, NAME, ...
                first = first.split(b"\r\n")[2].decode()
            sent.append(f"{where}:{str(first).upper()}")
            return await original(*args, **kwargs)

        return call

    client.execute_command = spy(on_client, "client")
    lane.send = spy(on_lane, "lane")
    try:
        for path in ("/private", "/claims", "/claims"):
            sent.clear()
            assert (await env.client.get(path)).status_code == 200
            assert sent == ["lane:EVALSHA"], (path, sent)
        sent.clear()
        token = env.client.cookies["csrf_token"]
        r = await env.client.post("/claims", headers={"X-CSRF-Token": token})
        assert r.status_code == 200
        assert sent == ["lane:EVALSHA"]
    finally:
        client.execute_command = on_client
        lane.send = on_lane


async def test_claims_refuse_transports_that_cannot(make_env: Any) -> None:
    from crudauth.transports.base import Transport

    class Custom(Transport):
        name = "custom"

        async def authenticate(self, request: Any, ctx: Any) -> None:
            return None

        async def complete_login(self, *args: Any) -> dict[str, Any]:
            return {}

    env: Env = await make_env(transports=[SessionTransport(), Custom()])
    env.auth.current_user(load_user=False, transport="session")
    with pytest.raises(ConfigurationError):
        env.auth.current_user(load_user=False)


# -- bearer ------------------------------------------------------------------------------------


async def bearer_env(make_env: Any, **options: Any) -> tuple[Env, dict[str, str]]:
    env: Env = await make_env(transports=[BearerTransport(refresh="body")], **options)
    add_routes(env)
    await sign_up(env.client)
    tokens = await get_tokens(env.client)
    return env, bearer(tokens["access_token"])


async def test_bearer_claims_no_sql_after_the_first_request(make_env: Any) -> None:
    env, headers = await bearer_env(make_env)
    with counting(env) as seen:
        r = await env.client.get("/claims", headers=headers)
    assert r.status_code == 200
    assert r.json() == {"user_id": 1, "loaded": False, "su": False}
    assert len(seen.selects) == 1  # fills the per-user entry
    with counting(env) as seen:
        for _ in range(3):
            assert (await env.client.get("/claims", headers=headers)).status_code == 200
    assert seen.sql == []


async def test_bearer_default_path_is_one_select(make_env: Any) -> None:
    env, headers = await bearer_env(make_env)
    with counting(env) as seen:
        assert (await env.client.get("/private", headers=headers)).status_code == 200
    assert len(seen.sql) == 1 and len(seen.selects) == 1


async def test_bearer_revoke_user_bites_at_once(make_env: Any) -> None:
    env, headers = await bearer_env(make_env)
    assert (await env.client.get("/claims", headers=headers)).status_code == 200
    async with env.sessionmaker() as db:
        user = await db.get(User, 1)
        await env.auth.repo.bump_token_version(db, user)
    await env.auth.revoke_user(1)
    r = await env.client.get("/claims", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    # A token minted after the change works, on both paths.
    fresh = bearer((await get_tokens(env.client))["access_token"])
    assert (await env.client.get("/claims", headers=fresh)).status_code == 200
    assert (await env.client.get("/private", headers=fresh)).status_code == 200


async def test_bearer_deactivation_through_the_library_bites(make_env: Any) -> None:
    env, headers = await bearer_env(make_env)
    assert (await env.client.get("/claims", headers=headers)).status_code == 200
    await update_user(env, "alice", is_active=False)
    await env.auth.revoke_user(1)
    assert (await env.client.get("/claims", headers=headers)).status_code == 401


async def test_bearer_direct_sql_change_waits_for_the_access_ttl(make_env: Any) -> None:
    """The documented limit: SQL behind the library's back is seen within one access TTL."""
    env, headers = await bearer_env(make_env)
    assert (await env.client.get("/claims", headers=headers)).status_code == 200
    await update_user(env, "alice", is_active=False)
    assert (await env.client.get("/claims", headers=headers)).status_code == 200
    assert (await env.client.get("/private", headers=headers)).status_code == 401
    transport = env.auth.transports[0]
    assert isinstance(transport, BearerTransport)
    key = transport.claims_entries.key("1")
    env.clock.advance(900 + transport.leeway - 1)  # the token is still good: so is the entry
    assert (await env.client.get("/claims", headers=headers)).status_code == 200
    env.clock.advance(2)  # the entry lapses no later than the access token it vouched for
    assert await env.auth.runtime.tokens.get(key) is None
    assert (await env.client.get("/claims", headers=headers)).status_code == 401


async def test_bearer_newer_token_refreshes_a_stale_entry(make_env: Any) -> None:
    env, headers = await bearer_env(make_env)
    assert (await env.client.get("/claims", headers=headers)).status_code == 200
    await update_user(env, "alice", token_version=User.token_version + 1)  # behind our back
    fresh = bearer((await get_tokens(env.client))["access_token"])
    assert (await env.client.get("/claims", headers=fresh)).status_code == 200
    assert (await env.client.get("/claims", headers=headers)).status_code == 401


async def test_bearer_fill_never_overwrites_a_revocation(make_env: Any) -> None:
    """A fill that read the row before a revocation loses the compare-and-set."""
    env, _ = await bearer_env(make_env)
    transport = env.auth.transports[0]
    assert isinstance(transport, BearerTransport)
    tokens = env.auth.runtime.tokens
    key = transport.claims_entries.key("1")
    await transport.revoke_user(1)
    tombstone = await tokens.get(key)
    assert tombstone is not None
    await transport.revoke_user(1)  # a second revocation: a new nonce
    assert await tokens.get(key) != tombstone
    stale = '{"ver":0,"active":true,"su":false,"ev":false,"rv":false}'
    assert not await tokens.compare_and_set(key, tombstone, stale, 60)
    assert not await tokens.set_if_absent(key, stale, 60)


async def test_claims_route_needs_no_database_dependency(make_env: Any) -> None:
    env = await session_env(make_env)
    calls = 0
    original = env.auth.runtime.session_dependency

    async def counted() -> Any:
        nonlocal calls
        calls += 1
        async for db in original():
            yield db

    env.app.dependency_overrides[original] = counted
    assert (await env.client.get("/claims")).status_code == 200
    assert calls == 0
    assert (await env.client.get("/private")).status_code == 200
    assert calls == 1


async def test_a_password_change_through_the_library_ends_bearer_claims_at_once(
    make_env: Any,
) -> None:
    env: Env = await make_env(transports=[SessionTransport(), BearerTransport(refresh="body")])
    add_routes(env)
    await sign_up(env.client)
    old = bearer((await get_tokens(env.client))["access_token"])
    assert (await env.client.get("/claims", headers=old)).status_code == 200
    signed_in = await login(env.client)
    csrf = signed_in.json()["csrf_token"]
    r = await env.client.post(
        "/change-password",
        json={"current_password": "correct horse battery", "new_password": "a new long password"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    # No SQL on this route, yet the old access token dies with the change, not 15 min later.
    env.client.cookies.clear()
    assert (await env.client.get("/claims", headers=old)).status_code == 401


async def test_a_session_moved_to_a_newer_epoch_is_refused_but_kept(make_env: Any) -> None:
    """A request whose read of the user row predates a password change must not destroy the
    session that the change just moved to the new epoch."""
    env = await session_env(make_env)
    key = next(iter(await env.auth.sessions.list_for_user(1)))[0]
    assert await env.auth.sessions.store.update(key, {"token_version": 1})
    assert (await env.client.get("/private")).status_code == 401  # user row still says 0
    async with env.sessionmaker() as db:
        user = await db.get(User, 1)
        await env.auth.repo.bump_token_version(db, user)
    assert (await env.client.get("/private")).status_code == 200  # same session, now current
