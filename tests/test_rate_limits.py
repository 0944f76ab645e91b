"""Throttles over HTTP: ``auth.rate_limit(...)``, their headers, keys, failure policy, defaults.

The frozen clock (``env.clock``) moves time; nothing sleeps.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request

from crudauth import ConfigurationError, CRUDAuth, Principal
from crudauth.errors import StoreUnavailable
from crudauth.ratelimit import (
    DEFAULT_RATE_LIMITS,
    KeyBy,
    MemoryRateLimiterBackend,
    RateLimit,
    RateLimitHeadersMiddleware,
)
from crudauth.ratelimit.policy import ThrottleResult
from tests.conftest import SECRET, User, login, register

PASSWORD = "correct horse battery"
THROTTLED = {"detail": "Too many requests. Try again later."}
QUOTA_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "ratelimit-policy", "ratelimit")

Browser = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A factory of clients with their own cookie jar and socket peer."""
    clients: list[httpx.AsyncClient] = []

    def make(app: FastAPI, peer: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(peer, 1234))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def limited_route(app: FastAPI, path: str, dependency: Any) -> None:
    """``GET path`` behind ``dependency``; answers which principal-free route it is."""

    @app.get(path, dependencies=[Depends(dependency)])
    async def handler() -> dict[str, str]:
        return {"route": path}


def quota(response: httpx.Response) -> dict[str, str]:
    return {k: response.headers[k] for k in QUOTA_HEADERS if k in response.headers}


def assert_throttled(response: httpx.Response, retry_after: int | None = None) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == THROTTLED
    assert response.headers["x-error-code"] == "rate_limited"
    if retry_after is not None:
        assert response.headers["retry-after"] == str(retry_after)


async def sign_in(app: FastAPI, browser: Browser, name: str, peer: str = "127.0.0.1") -> Any:
    client = browser(app, peer)
    await register(client, name, f"{name}@example.com")
    assert (await login(client, name)).status_code == 200
    return client


# -- a custom route ----------------------------------------------------------------------------


async def test_a_custom_route_allows_exactly_the_limit(make_env):
    env = await make_env()
    limited_route(env.app, "/search", env.auth.rate_limit("my_action", RateLimit(3, 60)))
    seen = []
    for _ in range(3):
        r = await env.client.get("/search")
        assert r.status_code == 200
        seen.append(quota(r))
    assert seen == [
        {
            "x-ratelimit-limit": "3",
            "x-ratelimit-remaining": str(left),
            "ratelimit-policy": '"my_action";q=3;w=60',
            "ratelimit": f'"my_action";r={left};t={reset}',
        }
        for left, reset in ((2, 20), (1, 40), (0, 60))
    ]
    r = await env.client.get("/search")
    assert_throttled(r, retry_after=20)
    assert quota(r) == {
        "x-ratelimit-limit": "3",
        "x-ratelimit-remaining": "0",
        "ratelimit-policy": '"my_action";q=3;w=60',
        "ratelimit": '"my_action";r=0;t=20',
    }
    # Retry-After is never earlier than the reset the RateLimit header announces.
    assert int(r.headers["retry-after"]) >= 20

    env.clock.advance(19)
    assert_throttled(await env.client.get("/search"), retry_after=1)
    env.clock.advance(1)
    assert (await env.client.get("/search")).status_code == 200  # one slot came back
    assert_throttled(await env.client.get("/search"))


async def test_no_double_burst_at_a_window_boundary(make_env):
    env = await make_env()
    limited_route(env.app, "/search", env.auth.rate_limit("my_action", RateLimit(3, 60)))
    env.clock.advance(59)  # the last second of a fixed minute
    for _ in range(3):
        assert (await env.client.get("/search")).status_code == 200
    env.clock.advance(2)  # the first second of the next minute
    assert_throttled(await env.client.get("/search"))
    env.clock.advance(60)
    statuses = [(await env.client.get("/search")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_each_address_has_its_own_bucket(make_env, browser):
    env = await make_env()
    limited_route(env.app, "/search", env.auth.rate_limit("my_action", RateLimit(1, 60)))
    first, second = browser(env.app, "198.51.100.1"), browser(env.app, "198.51.100.2")
    assert (await first.get("/search")).status_code == 200
    assert_throttled(await first.get("/search"))
    assert (await second.get("/search")).status_code == 200
    # IPv6 by /64: a neighbour in the same /64 shares the bucket, the next /64 does not.
    assert (await browser(env.app, "2001:db8:0:1::1").get("/search")).status_code == 200
    assert_throttled(await browser(env.app, "2001:db8:0:1::ff").get("/search"))
    assert (await browser(env.app, "2001:db8:0:2::1").get("/search")).status_code == 200


async def test_a_spoofed_forwarded_for_does_not_change_the_bucket(make_env):
    env = await make_env()  # trusted_proxy_hops=0
    limited_route(env.app, "/search", env.auth.rate_limit("my_action", RateLimit(2, 60)))
    statuses = [
        (await env.client.get("/search", headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]


async def test_a_default_action_uses_its_configured_limit(make_env):
    env = await make_env(rate_limits={"csrf_refresh": RateLimit(2, 60)})
    limited_route(env.app, "/refresh-it", env.auth.rate_limit("csrf_refresh"))
    r = await env.client.get("/refresh-it")
    assert r.headers["ratelimit-policy"] == '"csrf_refresh";q=2;w=60'
    assert (await env.client.get("/refresh-it")).status_code == 200
    assert_throttled(await env.client.get("/refresh-it"), retry_after=30)
    assert env.auth.rate_limits["csrf_refresh"] == RateLimit(2, 60)
    assert env.auth.rate_limits["register"] == DEFAULT_RATE_LIMITS["register"]


async def test_an_unknown_action_without_a_limit_is_refused_at_build_time(make_env):
    env = await make_env()
    with pytest.raises(ConfigurationError):
        env.auth.rate_limit("no_such_action")


# -- keys --------------------------------------------------------------------------------------


async def test_key_by_user_refuses_anonymous_callers_and_counts_per_user(make_env, browser):
    env = await make_env()
    limited_route(
        env.app, "/export", env.auth.rate_limit("export", RateLimit(2, 60), key=KeyBy.USER)
    )
    anonymous = await env.client.get("/export")
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Not authenticated"}
    alice = await sign_in(env.app, browser, "alice")
    bob = await sign_in(env.app, browser, "bob")  # same address as alice
    for left in (1, 0):
        r = await alice.get("/export")
        assert r.status_code == 200
        assert r.headers["x-ratelimit-remaining"] == str(left)  # her own quota: published
    assert_throttled(await alice.get("/export"))
    assert (await bob.get("/export")).status_code == 200
    assert (await bob.get("/export")).status_code == 200
    assert_throttled(await bob.get("/export"))


async def test_key_by_user_or_ip(make_env, browser):
    env = await make_env()
    limited_route(
        env.app, "/feed", env.auth.rate_limit("feed", RateLimit(1, 60), key=KeyBy.USER_OR_IP)
    )
    alice = await sign_in(env.app, browser, "alice", peer="198.51.100.1")
    stranger = browser(env.app, "198.51.100.1")  # the same address, signed out
    assert (await stranger.get("/feed")).status_code == 200
    assert_throttled(await stranger.get("/feed"))
    r = await alice.get("/feed")  # counted as user:<id>, not by the address
    assert r.status_code == 200
    assert "x-ratelimit-limit" in r.headers
    assert_throttled(await alice.get("/feed"))
    assert (await browser(env.app, "198.51.100.2").get("/feed")).status_code == 200


async def test_a_custom_key_with_one_argument(make_env):
    env = await make_env()

    def by_tenant(request: Request) -> str:
        return request.headers.get("x-tenant", "none")

    limited_route(env.app, "/t", env.auth.rate_limit("tenant", RateLimit(2, 60), key=by_tenant))
    a, b = {"X-Tenant": "a"}, {"X-Tenant": "b"}
    assert [(await env.client.get("/t", headers=a)).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    r = await env.client.get("/t", headers=b)
    assert r.status_code == 200
    # A custom bucket may be someone else's: its quota is never published.
    assert quota(r) == {}
    limited = await env.client.get("/t", headers=a)
    assert_throttled(limited)
    assert quota(limited) == {}


async def test_a_custom_async_key_with_two_arguments_sees_the_principal(make_env, browser):
    env = await make_env()
    seen: list[Any] = []

    async def by_account(request: Request, principal: Principal | None) -> str:
        seen.append(principal.user_id if principal else None)
        return f"acct:{principal.user_id}" if principal else "anonymous"

    limited_route(env.app, "/k", env.auth.rate_limit("acct", RateLimit(1, 60), key=by_account))
    alice = await sign_in(env.app, browser, "alice")
    bob = await sign_in(env.app, browser, "bob")
    assert (await alice.get("/k")).status_code == 200
    assert_throttled(await alice.get("/k"))
    assert (await bob.get("/k")).status_code == 200
    assert (await env.client.get("/k")).status_code == 200
    assert_throttled(await browser(env.app, "198.51.100.9").get("/k"))  # same "anonymous" key
    assert seen[:3] == [1, 1, 2] and seen[3] is None


async def test_a_limit_resolver_chooses_per_request_and_none_disables(make_env, browser):
    env = await make_env()

    async def plan(request: Request, principal: Principal | None) -> RateLimit | None:
        if request.headers.get("x-plan") == "unlimited":
            return None
        return RateLimit(5, 60) if principal else RateLimit(1, 60)

    limited_route(env.app, "/r", env.auth.rate_limit("plan", plan))
    for _ in range(20):
        r = await env.client.get("/r", headers={"X-Plan": "unlimited"})
        assert r.status_code == 200
        assert quota(r) == {}
    assert (await env.client.get("/r")).headers["ratelimit-policy"] == '"plan";q=1;w=60'
    assert_throttled(await env.client.get("/r"))
    alice = await sign_in(env.app, browser, "alice", peer="198.51.100.3")
    r = await alice.get("/r")
    assert r.headers["ratelimit-policy"] == '"plan";q=5;w=60'


# -- failure policy ----------------------------------------------------------------------------


class ThrottleStoreDown(MemoryRateLimiterBackend):
    """The lockout works; every throttle step fails to reach its store."""

    async def throttle(self, key: str, limit: RateLimit, now: float) -> ThrottleResult:
        raise StoreUnavailable("throttle store down")


async def test_fail_open_lets_requests_through_and_counts_them(make_env, caplog):
    env = await make_env(rate_limiter=ThrottleStoreDown())
    limited_route(env.app, "/open", env.auth.rate_limit("open", RateLimit(1, 60, fail_open=True)))
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        statuses = [(await env.client.get("/open")).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert env.auth.runtime.throttles.failed_open == 3
    messages = [r.getMessage() for r in caplog.records if r.name == "crudauth"]
    assert any("'open'" in m and "backend unavailable" in m for m in messages), messages


async def test_fail_closed_answers_503(make_env):
    env = await make_env(rate_limiter=ThrottleStoreDown())
    limited_route(
        env.app, "/closed", env.auth.rate_limit("closed", RateLimit(1, 60, fail_open=False))
    )
    r = await env.client.get("/closed")
    assert r.status_code == 503
    assert r.headers["x-error-code"] == "store_unavailable"
    assert int(r.headers["retry-after"]) >= 1
    assert env.auth.runtime.throttles.failed_open == 0


async def test_the_login_volume_throttle_fails_closed(make_env):
    env = await make_env(rate_limiter=ThrottleStoreDown())
    r = await login(env.client, "nobody")
    assert r.status_code == 503
    assert env.hasher.verifications == 0


# -- configuration -----------------------------------------------------------------------------


async def _session() -> AsyncIterator[Any]:
    yield None


def build(**options: Any) -> CRUDAuth:
    return CRUDAuth(
        session=_session,
        user_model=User,
        SECRET_KEY=SECRET,
        warn_on_memory_backend=False,
        **options,
    )


def test_an_unknown_rate_limit_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown"):
        build(rate_limits={"unknown": RateLimit(1, 60)})


@pytest.mark.parametrize(
    "make", [lambda: RateLimit(-1, 60), lambda: RateLimit(1, 0), lambda: RateLimit(True, 60)]
)
def test_an_invalid_rate_limit_is_refused(make: Callable[[], RateLimit]) -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_the_defaults_are_the_documented_ones() -> None:
    assert dict(DEFAULT_RATE_LIMITS) == {
        "register": RateLimit(5, 3600),
        "email_verify_request": RateLimit(5, 3600),
        "password_reset_request": RateLimit(5, 3600),
        "email_change_request": RateLimit(3, 3600),
        "existing_account_notice": RateLimit(5, 3600),
        "change_password": RateLimit(5, 3600),
        "logout_all": RateLimit(10, 3600),
        "csrf_refresh": RateLimit(30, 3600),
        "oauth_authorize": RateLimit(30, 3600),
        "oauth_callback": RateLimit(60, 3600),
        "oauth_link_confirm": RateLimit(10, 3600),
        "mfa_manage": RateLimit(10, 3600),
        "refresh": RateLimit(60, 60),
        "login_ip": RateLimit(30, 60, fail_open=False),
    }


# -- the register throttle ---------------------------------------------------------------------


async def test_the_register_throttle_counts_only_valid_requests(make_env):
    env = await make_env()
    invalid = [
        {"username": "weak", "email": "weak@example.com", "password": "short"},  # policy
        {"username": "x", "password": PASSWORD},  # schema: no email
        {"username": "bad\u202eguy", "email": "bad@example.com", "password": PASSWORD},  # bidi
    ]
    for _ in range(3):  # refused by validation: never counted
        for body in invalid:
            assert (await env.client.post("/register", json=body)).status_code == 422
    assert env.hasher.hashes == 0
    for i in range(5):
        r = await register(env.client, f"user{i}", f"user{i}@example.com")
        assert r.status_code == 200, r.text
    hashes = env.hasher.hashes
    r = await register(env.client, "user5", "user5@example.com")
    assert_throttled(r)
    assert int(r.headers["retry-after"]) >= 1
    assert env.hasher.hashes == hashes  # refused before hashing


@pytest.mark.parametrize("disabled", [RateLimit(0, 1), None])
async def test_the_register_throttle_can_be_disabled(make_env, disabled):
    env = await make_env(rate_limits={"register": disabled})
    for i in range(8):
        r = await register(env.client, f"user{i}", f"user{i}@example.com")
        assert r.status_code == 200, r.text


# -- no existence oracle on /login -------------------------------------------------------------


async def test_login_publishes_the_same_headers_for_known_and_unknown_usernames(make_env):
    env = await make_env()
    await register(env.client)

    def headers(response: httpx.Response) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in response.headers.multi_items() if k != "date")

    known = await login(env.client, "alice", "wrong password")
    unknown = await login(env.client, "nobody", "wrong password")
    assert known.status_code == unknown.status_code == 401
    assert known.content == unknown.content
    assert headers(known) == headers(unknown)
    # What the code does: /login publishes no quota at all (its limits key on the identifier).
    assert quota(known) == {} and quota(unknown) == {}


# -- the headers middleware --------------------------------------------------------------------


@pytest.mark.parametrize("with_middleware", [True, False])
async def test_the_middleware_copies_quota_headers_onto_handler_errors(
    make_env, browser, with_middleware
):
    env = await make_env()
    app = FastAPI()
    if with_middleware:
        app.add_middleware(RateLimitHeadersMiddleware)
    app.include_router(env.auth.router)

    @app.get(
        "/items/{item}",
        dependencies=[Depends(env.auth.rate_limit("items", RateLimit(5, 60)))],
    )
    async def item(item: str) -> dict[str, str]:
        if item == "missing":
            raise HTTPException(404, "No such item")
        return {"item": item}

    client = browser(app)
    ok = await client.get("/items/a")
    assert ok.headers["x-ratelimit-remaining"] == "4"
    r = await client.get("/items/missing")
    assert r.status_code == 404
    if with_middleware:
        assert quota(r) == {
            "x-ratelimit-limit": "5",
            "x-ratelimit-remaining": "3",
            "ratelimit-policy": '"items";q=5;w=60',
            "ratelimit": '"items";r=3;t=24',
        }
    else:
        assert quota(r) == {}
