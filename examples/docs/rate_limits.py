"""Login lockout and rate limits: a stricter lockout, throttled routes, hooks that log."""

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthHooks, AuthUserMixin, CookieConfig, CRUDAuth, HookContext, Principal
from crudauth.ratelimit import KeyBy, LockoutConfig, RateLimit, RateLimitHeadersMiddleware

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


def login_failed(identifier: str, *, user: Any, reason: str, context: HookContext) -> None:
    # The identifier as typed and the address; crudauth never hands a hook the password.
    security_log.info("sign-in failed for %r from %s (%s)", identifier, context.ip_address, reason)


def locked_out(identifier: str, *, retry_after: float, context: HookContext) -> None:
    security_log.warning(
        "sign-in locked for %r from %s, retry in %ds", identifier, context.ip_address, retry_after
    )


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    lockout=LockoutConfig(
        max_attempts=5,  # attempts per address and per identifier in each window
        attempt_window_seconds=300,  # ... of five minutes
        lockout_base_seconds=120,  # then locked 2 min, 4, 8, 16 ...
        lockout_max_seconds=3600,  # ... up to an hour per lock
        max_consecutive_failures=50,  # then locked until a password reset or an admin
        device_cookie_days=30,  # how long a browser that signed in stays exempt
    ),
    rate_limits={"register": RateLimit(3, 3600)},  # stricter than the default 5 an hour
    trusted_proxy_hops=int(os.environ.get("TRUSTED_PROXY_HOPS", "0")),
    hooks=AuthHooks(on_login_failed=login_failed, on_lockout=locked_out),
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
app.add_middleware(RateLimitHeadersMiddleware)  # quota headers on the routes' 4xx too
app.include_router(auth.router)

SignedIn = Annotated[Principal, Depends(auth.current_user())]

# Ten searches a minute per client address (IPv6 per /64), for everyone.
search_limit = auth.rate_limit("search", RateLimit(10, 60))
# Three exports an hour per signed-in user; refused (503) rather than unlimited if the
# counter store is down.
export_limit = auth.rate_limit("export", RateLimit(3, 3600, fail_open=False), key=KeyBy.USER)


@app.get("/search", dependencies=[Depends(search_limit)])
async def search(q: str = "") -> dict[str, object]:
    if not q:
        raise HTTPException(400, "Say what to search for")  # still carries the quota headers
    return {"q": q, "results": []}


@app.get("/reports/export", dependencies=[Depends(export_limit)])
async def export(user: SignedIn) -> dict[str, object]:
    return {"owner": user.user_id, "rows": []}
