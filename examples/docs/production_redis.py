"""Going to production: shared state in Redis, secrets and settings from the environment."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthUserMixin, CRUDAuth, Principal, SessionTransport
from crudauth.ratelimit import redis_rate_limiter

REDIS_URL = os.environ["REDIS_URL"]  # e.g. redis://redis.internal:6379/0
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
    # Sessions, CSRF bindings and single-use tokens in Redis ...
    transports=[SessionTransport(backend="redis", redis_url=REDIS_URL)],
    # ... and the lockout and throttle counters too.
    rate_limiter=redis_rate_limiter(REDIS_URL),
    # How many proxies you run in front of the app (0: clients connect directly).
    trusted_proxy_hops=int(os.environ.get("TRUSTED_PROXY_HOPS", "0")),
    # No cookies=CookieConfig(secure=False): cookies are Secure, sent over HTTPS only.
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:  # use migrations (e.g. Alembic) in a real project
        await conn.run_sync(Base.metadata.create_all)
    await auth.initialize()  # connects to Redis; raises StoreUnavailable if it cannot
    yield
    await auth.shutdown()  # closes the connections crudauth opened
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)


@app.get("/hello")
async def hello(user: Annotated[Principal, Depends(auth.current_user())]) -> dict[str, str]:
    return {"message": f"Hello, user {user.user_id}"}
