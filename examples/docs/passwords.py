"""Passwords: a stricter policy, and importing users whose hashes came from another system."""

import base64
import hashlib
import hmac
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
    PasswordContext,
    PasswordPolicy,
    Principal,
    make_unusable_password,
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


def not_the_username(password: str, context: PasswordContext) -> None:
    """A custom rule: raise ValueError to refuse, with the message the client will see."""
    if context.username and context.username.lower() in password.lower():
        raise ValueError("Password must not contain the username")


def verify_django_pbkdf2(password: str, hashed: str) -> bool:
    """A legacy verifier for Django's ``pbkdf2_sha256$<iterations>$<salt>$<base64 digest>``."""
    algorithm, _, rest = hashed.partition("$")
    if algorithm != "pbkdf2_sha256" or rest.count("$") != 2:
        return False
    iterations, salt, expected = rest.split("$")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    return hmac.compare_digest(base64.b64encode(digest).decode(), expected)


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    password_policy=PasswordPolicy(
        min_length=12, require_digit=True, validators=[not_the_username]
    ),
    legacy_verifiers=[verify_django_pbkdf2],
    cookies=CookieConfig(secure=False),  # plain http://localhost only; never in production
)


async def import_user(
    db: AsyncSession, *, username: str, email: str, password_hash: str | None
) -> User:
    """Copy an account from an older system, keeping the hash it already has.

    bcrypt hashes (plain, or the SHA-256-prehashed format of earlier crudauth versions) and
    Django's PBKDF2 hashes (through the legacy verifier above) are accepted as they are and
    replaced by argon2id the first time the user signs in. An account without a password gets
    an unusable one: no password will ever match it.
    """
    user = User(
        username=username,
        email=email.strip().lower(),
        hashed_password=password_hash or make_unusable_password(),
    )
    db.add(user)
    await db.commit()
    return user


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


@app.get("/account")
async def account(user: Annotated[Principal, Depends(auth.current_user())]) -> dict[str, str]:
    return {"username": user.user.username}
