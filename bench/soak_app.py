"""The soak run's app: production-shaped crudauth on Redis and PostgreSQL, behind one proxy.

Sessions and bearer tokens (refresh in the body), production argon2id parameters, the default
lockout and throttles, one trusted proxy hop (the load generator plays the proxy and says who
the client is in ``X-Forwarded-For``). Configured by ``SOAK_*`` environment variables; started
by ``bench/soak.py``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthUserMixin, BearerTransport, CookieConfig, CRUDAuth, SessionTransport

SCHEMA = os.environ.get("SOAK_PG_SCHEMA", "crudauth_soak")


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "soak_users"


engine = create_async_engine(
    os.environ.get("SOAK_DB_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
    pool_size=20,
    max_overflow=0,
    connect_args={"server_settings": {"search_path": SCHEMA}},
)
sessionmaker = async_sessionmaker(engine, expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as db:
        yield db


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SOAK_SECRET_KEY"],
    redis_url=os.environ["SOAK_REDIS_URL"],
    transports=[SessionTransport(), BearerTransport(refresh="body")],
    cookies=CookieConfig(secure=False),  # plain HTTP on loopback
    trusted_proxy_hops=1,
)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await auth.initialize()
    yield
    await auth.shutdown()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)


@app.get("/soak/health")
async def health() -> dict[str, bool]:
    return {"ok": True}
