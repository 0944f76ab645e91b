"""A production-shaped app with every flow the multi-worker race tests drive: recovery mail to
a Redis list, sudo mode, one trusted proxy, and rate-limit counters under a prefix of the run's
own (``RATE_LIMIT_PREFIX``) so that a test can find and clear them."""

import asyncio
import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI

from crudauth import CRUDAuth, EmailConfig, PasswordHasher, Principal, SudoConfig
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
    sudo=SudoConfig(),
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    await auth.initialize()
    yield
    await auth.shutdown()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)
app.include_router(test_routes.build(auth))


@app.get("/_test/sensitive")
async def sensitive(principal: Annotated[Principal, Depends(auth.require_sudo())]) -> dict:
    return {"user": str(principal.user_id)}


@app.get("/_test/slow")
async def slow(
    principal: Annotated[Principal, Depends(auth.current_user())], seconds: float = 1.0
) -> dict:
    """Holds an authenticated request open, as a slow handler would (bounded: at most 5 s)."""
    await asyncio.sleep(min(seconds, 5.0))
    return {"user": str(principal.user_id)}
