"""Email verification, password reset and email change, with mail handed to your own sender."""

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import (
    AuthHooks,
    AuthUserMixin,
    CookieConfig,
    CRUDAuth,
    EmailConfig,
    EmailContext,
    HookContext,
    Principal,
)

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
security_log = logging.getLogger("app.security")


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "users"


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


class MailQueue:
    """Your mail transport. Here it only logs; in production, enqueue or call your provider."""

    def send(self, *, to: str, subject: str, body: str, kind: str, context: EmailContext) -> None:
        # `body` ends with the link; `context` lets you render your own template instead.
        security_log.info("mail %s to %s: %s", kind, to, subject)


def password_was_reset(user: dict[str, Any], *, db: AsyncSession, context: HookContext) -> None:
    # `user` never contains the password hash.
    security_log.warning("password reset for user %s from %s", user["id"], context.ip_address)


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    email=EmailConfig(
        sender=MailQueue(),
        frontend_url=os.environ.get("FRONTEND_URL", "https://app.example.com"),
        reset_ttl=timedelta(minutes=30),  # stricter than the default hour
        reset_path="/account/reset",  # the page of your frontend that reads ?token=
    ),
    hooks=AuthHooks(on_after_password_reset=password_was_reset),
    cookies=CookieConfig(secure=False),  # http://localhost only; keep the default in production
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


@app.get("/billing")
async def billing(
    user: Annotated[Principal, Depends(auth.current_user(verified=True))],
) -> dict[str, str]:
    """Only for accounts whose email address has been confirmed."""
    return {"plan": "pro"}
