"""Username-only accounts: no email column, no recovery factor."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import CookieConfig, CRUDAuth, IdentityConfig, Principal, make_auth_identity

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)

UsernameIdentity = make_auth_identity(identifiers=["username"], recovery=None, oauth=False)


class Base(DeclarativeBase):
    pass


class Player(UsernameIdentity, Base):
    __tablename__ = "players"


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


auth = CRUDAuth(
    session=get_session,
    user_model=Player,
    SECRET_KEY=os.environ["SECRET_KEY"],
    identity=IdentityConfig(login=["username"], recovery=None),
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
app.include_router(auth.router)  # POST /register takes {"username", "password"}


@app.get("/lobby")
async def lobby(user: Annotated[Principal, Depends(auth.current_user())]) -> dict[str, str]:
    return {"player": user.user.username}
