"""Cookie sessions: lifetimes, remember-me, the per-user cap, CSRF and key rotation."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthUserMixin, CookieConfig, CRUDAuth, Principal, SessionTransport

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "users"


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


def previous_secrets() -> list[str]:
    """Old SECRET_KEY values, newest first, kept only until their sessions have expired."""
    return [k for k in os.environ.get("SECRET_KEY_FALLBACKS", "").split(",") if k]


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    secret_fallbacks=previous_secrets(),
    transports=[
        SessionTransport(
            session_timeout_minutes=20,  # idle window of an ordinary session
            remember_me_days=14,  # idle window and cookie lifetime with remember_me=true
            max_sessions_per_user=3,  # a 4th sign-in ends the least recently used session
        )
    ],
    cookies=CookieConfig(secure=False, samesite="lax"),  # secure=False: http://localhost only
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

SignedIn = Annotated[Principal, Depends(auth.current_user())]


class TodoIn(BaseModel):
    title: str


@app.get("/todos")
async def list_todos(user: SignedIn) -> dict[str, object]:
    return {"owner": user.user_id, "todos": []}  # a safe method: no CSRF header needed


@app.post("/todos")
async def add_todo(todo: TodoIn, user: SignedIn) -> dict[str, object]:
    # Reaching this line means the request carried the session's X-CSRF-Token header.
    return {"owner": user.user_id, "title": todo.title}
