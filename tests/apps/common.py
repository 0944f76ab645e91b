"""The user model and database session shared by the test apps that run as real servers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthUserMixin


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "users"


def make_engine(url: str, schema: str | None):
    if url.startswith("postgresql") and schema:
        return create_async_engine(url, connect_args={"server_settings": {"search_path": schema}})
    return create_async_engine(url)


engine = make_engine(
    os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./test-app.db"),
    os.environ.get("DATABASE_SCHEMA"),
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db
