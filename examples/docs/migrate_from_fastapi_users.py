"""An app moved from fastapi-users: its users table as it is, plus one column."""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel, EmailStr
from sqlalchemy import Boolean, Integer, String, Uuid, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crudauth import BearerTransport, CRUDAuth, IdentityConfig, Principal, SessionTransport
from crudauth.utils import canonical_email

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class User(Base):
    """The table of fastapi-users' SQLAlchemyBaseUserTableUUID, unchanged but for one column."""

    __tablename__ = "user"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    hashed_password: Mapped[str] = mapped_column(String(1024))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # The one column to add: bumping it ends every session and token of the account.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SignUp(BaseModel):
    """fastapi-users' register body, without a username."""

    email: EmailStr
    password: str


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    column_map={"email_verified": "is_verified"},
    identity=IdentityConfig(login=["email"], recovery="email"),
    register_schema=SignUp,
    # CookieTransport + DatabaseStrategy/RedisStrategy, and BearerTransport + JWTStrategy.
    transports=[SessionTransport(), BearerTransport(refresh="body")],
)

# fastapi_users.current_user(active=True) and current_user(active=True, superuser=True).
current_active_user = auth.current_user()
current_superuser = auth.current_user(superuser=True)


async def lower_case_emails(db: AsyncSession) -> int:
    """The one data step: crudauth stores and compares addresses in their canonical form.

    fastapi-users kept them as typed. Two rows that differ only by case make the commit fail:
    merge or rename one of them first.
    """
    changed = 0
    for user in (await db.scalars(select(User))).all():
        canonical = canonical_email(user.email)
        if user.email != canonical:
            user.email = canonical
            changed += 1
    await db.commit()
    return changed


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with SessionLocal() as db:
        await lower_case_emails(db)
    await auth.initialize()
    yield
    await auth.shutdown()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
# fastapi-users mounted its routers under /auth and /users; one prefix keeps the URLs close.
app.include_router(auth.router, prefix="/auth")


@app.get("/protected")
async def protected(user: Annotated[Principal, Depends(current_active_user)]) -> dict[str, str]:
    return {"hello": user.user.email}


@app.get("/admin")
async def admin(user: Annotated[Principal, Depends(current_superuser)]) -> dict[str, bool]:
    return {"admin": user.is_superuser}
