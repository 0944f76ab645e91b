"""Configuration mistakes fail at construction; key rotation and ``column_map`` work end to end."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import Boolean, Integer, String, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crudauth import (
    ConfigurationError,
    CookieConfig,
    CRUDAuth,
    FrozenClock,
    IdentityConfig,
    Principal,
    SessionTransport,
)
from crudauth.storage import DatabaseStore, MemorySessionStore
from tests.conftest import SECRET, CountingHasher, User, login, register

ROTATED_SECRET = "a-brand-new-secret-key-after-rotation-9876543210"


class OtherBase(DeclarativeBase):
    pass


class NonUniqueUsername(OtherBase):
    __tablename__ = "non_unique_username"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str] = mapped_column(String(64))  # not unique: cannot sign anyone in
    hashed_password: Mapped[str] = mapped_column(String(255))


class NoUsername(OtherBase):
    __tablename__ = "no_username"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))


class LegacyAccount(OtherBase):
    """An existing table whose columns do not follow crudauth's names."""

    __tablename__ = "legacy_accounts"

    account_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    pw_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


LEGACY_COLUMNS = {"id": "account_id", "hashed_password": "pw_hash", "is_superuser": "is_admin"}


async def no_db() -> AsyncIterator[AsyncSession]:  # construction-only tests never reach it
    raise AssertionError("no request expected")
    yield


def build(**options: Any) -> CRUDAuth:
    options.setdefault("session", no_db)
    options.setdefault("user_model", User)
    options.setdefault("SECRET_KEY", SECRET)
    options.setdefault("warn_on_memory_backend", False)
    return CRUDAuth(**options)


def test_configuration_error_is_a_value_error():
    assert issubclass(ConfigurationError, ValueError)
    with pytest.raises(ValueError):
        build(cookies=CookieConfig(samesite="none"))


# -- cookies --------------------------------------------------------------------------------


def test_samesite_none_on_the_session_cookie_is_refused():
    with pytest.raises(ConfigurationError, match="SameSite"):
        build(cookies=CookieConfig(samesite="none"))


def test_samesite_none_on_the_transport_cookie_is_refused():
    with pytest.raises(ConfigurationError, match="SameSite"):
        build(transports=[SessionTransport(cookies=CookieConfig(samesite="none"))])


def test_strict_samesite_is_accepted():
    assert build(cookies=CookieConfig(samesite="strict")).transports


# -- the model against the identity config --------------------------------------------------


def test_login_field_that_is_not_unique_is_refused():
    with pytest.raises(ConfigurationError, match="username"):
        build(user_model=NonUniqueUsername)


def test_login_field_without_a_column_is_refused():
    with pytest.raises(ConfigurationError, match="username"):
        build(user_model=NoUsername)


def test_login_fields_the_model_has_are_accepted():
    assert build(user_model=NoUsername, identity=IdentityConfig(login=["email"])).repo
    assert build(user_model=NonUniqueUsername, identity=IdentityConfig(login=["email"])).repo


def test_column_map_to_a_missing_column_is_refused():
    with pytest.raises(ConfigurationError, match="no_such_column"):
        build(user_model=User, column_map={"hashed_password": "no_such_column"})


def test_existing_table_without_its_column_map_is_refused():
    with pytest.raises(ConfigurationError):
        build(user_model=LegacyAccount)


def test_column_map_over_an_existing_table_is_accepted():
    assert build(user_model=LegacyAccount, column_map=LEGACY_COLUMNS).repo


# -- production mode ------------------------------------------------------------------------


@pytest.fixture
async def shared_store() -> AsyncIterator[DatabaseStore]:
    """A shared (SQL) home for every piece of state; construction never connects to it."""
    engine = create_async_engine("sqlite+aiosqlite://")
    yield DatabaseStore(async_sessionmaker(engine, expire_on_commit=False))
    await engine.dispose()


def production(store: DatabaseStore, **options: Any) -> CRUDAuth:
    options.setdefault("cookies", CookieConfig())
    options.setdefault("database_store", store)
    return build(production=True, **options)


def test_production_accepts_a_sound_configuration(shared_store):
    auth = production(shared_store)

    assert auth.production is True
    assert auth.sessions.store.in_memory is False


@pytest.mark.parametrize("weak", ["short-secret", "secret", "changeme", "a" * 64])
def test_production_refuses_a_weak_secret(shared_store, weak):
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        production(shared_store, SECRET_KEY=weak)


def test_production_refuses_a_weak_fallback_secret(shared_store):
    with pytest.raises(ConfigurationError, match="secret_fallbacks"):
        production(shared_store, secret_fallbacks=["old"])


def test_production_refuses_insecure_cookies(shared_store):
    with pytest.raises(ConfigurationError, match="secure"):
        production(shared_store, cookies=CookieConfig(secure=False))


def test_production_refuses_the_memory_backend():
    with pytest.raises(ConfigurationError, match="in-memory"):
        build(production=True, cookies=CookieConfig())


def test_production_refuses_a_memory_session_store_beside_a_shared_one(shared_store):
    with pytest.raises(ConfigurationError, match="in-memory"):
        production(shared_store, transports=[SessionTransport(storage=MemorySessionStore())])


def test_production_from_the_environment_refuses_the_memory_backend(monkeypatch):
    monkeypatch.setenv("CRUDAUTH_ENV", "production")

    with pytest.raises(ConfigurationError, match="in-memory"):
        build(cookies=CookieConfig())


def test_empty_secret_is_refused():
    with pytest.raises(ConfigurationError):
        build(SECRET_KEY="")


# -- the memory-backend warning -------------------------------------------------------------


def memory_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "crudauth" and r.levelno == logging.WARNING and "in-memory" in r.getMessage()
    ]


def test_memory_backend_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        auth = build(warn_on_memory_backend=True)
        auth.router  # noqa: B018 - building the routes must not warn again
        auth.current_user()

    assert len(memory_warnings(caplog)) == 1


def test_memory_backend_warning_can_be_silenced(caplog):
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        build(warn_on_memory_backend=False)

    assert memory_warnings(caplog) == []


def test_shared_backend_does_not_warn(caplog, shared_store):
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        build(warn_on_memory_backend=True, database_store=shared_store)

    assert memory_warnings(caplog) == []


# -- key rotation ---------------------------------------------------------------------------


def session_dependency(env: Any) -> Any:
    async def get_session() -> AsyncIterator[AsyncSession]:
        async with env.sessionmaker() as db:
            yield db

    return get_session


def rebuilt_app(env: Any, store: MemorySessionStore, **options: Any) -> httpx.AsyncClient:
    """The same app restarted with new options, over the same database and session store."""
    auth = CRUDAuth(
        session=session_dependency(env),
        user_model=User,
        transports=[SessionTransport(storage=store)],
        cookies=CookieConfig(secure=False),
        warn_on_memory_backend=False,
        clock=env.clock,
        password_hasher=CountingHasher(),
        **options,
    )
    app = FastAPI()
    app.include_router(auth.router)

    @app.post("/private")
    async def private_post(p: Principal = Depends(auth.current_user())) -> dict[str, Any]:
        return {"user_id": p.user_id}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def session_under_old_key(make_env: Any) -> tuple[Any, MemorySessionStore, str, str]:
    store = MemorySessionStore(FrozenClock())
    env = await make_env(transports=[SessionTransport(storage=store)])
    await register(env.client)
    r = await login(env.client)
    assert r.status_code == 200, r.text
    return env, store, r.cookies["session_id"], r.json()["csrf_token"]


async def test_session_survives_rotation_into_secret_fallbacks(make_env):
    env, store, session_id, _ = await session_under_old_key(make_env)

    async with rebuilt_app(
        env, store, SECRET_KEY=ROTATED_SECRET, secret_fallbacks=[SECRET]
    ) as client:
        r = await client.get("/me", headers={"Cookie": f"session_id={session_id}"})

    assert r.status_code == 200, r.text
    assert r.json()["username"] == "alice"


async def test_csrf_token_survives_rotation_into_secret_fallbacks(make_env):
    env, store, session_id, csrf = await session_under_old_key(make_env)

    async with rebuilt_app(
        env, store, SECRET_KEY=ROTATED_SECRET, secret_fallbacks=[SECRET]
    ) as client:
        cookie = {"Cookie": f"session_id={session_id}"}
        r = await client.post("/private", headers={**cookie, "X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        r = await client.post("/logout", headers={**cookie, "X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        assert (await client.get("/me", headers=cookie)).status_code == 401


async def test_rotated_app_issues_sessions_under_the_new_key(make_env):
    env, store, _, _ = await session_under_old_key(make_env)

    async with rebuilt_app(
        env, store, SECRET_KEY=ROTATED_SECRET, secret_fallbacks=[SECRET]
    ) as client:
        r = await login(client)
        assert r.status_code == 200, r.text
        new_id = r.cookies["session_id"]
        assert (await client.get("/me")).status_code == 200

    # Dropping the old key later does not end sessions made under the new one.
    async with rebuilt_app(env, store, SECRET_KEY=ROTATED_SECRET) as client:
        r = await client.get("/me", headers={"Cookie": f"session_id={new_id}"})
        assert r.status_code == 200, r.text


async def test_without_the_fallback_old_sessions_end(make_env):
    env, store, session_id, _ = await session_under_old_key(make_env)

    async with rebuilt_app(env, store, SECRET_KEY=ROTATED_SECRET) as client:
        r = await client.get("/me", headers={"Cookie": f"session_id={session_id}"})

    assert r.status_code == 401


# -- column_map over an existing table ------------------------------------------------------


async def legacy_app(make_env: Any) -> tuple[httpx.AsyncClient, async_sessionmaker[AsyncSession]]:
    env = await make_env()  # for its database engine
    engine = env.sessionmaker.kw["bind"]
    async with engine.begin() as conn:
        await conn.run_sync(OtherBase.metadata.drop_all)
        await conn.run_sync(OtherBase.metadata.create_all)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessionmaker() as db:
            yield db

    auth = CRUDAuth(
        session=get_session,
        user_model=LegacyAccount,
        SECRET_KEY=SECRET,
        column_map=LEGACY_COLUMNS,
        cookies=CookieConfig(secure=False),
        warn_on_memory_backend=False,
        clock=FrozenClock(),
        password_hasher=CountingHasher(),
    )
    app = FastAPI()
    app.include_router(auth.router)

    @app.get("/admin")
    async def admin(p: Principal = Depends(auth.current_user(superuser=True))) -> dict[str, Any]:
        return {"user_id": p.user_id}

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    return client, sessionmaker


async def test_column_map_registers_and_logs_in(make_env):
    client, sessionmaker = await legacy_app(make_env)
    async with client:
        r = await register(client)
        assert r.status_code == 200, r.text
        account_id = r.json()["id"]

        async with sessionmaker() as db:
            row = await db.get(LegacyAccount, account_id)
            assert row is not None
            assert row.pw_hash.startswith("$argon2id$")
            assert row.is_admin is False

        r = await login(client, username="Alice@Example.com")
        assert r.status_code == 200, r.text
        assert r.json()["id"] == account_id
        r = await client.get("/me")
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == account_id
        assert r.json()["is_superuser"] is False


async def test_column_map_drives_the_superuser_gate(make_env):
    client, sessionmaker = await legacy_app(make_env)
    async with client:
        await register(client)
        assert (await login(client)).status_code == 200
        assert (await client.get("/admin")).status_code == 403

        async with sessionmaker() as db:
            await db.execute(update(LegacyAccount).values(is_admin=True))
            await db.commit()

        assert (await client.get("/admin")).status_code == 200
        assert (await client.get("/me")).json()["is_superuser"] is True


async def test_column_map_ignores_privileged_fields_by_their_column_name(make_env):
    client, sessionmaker = await legacy_app(make_env)
    async with client:
        r = await client.post(
            "/register",
            json={
                "username": "mallory",
                "email": "mallory@example.com",
                "password": "correct horse battery",
                "is_admin": True,
                "pw_hash": "!planted",
                "account_id": 999,
            },
        )
        assert r.status_code == 200, r.text
        async with sessionmaker() as db:
            row = await db.get(LegacyAccount, r.json()["id"])
        assert row is not None
        assert row.account_id != 999
        assert row.is_admin is False
        assert row.pw_hash.startswith("$argon2id$")
