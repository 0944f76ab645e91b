"""What the multi-worker race modules share: a pool of ``tests.apps.races_app`` workers, its
mail outbox, and accounts signed in from addresses of their own."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import redis

from tests.conftest import REDIS_TEST_URL
from tests.multiworker import Workers, cookie_header, drop_keys, forwarded_for, session_cookies

PASSWORD = "correct horse battery staple"


@dataclass
class RacePool:
    """Four workers of the races app, with the run's own outbox and counter prefix."""

    workers: Workers
    outbox: str
    prefix: str

    def mails(self, kind: str, to: str | None = None) -> list[dict[str, str]]:
        sync = redis.Redis.from_url(REDIS_TEST_URL)
        try:
            records = [json.loads(raw) for raw in sync.lrange(self.outbox, 0, -1)]
        finally:
            sync.close()
        return [r for r in records if r["kind"] == kind and (to is None or r["to"] == to)]

    async def token(self, kind: str, to: str) -> str:
        """The token of the last ``kind`` mail to ``to`` (mail is sent after the response)."""
        for _ in range(100):
            found = self.mails(kind, to)
            if found:
                return parse_qs(urlsplit(found[-1]["link"]).query)["token"][0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {kind} mail for {to}")

    async def settled_mails(self, kind: str, to: str, expected: int) -> int:
        """How many ``kind`` mails went to ``to``: waits (at most 20 s) for ``expected`` of
        them, since mail is sent after the response, then 1.5 s more for any extra one."""
        for _ in range(200):
            if len(self.mails(kind, to)) >= expected:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        return len(self.mails(kind, to))


@contextmanager
def race_pool(env: dict[str, str], log_dir: Path) -> Iterator[RacePool]:
    run = uuid.uuid4().hex[:10]
    outbox, prefix = f"crudauth-test:outbox:{run}", f"crudauth:test-{run}:rl:"
    workers = Workers(
        "tests.apps.races_app:app",
        {
            **env,
            "REDIS_URL": REDIS_TEST_URL,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "OUTBOX_KEY": outbox,
            "RATE_LIMIT_PREFIX": prefix,
        },
        count=4,
    )
    workers.start(log_dir)
    try:
        yield RacePool(workers, outbox, prefix)
    finally:
        workers.stop()
        drop_keys(REDIS_TEST_URL, f"{prefix}*")
        drop_keys(REDIS_TEST_URL, outbox)


async def new_account(client: httpx.AsyncClient) -> tuple[str, str]:
    """Register a fresh account; its (username, email)."""
    name = f"u{uuid.uuid4().hex[:12]}"
    email = f"{name}@example.com"
    body = {"username": name, "email": email, "password": PASSWORD}
    r = await client.post("/register", json=body, headers=forwarded_for())
    assert r.status_code == 202, r.text
    return name, email


async def sign_in(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    """A new session's cookies."""
    r = await client.post(
        "/login", data={"username": name, "password": PASSWORD}, headers=forwarded_for()
    )
    assert r.status_code == 200, r.text
    return session_cookies(r)


def unsafe_headers(cookies: dict[str, str]) -> dict[str, str]:
    """Cookies, their CSRF token and a client address: what an unsafe request carries."""
    return {**cookie_header(cookies), "X-CSRF-Token": cookies["csrf_token"], **forwarded_for()}
