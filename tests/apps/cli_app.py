"""An app for the ``crudauth`` command's tests, configured by the environment.

CLI_DATABASE_URL (and CLI_DATABASE_SCHEMA for PostgreSQL), CLI_REDIS_URL (sessions and counters
in Redis), CLI_SQL_STORE=1 (sessions and counters in SQL), CLI_PRODUCTION=1 (secure cookies,
OWASP hashing, production mode). ``EVENTS`` records the audit events of this process.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from crudauth import CookieConfig, CRUDAuth, PasswordHasher, Principal
from crudauth.audit import AuditEvent
from crudauth.storage.database import DatabaseStore
from tests.conftest import SECRET, Base, User

URL = os.environ.get("CLI_DATABASE_URL", "sqlite+aiosqlite:///./cli-test.db")
SCHEMA = os.environ.get("CLI_DATABASE_SCHEMA")
PRODUCTION = os.environ.get("CLI_PRODUCTION") == "1"
# Every command runs its own event loop: no pooled connection may outlive one.
engine = create_async_engine(
    URL,
    poolclass=NullPool,
    connect_args={"server_settings": {"search_path": SCHEMA}} if SCHEMA else {},
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
EVENTS: list[AuditEvent] = []


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


options: dict[str, Any] = {}
if os.environ.get("CLI_REDIS_URL"):
    options["redis_url"] = os.environ["CLI_REDIS_URL"]
if os.environ.get("CLI_SQL_STORE") == "1":
    options["database_store"] = DatabaseStore(SessionLocal)

auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=SECRET,
    cookies=CookieConfig(secure=PRODUCTION),
    password_hasher=None if PRODUCTION else PasswordHasher(time_cost=1, memory_cost=8),
    production=PRODUCTION,
    warn_on_memory_backend=False,
    audit=EVENTS.append,
    **options,
)
app = FastAPI()
app.include_router(auth.router)


@app.get("/private")
async def private(p: Principal = Depends(auth.current_user())) -> dict[str, Any]:
    return {"user_id": p.user_id}


async def create_tables() -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    store = options.get("database_store")
    if store is not None:
        await store.create_tables()
