"""Web and API on one app: browsers use sessions, scripts use bearer tokens."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import (
    AuthUserMixin,
    BearerTransport,
    CookieConfig,
    CRUDAuth,
    Principal,
    SessionTransport,
)

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
    # Order is precedence: a request with a session cookie is a session request, even if it
    # also carries an Authorization header.
    transports=[SessionTransport(), BearerTransport(refresh="cookie")],
    cookies=CookieConfig(secure=False),  # secure=False: http://localhost only
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


@app.post("/profile")
async def update_profile(
    user: Annotated[Principal, Depends(auth.current_user())],
) -> dict[str, object]:
    # Sessions must send X-CSRF-Token here; bearer requests need no CSRF token.
    return {"user_id": user.user_id, "via": user.transport}


@app.get("/api/export")
async def export(
    user: Annotated[Principal, Depends(auth.current_user(transport="bearer"))],
) -> dict[str, object]:
    # Only a bearer token opens this route; a session cookie gets 401.
    return {"user_id": user.user_id, "rows": []}
