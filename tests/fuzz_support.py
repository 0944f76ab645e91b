"""One app with every router, driven in-process from synchronous Hypothesis tests.

Hypothesis runs each example as a plain function call, and function-scoped async fixtures would
be shared across examples without being reset, so the fuzz tests build one app per module and
run every request on that module's own event loop (``FuzzApp.run``).

Every request comes from a fresh client address, so the per-address lockout and throttles of a
long run never turn the later examples into 429s that test nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from fastapi import Depends, FastAPI
from hypothesis import HealthCheck, Phase, settings
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from crudauth import (
    BearerTransport,
    CookieConfig,
    CRUDAuth,
    FrozenClock,
    Principal,
    SessionTransport,
    SudoConfig,
)
from crudauth.ratelimit import LockoutConfig
from tests.conftest import REDIS_TEST_URL, SECRET, Base, CountingHasher, User
from tests.email_support import Outbox, email_config

T = TypeVar("T")
PASSWORD = "correct horse battery"
BASE_URL = "http://testserver"

#: Examples per property in the default suite; a release run raises it (docs/security.md).
EXAMPLES = int(os.environ.get("CRUDAUTH_FUZZ_EXAMPLES", "60"))


def fuzz_settings(examples: int = EXAMPLES, **options: Any) -> settings:
    """Deterministic (the same examples on every run), bounded, and without a deadline: a
    property fails on a wrong answer, never on a slow machine."""
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        # The explain phase re-runs failing cases under a tracer; its report adds nothing here.
        phases=[p for p in Phase if p is not Phase.explain],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        **options,
    )


@dataclass
class SignedIn:
    """A signed-in browser (session and CSRF cookies) and a bearer token pair of ``alice``."""

    cookies: dict[str, str]
    csrf: str
    access_token: str
    refresh_token: str
    user_id: Any


class FuzzApp:
    """Sessions (with management routes) + bearer, register, account, recovery and sudo."""

    def __init__(self, *, redis: bool = False, refresh: str = "cookie") -> None:
        self.loop = asyncio.new_event_loop()
        self.redis = redis
        self.outbox = Outbox()
        self.clock = FrozenClock()
        self._engine = create_async_engine("sqlite+aiosqlite://")
        sessionmaker = async_sessionmaker(self._engine, expire_on_commit=False)

        async def get_session() -> AsyncIterator[AsyncSession]:
            async with sessionmaker() as db:
                yield db

        options: dict[str, Any] = {}
        if redis:
            options.update(redis_url=REDIS_TEST_URL, rate_limit_prefix="crudauth-fuzz:rl:")
        self.auth = CRUDAuth(
            session=get_session,
            user_model=User,
            SECRET_KEY=SECRET,
            transports=[
                SessionTransport(management_routes=True),
                BearerTransport(refresh=refresh),  # type: ignore[arg-type]
            ],
            email=email_config(self.outbox),
            sudo=SudoConfig(),
            cookies=CookieConfig(secure=False),
            clock=self.clock,
            password_hasher=CountingHasher(),
            trusted_proxy_hops=1,
            lockout=LockoutConfig(max_attempts=100),
            rate_limits=dict.fromkeys(
                ("register", "email_verify_request", "password_reset_request", "login_ip"),
                None,
            ),
            warn_on_memory_backend=False,
            **options,
        )
        self.app = FastAPI()
        self.app.include_router(self.auth.router)

        @self.app.get("/private")
        async def private(p: Principal = Depends(self.auth.current_user())) -> dict[str, Any]:
            return {"user_id": p.user_id, "via": p.transport}

        self._addresses = (
            f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in itertools.count(1)
        )
        self.run(self._start())
        self.alice = self.sign_in()

    async def _start(self) -> None:
        async with self._engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await self.auth.initialize()
        body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
        r = await self.request("POST", "/register", json=body)
        assert r.status_code in (200, 202), r.text

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def client(self, **options: Any) -> httpx.AsyncClient:
        """A client with no cookie jar of its own state, from an address never seen before."""
        transport = httpx.ASGITransport(app=self.app, client=(next(self._addresses), 50000))
        return httpx.AsyncClient(transport=transport, base_url=BASE_URL, **options)

    async def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        async with self.client() as client:
            return await client.request(method, url, **options)

    def send(self, method: str, url: str, **options: Any) -> httpx.Response:
        return self.run(self.request(method, url, **options))

    def sign_in(self) -> SignedIn:
        async def go() -> SignedIn:
            form = {"username": "alice", "password": PASSWORD}
            login = await self.request("POST", "/login", data=form)
            assert login.status_code == 200, login.text
            token = await self.request("POST", "/token", data=form)
            assert token.status_code == 200, token.text
            cookies = dict(login.cookies)
            return SignedIn(
                cookies=cookies,
                csrf=cookies["csrf_token"],
                access_token=token.json()["access_token"],
                refresh_token=token.cookies.get("refresh_token") or token.json()["refresh_token"],
                user_id=login.json().get("user_id", 1),
            )

        return self.run(go())

    def credentials(self, via: str) -> dict[str, str]:
        """Headers of a fresh sign-in of alice: ``session`` (cookies and the CSRF header),
        ``bearer`` (an access token) or ``anonymous`` (none)."""
        if via == "anonymous":
            return {}
        form = {"username": "alice", "password": PASSWORD}
        if via == "bearer":
            token = self.send("POST", "/token", data=form)
            assert token.status_code == 200, token.text
            return {"Authorization": f"Bearer {token.json()['access_token']}"}
        login = self.send("POST", "/login", data=form)
        assert login.status_code == 200, login.text
        cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
        return {"Cookie": cookie, "X-CSRF-Token": login.cookies["csrf_token"]}

    def close(self) -> None:
        async def stop() -> None:
            await self.auth.shutdown()
            await self._engine.dispose()
            if self.redis:
                # Sessions of user 1 at FrozenClock times would outrank a later test's real-time
                # sign-in under the per-user cap (see make_env): leave nothing behind.
                client = AsyncRedis.from_url(REDIS_TEST_URL)
                try:
                    await client.flushdb()
                finally:
                    await client.aclose()

        try:
            self.run(stop())
        finally:
            self.loop.close()


@contextmanager
def fuzz_app(**options: Any) -> Iterator[FuzzApp]:
    app = FuzzApp(**options)
    try:
        yield app
    finally:
        app.close()


def raw_cookie_header(pairs: Mapping[str, str] | list[tuple[str, str]]) -> bytes:
    """A ``Cookie`` header exactly as given (httpx would quote or refuse some values)."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return "; ".join(f"{k}={v}" for k, v in items).encode("utf-8", "surrogateescape")


def assert_no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)


def assert_anonymous(response: httpx.Response) -> None:
    """Neither a 5xx nor a signed-in answer."""
    assert_no_server_error(response)
    assert response.status_code != 200, response.text
