"""Two-factor sign-in: TOTP with recovery codes, required for admins, step-up by code."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import CRUDAuth, Principal, SudoConfig, make_auth_identity
from crudauth.mfa import MfaConfig

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class User(make_auth_identity(mfa=True), Base):  # type: ignore[misc]
    __tablename__ = "users"


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


def mfa_keys() -> list[str]:
    """Fernet keys, newest first. To rotate: MFA_KEYS="new,old", then later just "new"."""
    return [key for key in os.environ["MFA_KEYS"].split(",") if key]


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    mfa=MfaConfig(
        issuer="Example",
        encryption_key=mfa_keys(),
        required=lambda user: user.is_superuser,  # admins enrol at their next sign-in
    ),
    sudo=SudoConfig(),  # POST /sudo takes {"password": ...} or {"code": ...}
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


@app.post("/api/close-account")
async def close_account(
    principal: Annotated[Principal, Depends(auth.require_sudo())],
) -> dict[str, str]:
    return {"detail": f"account {principal.user_id} will be closed"}


async def reencrypt_secrets() -> int:
    """After a new key went first in MFA_KEYS: re-encrypt every stored secret under it (run
    once from a one-off script or a shell), then drop the old key from MFA_KEYS."""
    assert auth.mfa is not None
    async with SessionLocal() as db:
        return await auth.mfa.reencrypt_all(db)
