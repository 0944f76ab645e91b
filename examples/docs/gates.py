"""Gates: who may call a route, declared with auth.current_user(...)."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthUserMixin, CookieConfig, CRUDAuth, Principal

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


def is_staff(principal: Principal) -> bool:
    """A custom rule for check=: any predicate over the Principal (sync or async)."""
    return bool(principal.user.email.endswith("@staff.example.com"))


# Build each gate once and reuse it; every gate resolves the caller only once per request.
SignedIn = Annotated[Principal, Depends(auth.current_user())]
MaybeSignedIn = Annotated[Principal | None, Depends(auth.current_user(optional=True))]
Admin = Annotated[Principal, Depends(auth.current_user(superuser=True))]
Verified = Annotated[Principal, Depends(auth.current_user(verified=True))]
Staff = Annotated[Principal, Depends(auth.current_user(check=is_staff))]
CookieOnly = Annotated[Principal, Depends(auth.current_user(transport="session"))]


@app.get("/feed")
async def feed(user: MaybeSignedIn) -> dict[str, str]:
    return {"feed": "personal" if user else "public"}


@app.get("/dashboard")
async def dashboard(user: SignedIn) -> dict[str, object]:
    return {"user_id": user.user_id, "via": user.transport}


@app.get("/admin")
async def admin(user: Admin) -> dict[str, str]:
    return {"area": "admin"}


@app.get("/billing")
async def billing(user: Verified) -> dict[str, str]:
    return {"area": "billing"}


@app.get("/staff")
async def staff(user: Staff) -> dict[str, str]:
    return {"area": "staff"}


@app.post("/settings")
async def settings(user: CookieOnly) -> dict[str, str]:
    return {"saved": "yes"}
