"""``auth.resolve_principal``: the principal for middleware, as the reference defines it.

It opens its own database session, skips CSRF, reads an absent or invalid credential as
``None``, and by default does not count as use of the session. Nothing it resolves stands in
for the route's own dependency.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from tests.conftest import REDIS_TEST_URL, login, register

IDLE = 30 * 60  # SessionTransport's default idle timeout
STORES = pytest.mark.parametrize(
    "options",
    [{}, pytest.param({"redis_url": REDIS_TEST_URL}, marks=pytest.mark.redis)],
    ids=["memory", "redis"],
)


def request_with(cookie: str, method: str = "GET") -> Request:
    headers = [(b"cookie", f"session_id={cookie}".encode())]
    return Request({"type": "http", "method": method, "path": "/", "headers": headers})


async def signed_in(make_env: Any, **options: Any) -> tuple[Any, str]:
    env = await make_env(**options)
    await register(env.client)
    assert (await login(env.client)).status_code == 200
    return env, env.client.cookies["session_id"]


@pytest.mark.parametrize(
    "options",
    [{}, pytest.param({"redis_url": REDIS_TEST_URL}, marks=pytest.mark.redis)],
    ids=["memory", "redis"],
)
async def test_by_default_a_middleware_look_does_not_extend_the_session(make_env, options):
    env, cookie = await signed_in(make_env, **options)
    env.clock.advance(IDLE - 120)
    assert (await env.auth.resolve_principal(request_with(cookie))) is not None
    env.clock.advance(240)  # past the idle window counted from the sign-in
    assert await env.auth.resolve_principal(request_with(cookie)) is None


@pytest.mark.parametrize(
    "options",
    [{}, pytest.param({"redis_url": REDIS_TEST_URL}, marks=pytest.mark.redis)],
    ids=["memory", "redis"],
)
async def test_update_activity_extends_the_session_as_a_request_does(make_env, options):
    env, cookie = await signed_in(make_env, **options)
    env.clock.advance(IDLE - 120)
    principal = await env.auth.resolve_principal(request_with(cookie), update_activity=True)
    assert principal is not None and principal.user_id == 1
    env.clock.advance(240)
    assert await env.auth.resolve_principal(request_with(cookie)) is not None


async def test_a_middleware_look_skips_csrf_but_the_route_still_checks_it(make_env):
    env = await make_env()
    seen: list[Any] = []

    @env.app.middleware("http")
    async def who(request: Request, call_next: Any) -> Any:
        principal = await env.auth.resolve_principal(request)
        seen.append(principal.user_id if principal else None)
        return await call_next(request)

    await register(env.client)
    assert (await login(env.client)).status_code == 200
    no_csrf = await env.client.post("/private")
    assert seen[-1] == 1  # the middleware saw the user, without a CSRF token
    assert no_csrf.status_code == 403  # and the route refused the unsafe request all the same
    csrf = env.client.cookies["csrf_token"]
    assert (await env.client.post("/private", headers={"x-csrf-token": csrf})).status_code == 200


async def test_an_invalid_session_reads_as_anonymous(make_env):
    env, _ = await signed_in(make_env)
    assert await env.auth.resolve_principal(request_with("x" * 43)) is None
