"""Account shapes: a username-only model, and an existing table mapped with ``column_map``.

Each shape gets its own small app, driven over HTTP on SQLite and PostgreSQL.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import Boolean, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crudauth import (
    ConfigurationError,
    CookieConfig,
    CRUDAuth,
    FrozenClock,
    IdentityConfig,
    Principal,
    SessionTransport,
    SudoConfig,
    make_auth_identity,
)
from tests.conftest import SECRET, CountingHasher, _engine

PASSWORD = "correct horse battery"


class PlayerBase(DeclarativeBase):
    pass


class Player(make_auth_identity(identifiers=["username"], recovery=None, oauth=False), PlayerBase):  # type: ignore[misc]
    __tablename__ = "shape_players"


class LegacyBase(DeclarativeBase):
    pass


class Account(LegacyBase):
    """A table that predates crudauth, with names of its own."""

    __tablename__ = "shape_accounts"

    account_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    mail: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    pw_hash: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    mail_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    token_version: Mapped[int] = mapped_column(Integer, default=0)


COLUMN_MAP = {
    "id": "account_id",
    "username": "login",
    "email": "mail",
    "hashed_password": "pw_hash",
    "is_active": "enabled",
    "is_superuser": "is_admin",
    "email_verified": "mail_confirmed",
}


@pytest.fixture
async def build(database_url: str) -> AsyncIterator[Any]:
    engines: list[Any] = []
    clients: list[httpx.AsyncClient] = []

    async def factory(base: type[DeclarativeBase], model: type[Any], **options: Any) -> Any:
        engine = _engine(database_url)
        engines.append(engine)
        async with engine.begin() as conn:
            await conn.run_sync(base.metadata.drop_all)
            await conn.run_sync(base.metadata.create_all)
        maker = async_sessionmaker(engine, expire_on_commit=False)

        async def get_session() -> AsyncIterator[AsyncSession]:
            async with maker() as db:
                yield db

        auth = CRUDAuth(
            session=get_session,
            user_model=model,
            SECRET_KEY=SECRET,
            clock=FrozenClock(),
            password_hasher=CountingHasher(),
            cookies=CookieConfig(secure=False),
            warn_on_memory_backend=False,
            **options,
        )
        app = FastAPI()
        app.include_router(auth.router)

        @app.get("/whoami")
        async def whoami(p: Annotated[Principal, Depends(auth.current_user())]) -> dict[str, Any]:
            return {"id": p.user_id, "admin": p.is_superuser}

        def client() -> httpx.AsyncClient:
            c = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            )
            clients.append(c)
            return c

        return auth, app, client, maker

    yield factory
    for c in clients:
        await c.aclose()
    for engine in engines:
        await engine.dispose()


# -- username-only ------------------------------------------------------------------------------


async def test_username_only_register_login_and_me(build):
    _, _, client, _ = await build(
        PlayerBase, Player, identity=IdentityConfig(login=["username"], recovery=None)
    )
    c = client()
    r = await c.post("/register", json={"username": "Zed", "password": PASSWORD})
    assert (r.status_code, r.json()) == (200, {"id": 1, "email": None, "username": "Zed"})
    r = await c.post("/register", json={"username": "zed", "password": PASSWORD})
    assert (r.status_code, r.json()["detail"]) == (422, "Username already taken")

    r = await c.post("/login", data={"username": "ZED", "password": PASSWORD})
    assert r.status_code == 200, r.text
    r = await c.get("/me")
    assert r.json()["username"] == "Zed" and r.json()["email"] is None


async def test_username_only_mounts_no_recovery_routes(build):
    _, app, client, _ = await build(
        PlayerBase, Player, identity=IdentityConfig(login=["username"], recovery=None)
    )
    paths = {getattr(route, "path", "") for route in app.routes}
    assert not any(p.startswith(("/email", "/password")) for p in paths)
    r = await client().post("/password/reset-request", json={"username": "zed"})
    assert r.status_code == 404


async def test_username_only_refuses_verified_gates(build):
    auth, *_ = await build(
        PlayerBase, Player, identity=IdentityConfig(login=["username"], recovery=None)
    )
    with pytest.raises(ConfigurationError):
        auth.current_user(verified=True)


async def test_username_only_change_password_and_sudo(build):
    _, _, client, _ = await build(
        PlayerBase,
        Player,
        identity=IdentityConfig(login=["username"], recovery=None),
        transports=[SessionTransport(management_routes=True)],
        sudo=SudoConfig(),
    )
    c = client()
    await c.post("/register", json={"username": "zed", "password": PASSWORD})
    csrf = (await c.post("/login", data={"username": "zed", "password": PASSWORD})).json()[
        "csrf_token"
    ]
    r = await c.post("/sudo", json={"password": PASSWORD}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf_token"]
    r = await c.post(
        "/change-password",
        json={"current_password": PASSWORD, "new_password": "another passphrase"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    assert len((await c.get("/sessions")).json()) == 1


# -- existing table -----------------------------------------------------------------------------


async def test_existing_table_through_column_map(build):
    _, _, client, maker = await build(
        LegacyBase,
        Account,
        column_map=COLUMN_MAP,
        identity=IdentityConfig(login=["username", "email"], recovery="email"),
        transports=[SessionTransport(management_routes=True)],
    )
    c = client()
    r = await c.post(
        "/register",
        json={"username": "Alice", "email": "Alice@Example.com", "password": PASSWORD},
    )
    assert r.status_code == 200, r.text
    # Privileged fields stay gated under their mapped names too.
    r = await c.post(
        "/register",
        json={"username": "mallory", "email": "m@example.com", "password": PASSWORD,
              "is_admin": True, "enabled": True},
    )  # fmt: skip
    assert r.status_code in (200, 422)
    async with maker() as db:
        mallory = (await db.scalars(select(Account).where(Account.login == "mallory"))).first()
        assert mallory is None or mallory.is_admin is False

    other = client()
    csrf = (
        await c.post("/login", data={"username": "alice@example.com", "password": PASSWORD})
    ).json()["csrf_token"]
    assert (
        await other.post("/login", data={"username": "ALICE", "password": PASSWORD})
    ).status_code == 200
    assert (await c.get("/whoami")).json() == {"id": 1, "admin": False}
    assert len((await c.get("/sessions")).json()) == 2

    r = await c.post(
        "/change-password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    assert (await other.get("/whoami")).status_code == 401
    async with maker() as db:
        account = (await db.scalars(select(Account).where(Account.login == "Alice"))).one()
        assert account.token_version == 1
        assert account.pw_hash.startswith("$argon2id$")


async def test_existing_table_without_the_map_is_refused():
    with pytest.raises(ConfigurationError):
        CRUDAuth(session=lambda: None, user_model=Account, SECRET_KEY=SECRET)
