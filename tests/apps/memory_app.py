"""The same app on the embedded default: every store in memory (one per process)."""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from crudauth import CookieConfig, CRUDAuth
from tests.apps import test_routes
from tests.apps.common import User, get_session

auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    cookies=CookieConfig(secure=False),
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    await auth.initialize()
    yield
    await auth.shutdown()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)
app.include_router(test_routes.build(auth))
