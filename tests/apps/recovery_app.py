"""A production-shaped app with recovery flows whose mail goes to a Redis list, so that a test
can read the links that any worker sent, and rate-limit counters under the run's own prefix
(``RATE_LIMIT_PREFIX``)."""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from crudauth import CRUDAuth, EmailConfig, PasswordHasher
from tests.apps import test_routes
from tests.apps.common import User, get_session
from tests.apps.outbox import RedisOutbox

auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    redis_url=os.environ["REDIS_URL"],
    rate_limit_prefix=os.environ["RATE_LIMIT_PREFIX"],
    trusted_proxy_hops=1,
    password_hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    email=EmailConfig(sender=RedisOutbox(), frontend_url="https://app.example.com"),
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    await auth.initialize()
    yield
    await auth.shutdown()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)
app.include_router(test_routes.build(auth))
