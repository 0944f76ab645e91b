"""Existing users table: map crudauth's logical fields onto your own column names."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import Boolean, Index, Integer, String, func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crudauth import CookieConfig, CRUDAuth, IdentityConfig, Principal

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Account(Base):
    """A table that existed before crudauth, with its own names."""

    __tablename__ = "accounts"

    account_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    mail: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    pw_hash: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    mail_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumping this ends every session of the account (sign out everywhere).
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    display_name: Mapped[str | None] = mapped_column(String(100), nullable=True)


# crudauth looks logins up case-insensitively; this index makes the database agree, so "Alice"
# and "alice" can never both exist, even when two sign-ups race.
Index("uq_accounts_login_ci", func.lower(Account.login), unique=True)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


auth = CRUDAuth(
    session=get_session,
    user_model=Account,
    SECRET_KEY=os.environ["SECRET_KEY"],
    column_map={
        "id": "account_id",
        "username": "login",
        "email": "mail",
        "hashed_password": "pw_hash",
        "is_active": "enabled",
        "is_superuser": "is_admin",
        "email_verified": "mail_confirmed",
    },
    identity=IdentityConfig(login=["username", "email"], recovery="email"),
    cookies=CookieConfig(secure=False),  # plain http://localhost only; never in production
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await auth.initialize()
    yield
    await auth.shutdown()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)


@app.get("/profile")
async def profile(user: Annotated[Principal, Depends(auth.current_user())]) -> dict[str, object]:
    account: Account = user.user  # the ORM row of your own model
    return {"account_id": account.account_id, "login": account.login, "admin": account.is_admin}
