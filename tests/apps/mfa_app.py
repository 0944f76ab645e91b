"""A production-shaped app with two-factor sign-in, for the multi-worker MFA races: state in
Redis, accounts in PostgreSQL, one trusted proxy, counters under the run's own prefix.

Its lockout allows 10 attempts a window and a challenge 20 wrong codes, so that a burst of 20
wrong codes shows which of the two limits holds, and where."""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker

from crudauth import CRUDAuth, PasswordHasher
from crudauth.mfa import MfaConfig
from crudauth.ratelimit import LockoutConfig
from tests.apps import test_routes
from tests.apps.common import make_engine
from tests.mfa_support import MfaUser

engine = make_engine(os.environ["DATABASE_URL"], os.environ.get("DATABASE_SCHEMA"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_session():
    async with SessionLocal() as db:
        yield db


auth = CRUDAuth(
    session=get_session,
    user_model=MfaUser,
    SECRET_KEY=os.environ["SECRET_KEY"],
    redis_url=os.environ["REDIS_URL"],
    rate_limit_prefix=os.environ["RATE_LIMIT_PREFIX"],
    trusted_proxy_hops=1,
    password_hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    lockout=LockoutConfig(max_attempts=10),
    mfa=MfaConfig(issuer="Races", encryption_key=os.environ["MFA_KEY"], max_code_attempts=20),
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    await auth.initialize()
    yield
    await auth.shutdown()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)
app.include_router(test_routes.build(auth))
