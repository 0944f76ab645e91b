"""A token API on Redis and PostgreSQL, run as several real worker processes.

Its rate-limit counters live under a prefix of their own (``RATE_LIMIT_PREFIX``), so the many
sign-ups of one test run never eat into another test's budget for 127.0.0.1.
"""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from crudauth import BearerTransport, CRUDAuth
from crudauth.ratelimit.policy import RateLimit
from tests.apps import test_routes
from tests.apps.common import User, get_session

auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    redis_url=os.environ["REDIS_URL"],
    rate_limit_prefix=os.environ["RATE_LIMIT_PREFIX"],
    # Every request comes from 127.0.0.1 here; these tests are about rotation, not throttles.
    rate_limits={"register": RateLimit(0, 60), "refresh": RateLimit(0, 60)},
    transports=[BearerTransport(refresh="body")],
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    await auth.initialize()
    yield
    await auth.shutdown()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)
app.include_router(test_routes.build(auth))
