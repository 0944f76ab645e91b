"""The benchmark's app: one crudauth app, configured from ``BENCH_*`` environment variables.

Routes (all GET unless noted):

- ``/bench/open``: no auth, no database: the unauthenticated ceiling.
- ``/bench/floor``: the user row by primary key through the app's own ``get_session``, no
  auth: the database floor every authenticated request pays.
- ``/bench/shape``: the floor's read inside a dependency shaped like ``current_user`` (the
  request plus the app's ``get_session``), no auth: what FastAPI's dependency resolution
  alone costs, so that ``protected / shape`` isolates crudauth's own share.
- ``/bench/read``: the floor's read through ``UserRepository.get``, the reader ``current_user``
  uses (a statement built once instead of ``Session.get``'s per-call ``SELECT``), no auth:
  ``protected / read`` is what crudauth adds beyond its own row read (``bench/instructions.py``).
- ``/bench/protected``: ``auth.current_user()`` (session cookie or bearer token).
- ``/bench/claims``: ``auth.current_user(load_user=False)``.
- ``/bench/sql``: how many SQL statements this process has sent (a ``before_cursor_execute``
  counter on the engine); bench-only, never in a real app.

``BENCH_OTEL_SDK=1`` installs the OpenTelemetry SDK's meter provider first, so that every
crudauth instrument records (into memory).

Run by ``bench/run.py``; not meant to be started by hand (but ``uvicorn bench_app:app
--app-dir bench`` works with the variables set).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import (
    AuthUserMixin,
    BearerTransport,
    CookieConfig,
    CRUDAuth,
    PasswordHasher,
    Principal,
    SessionTransport,
)

SECRET = "bench-secret-key-that-is-long-enough-0123456789abcdef"  # noqa: S105 - bench only
DB_URL = os.environ.get("BENCH_DB_URL", "sqlite+aiosqlite:///bench.sqlite3")
PG_SCHEMA = os.environ.get("BENCH_PG_SCHEMA", "crudauth_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL") or None
#: Bench keys never share a namespace with the test suite's, whatever Redis database it uses.
NAMESPACE = os.environ.get("BENCH_NAMESPACE", "crudauth-bench:")
FLOOR_USER_ID = int(os.environ.get("BENCH_FLOOR_USER_ID", "1"))

if os.environ.get("BENCH_OTEL_SDK") == "1":
    # The OpenTelemetry SDK records every instrument (into memory, never exported): what
    # crudauth's metrics cost an app that collects them.
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "bench_users"


def make_engine(url: str = DB_URL) -> Any:
    if url.startswith("postgresql"):
        return create_async_engine(
            url,
            # BENCH_PG_POOL: fewer on a PostgreSQL whose connections other benches share.
            pool_size=int(os.environ.get("BENCH_PG_POOL", "40")),
            max_overflow=0,
            connect_args={"server_settings": {"search_path": PG_SCHEMA}},
        )
    return create_async_engine(url)


engine = make_engine()
sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
SQL_STATEMENTS = 0


@event.listens_for(engine.sync_engine, "before_cursor_execute")
def _count(*_: Any) -> None:
    global SQL_STATEMENTS
    SQL_STATEMENTS += 1


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as db:
        yield db


def _session_transport() -> SessionTransport:
    if REDIS_URL is None:
        return SessionTransport(backend="memory")
    from redis.asyncio import Redis

    from crudauth.storage.redis import RedisSessionStore

    client = Redis.from_url(REDIS_URL)
    return SessionTransport(storage=RedisSessionStore(client, namespace=NAMESPACE))


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=SECRET,
    # Tokens minted once serve every valgrind run of bench/instructions.py (over 15 minutes).
    transports=[_session_transport(), BearerTransport(refresh="body", access_ttl=86400)],
    cookies=CookieConfig(secure=False),
    redis_url=REDIS_URL,
    rate_limit_prefix=f"{NAMESPACE}rl:" if REDIS_URL else None,
    # The login-load phase signs in continuously from one address: no per-address throttle.
    rate_limits={"login_ip": None},
    # Production argon2id parameters (m=19 MiB, t=2): logins cost what they cost for real.
    password_hasher=PasswordHasher(),
    warn_on_memory_backend=False,
)


CLIENT = os.environ.get("BENCH_REDIS_CLIENT", "lane")
if REDIS_URL is not None and CLIENT != "lane":  # ``run.py --client``: per-request reads
    from clients import install

    install(
        [auth.runtime.tokens, *(s for t in auth.transports for s in t.stores().values())],
        CLIENT,
        REDIS_URL,
    )


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await auth.initialize()
    yield
    await auth.shutdown()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)


# The order matters: the router tries routes in turn (about 11k instructions each on this
# machine), so a route further down pays for every route above it. Each compared pair is
# adjacent, crudauth's route after its baseline (protected right after floor, claims right
# after open), so the library's routes pay one route more, never one less; ``read`` (compared
# with protected only by bench/instructions.py) sits above floor, two routes above protected.


async def same_shape(request: Request, db: AsyncSession = Depends(get_session)) -> Any:
    """``current_user``'s shape (the request and the app's session), without auth."""
    return await db.get(User, FLOOR_USER_ID)


@app.get("/bench/shape")
async def shape(user: Any = Depends(same_shape)) -> dict[str, Any]:
    return {"id": user.id}


@app.get("/bench/read")
async def read(db: AsyncSession = Depends(get_session)) -> dict[str, Any]:
    user = await auth.runtime.repo.get(db, FLOOR_USER_ID)
    assert user is not None
    return {"id": user.id}


@app.get("/bench/floor")
async def floor(db: AsyncSession = Depends(get_session)) -> dict[str, Any]:
    user = await db.get(User, FLOOR_USER_ID)
    assert user is not None
    return {"id": user.id}


@app.get("/bench/protected")
async def protected(p: Principal = Depends(auth.current_user())) -> dict[str, Any]:
    return {"id": p.user_id}


@app.get("/bench/open")
async def open_route() -> dict[str, bool]:
    return {"ok": True}


@app.get("/bench/claims")
async def claims(p: Principal = Depends(auth.current_user(load_user=False))) -> dict[str, Any]:
    return {"id": p.user_id}


@app.get("/bench/sql")
async def sql_count() -> dict[str, int]:
    return {"statements": SQL_STATEMENTS}
