"""The code of shared/seed/going-to-production.md, unchanged, as a runnable app.

Everything between the markers is copied from the seed; around it are only the definitions the
seed assumes (``os``, ``get_session``, ``User``) and the test-only routes.
"""

import os

from tests.apps import test_routes
from tests.apps.common import User, get_session

# --- seed: "1. Move state to Redis" -------------------------------------------------------
from crudauth import CRUDAuth, SessionTransport
from crudauth.ratelimit import redis_rate_limiter

REDIS_URL = os.environ["REDIS_URL"]

auth = CRUDAuth(
    session=get_session, user_model=User, SECRET_KEY=os.environ["SECRET_KEY"],
    transports=[SessionTransport(backend="redis", redis_url=REDIS_URL)],
    rate_limiter=redis_rate_limiter(REDIS_URL),
)

# --- seed: "2. Wire the lifespan" ---------------------------------------------------------
from contextlib import asynccontextmanager
from fastapi import FastAPI

@asynccontextmanager
async def lifespan(app):
    await auth.initialize()
    yield
    await auth.shutdown()

app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)
# --- end of seed ----------------------------------------------------------------------------

app.include_router(test_routes.build(auth))
