"""Regression tests for the findings of the first security review, named after what they fix."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from crudauth import BearerTransport, SessionTransport
from crudauth.storage import DatabaseStore
from tests.conftest import PG_SCHEMA, POSTGRES_URL, login, register

PASSWORD = "correct horse battery"


async def attempt(env, identifier: str, password: str, ip: str):
    return await env.client.post(
        "/login",
        data={"username": identifier, "password": password},
        headers={"X-Forwarded-For": ip},
    )


async def test_a_success_clears_the_account_budget_too(make_env):
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    for i in range(4):
        assert (
            await attempt(env, "alice@example.com", "nope nope", f"10.0.0.{i}")
        ).status_code == 401
    assert (await attempt(env, "alice", PASSWORD, "10.0.2.1")).status_code == 200
    env.client.cookies.clear()
    for i in range(5):  # a full fresh budget after the success
        assert (await attempt(env, "alice", "nope nope", f"10.0.3.{i}")).status_code == 401


async def test_session_logout_revokes_the_refresh_family_of_the_same_browser(make_env):
    env = await make_env(transports=[SessionTransport(), BearerTransport(refresh="cookie")])
    await register(env.client)
    r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200
    refresh_cookie = env.client.cookies.get("refresh_token")
    assert refresh_cookie
    csrf = (await login(env.client)).json()["csrf_token"]
    assert (await env.client.post("/logout", headers={"X-CSRF-Token": csrf})).status_code == 200
    # A copy of the refresh cookie taken before the logout is dead on the server too.
    env.client.cookies.clear()
    env.client.cookies.set("refresh_token", refresh_cookie)
    assert (await env.client.post("/refresh")).status_code == 401


async def test_junk_credentials_do_not_sign_the_presented_session_out(make_env):
    env = await make_env()
    await register(env.client)
    await login(env.client)
    r = await env.client.post("/login", data={"username": "alice", "password": "not it at all"})
    assert r.status_code == 401
    assert (await env.client.get("/me")).status_code == 200


async def test_concurrent_sets_of_one_key_never_fail_on_postgres():
    engine = create_async_engine(
        POSTGRES_URL, connect_args={"server_settings": {"search_path": PG_SCHEMA}}
    )
    store = DatabaseStore(
        async_sessionmaker(engine),
        store_table="review_store",
        session_table="review_sessions",
        counter_table="review_counters",
    )
    await store.create_tables()
    values = store.kv_store()
    await asyncio.gather(*(values.set("reset:alice", str(i), 60) for i in range(30)))
    assert await values.get("reset:alice") is not None
    async with engine.begin() as conn:
        await conn.run_sync(store.metadata.drop_all)
    await engine.dispose()
