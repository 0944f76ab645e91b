"""Going to production without Redis: every piece of auth state in the app's SQL database."""

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthUserMixin, CRUDAuth, Principal
from crudauth.storage import DatabaseStore

logger = logging.getLogger(__name__)

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "users"


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


# crudauth's tables join your metadata, so create_all (or Alembic) creates them with yours.
store = DatabaseStore(SessionLocal, metadata=Base.metadata)

auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    database_store=store,  # sessions, CSRF, single-use tokens and counters, all in SQL
)


async def purge_every(seconds: float) -> None:
    """Delete expired sessions, tokens and counters from time to time."""
    while True:
        await asyncio.sleep(seconds)
        try:
            removed = await store.purge_expired()
        except Exception:
            logger.exception("purging expired auth state failed; will retry")
        else:
            logger.info("purged %d expired auth rows", removed)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:  # use migrations (e.g. Alembic) in a real project
        await conn.run_sync(Base.metadata.create_all)
    await auth.initialize()
    purger = asyncio.create_task(purge_every(15 * 60))
    yield
    purger.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await purger
    await auth.shutdown()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)


@app.get("/hello")
async def hello(user: Annotated[Principal, Depends(auth.current_user())]) -> dict[str, str]:
    return {"message": f"Hello, user {user.user_id}"}
