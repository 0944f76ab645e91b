"""Fast routes: claims without SQL, one row read per request, and revocation that bites at once."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthUserMixin, CookieConfig, CRUDAuth, Principal

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
    cookies=CookieConfig(secure=False),  # plain http://localhost only; never in production
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:  # use migrations (e.g. Alembic) in a real project
        await conn.run_sync(Base.metadata.create_all)
    await auth.initialize()
    yield
    await auth.shutdown()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)

Db = Annotated[AsyncSession, Depends(get_session)]
# Built once, executed with a parameter: cheaper than Session.get's per-call SELECT.
USER_BY_ID = select(User).where(User.id == bindparam("user_id"))


@app.get("/profile")
async def profile(principal: Annotated[Principal, Depends(auth.current_user())], db: Db) -> Any:
    """The full path: one SELECT, and the row is an instance of this request's session."""
    user = principal.user
    return {"username": user.username, "same_session": user in db}


@app.get("/feed")
async def feed(principal: Annotated[Principal, Depends(auth.current_user(load_user=False))]) -> Any:
    """Claims only: no SQL at all, and a revoked session is refused on its next request."""
    return {"user_id": principal.user_id, "row_loaded": principal.user is not None}


@app.get("/users/{user_id}")
async def user_card(
    user_id: int, _: Annotated[Principal, Depends(auth.current_user(load_user=False))], db: Db
) -> Any:
    found = await db.execute(USER_BY_ID, {"user_id": user_id})
    user = found.unique().scalars().one_or_none()
    if user is None:
        raise HTTPException(status_code=404, detail="No such user")
    return {"username": user.username}


@app.post("/users/{user_id}/deactivate")
async def deactivate(
    user_id: int, _: Annotated[Principal, Depends(auth.current_user(superuser=True))], db: Db
) -> Any:
    user = await db.get(User, user_id)
    if user is None:
        raise HTTPException(status_code=404, detail="No such user")
    user.is_active = False
    await db.commit()
    # After the commit: end the user's sessions everywhere, claims-only routes included.
    ended = await auth.revoke_user(user_id)
    return {"sessions_ended": ended}
