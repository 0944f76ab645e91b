"""An EmailSender for the test servers: every message goes to a Redis list that a test reads."""

import json
import os

import redis

OUTBOX = os.environ.get("OUTBOX_KEY", "crudauth-test:outbox")


class RedisOutbox:
    """Appends each message's kind, recipient and link to the list ``OUTBOX``."""

    def __init__(self) -> None:
        self._redis = redis.Redis.from_url(os.environ["REDIS_URL"])

    def send(self, *, to, subject, body, kind, context):
        record = {"to": to, "kind": kind.value, "link": context.link}
        self._redis.rpush(OUTBOX, json.dumps(record))
