"""A production-shaped app with OAuth sign-in against the loopback OpenID Connect provider
(``OIDC_ISSUER``), its state in Redis (``STORE=redis``) or in SQL (``STORE=sql``)."""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from crudauth import CookieConfig, CRUDAuth, DatabaseStore, PasswordHasher
from crudauth.oauth import OAuthCredentials
from tests.apps import test_routes
from tests.apps.common import SessionLocal, User, get_session

shared = (
    {"database_store": DatabaseStore(SessionLocal)}
    if os.environ.get("STORE") == "sql"
    else {
        "redis_url": os.environ["REDIS_URL"],
        "rate_limit_prefix": os.environ["RATE_LIMIT_PREFIX"],
    }
)

auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    cookies=CookieConfig(secure=False),
    trusted_proxy_hops=1,
    password_hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    oauth={
        "corp": OAuthCredentials(
            os.environ["OIDC_CLIENT_ID"],
            os.environ["OIDC_CLIENT_SECRET"],
            issuer=os.environ["OIDC_ISSUER"],
        )
    },
    # The callback URL registered at the provider; the tests deliver it to any worker.
    redirect_base_url="http://testserver",
    **shared,
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    await auth.initialize()
    yield
    await auth.shutdown()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)
app.include_router(test_routes.build(auth))
