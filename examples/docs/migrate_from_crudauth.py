"""An app written for crudauth 0.8, moved to this package: the same code, plus one data step."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import CRUDAuth, Principal, SessionTransport
from crudauth.models import AuthUserMixin
from crudauth.utils import canonical_identifier

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "users"


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    transports=[
        SessionTransport(
            management_routes=True,
            # 0.8 had no absolute lifetime; this package caps sessions at 12 hours unless told.
            absolute_timeout_hours=7 * 24,
        )
    ],
)


async def fill_username_keys(db: AsyncSession) -> int:
    """The one data step: give rows written by 0.8 their case-insensitive username key.

    Run it once after adding the ``username_key`` column (String(255), unique, indexed; see
    "The user model"). Rows that collide (``Alice`` and ``alice``) make the commit fail: rename
    one of them first.
    """
    rows = (await db.scalars(select(User).where(User.username_key.is_(None)))).all()
    for user in rows:
        user.username_key = canonical_identifier(user.username)
    await db.commit()
    return len(rows)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with SessionLocal() as db:
        await fill_username_keys(db)
    await auth.initialize()
    yield
    await auth.shutdown()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)


@app.get("/dashboard")
async def dashboard(user: Annotated[Principal, Depends(auth.current_user())]) -> dict[str, str]:
    return {"hello": user.user.username}
