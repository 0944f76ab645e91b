"""A production-shaped app with recovery flows whose mail goes to a Redis list, so that a test
can read the links that any worker sent."""

import json
import os
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI

from crudauth import CRUDAuth, EmailConfig, PasswordHasher
from tests.apps import test_routes
from tests.apps.common import User, get_session

OUTBOX = os.environ.get("OUTBOX_KEY", "crudauth-test:outbox")


class RedisOutbox:
    """An EmailSender that appends each message's kind, recipient and link to a Redis list."""

    def __init__(self) -> None:
        self._redis = redis.Redis.from_url(os.environ["REDIS_URL"])

    def send(self, *, to, subject, body, kind, context):
        record = {"to": to, "kind": kind.value, "link": context.link}
        self._redis.rpush(OUTBOX, json.dumps(record))


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    redis_url=os.environ["REDIS_URL"],
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
