"""A production-shaped app behind one trusted proxy, counting every password verification in
Redis so that a test can add them up across worker processes. Its counters live under the
run's own prefix (``RATE_LIMIT_PREFIX``), so that a test can find and clear them."""

import os
from contextlib import asynccontextmanager
from typing import Any

import redis
from fastapi import Depends, FastAPI
from redis.asyncio import Redis as AsyncRedis

from crudauth import CRUDAuth, PasswordHasher
from crudauth.ratelimit import RateLimit
from tests.apps import test_routes
from tests.apps.common import User, get_session

COUNTER = os.environ.get("HASH_COUNTER_KEY", "crudauth-test:verifications")


class SharedCountingHasher(PasswordHasher):
    """Counts verifications in Redis (the hashing pool runs this in a thread)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self._redis = redis.Redis.from_url(os.environ["REDIS_URL"])

    def verify(self, password: str, hashed: str | None) -> Any:
        self._redis.incr(COUNTER)
        return super().verify(password, hashed)


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    # A longer socket timeout than crudauth's own 2 s: a test's 200-request burst on a loaded
    # machine must count the lockout's answers, not a stalled event loop's 503s.
    redis_client=AsyncRedis.from_url(os.environ["REDIS_URL"], socket_timeout=15),
    rate_limit_prefix=os.environ["RATE_LIMIT_PREFIX"],
    trusted_proxy_hops=1,
    password_hasher=SharedCountingHasher(),
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    await auth.initialize()
    yield
    await auth.shutdown()
    await auth.runtime.redis_client.aclose()  # the app's own client: crudauth leaves it open


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)
app.include_router(test_routes.build(auth))


@app.get("/_test/limited", dependencies=[Depends(auth.rate_limit("burst", RateLimit(10, 60)))])
async def limited() -> dict[str, bool]:
    return {"ok": True}
