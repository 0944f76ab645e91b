"""Account management: device list, sign out everywhere, password change and sudo mode."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import (
    AuthUserMixin,
    CookieConfig,
    CRUDAuth,
    PasswordPolicy,
    Principal,
    SessionTransport,
    SudoConfig,
    common_password_validator,
    context_words_validator,
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
    # GET /sessions, DELETE /sessions/{id}, POST /logout-all and POST /csrf/refresh
    transports=[SessionTransport(management_routes=True)],
    # POST /sudo, and auth.require_sudo() for routes that need a fresh password
    sudo=SudoConfig(window_seconds=300),
    # Refuse the 10,000 most common passwords and ones built on the user's own names
    password_policy=PasswordPolicy(
        min_length=12,
        validators=[common_password_validator(), context_words_validator(["example"])],
    ),
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
app.include_router(auth.router)


@app.post("/account/delete")
async def delete_account(
    user: Annotated[Principal, Depends(auth.require_sudo())],
    db: Annotated[AsyncSession, Depends(get_session)],
) -> dict[str, str]:
    """Only inside this session's sudo window: the password was confirmed minutes ago."""
    await auth.repo.update(db, user.user, {"is_active": False})
    return {"detail": "Account closed."}
