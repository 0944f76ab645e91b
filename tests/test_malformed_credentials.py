"""Malformed credentials: non-ASCII, oversize and misshapen tokens and cookies.

Whatever a client sends where a token or a credential cookie belongs gets the answer of an
invalid one (or, for a body field over its documented limit, the 422 of any oversize field),
and never a server error. Cookies are sent as raw ``Cookie`` header bytes, as a client may.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from crudauth import BearerTransport, SessionTransport
from tests.conftest import login, register
from tests.email_support import NEW_PASSWORD, Outbox, email_config

INVALID_LINK = {"detail": "Invalid or expired token"}
INVALID_REFRESH = {"detail": "Invalid or expired refresh token"}
NOT_AUTHENTICATED = {"detail": "Not authenticated"}

#: Body tokens that are not what the library issues (``<claims>.<signature>``).
MISSHAPEN_TOKENS = [
    "é.abc",
    "abc.é",
    "abc.\u00e9\u00e9",
    "abc.😀",
    "a b.c",
    "a\x00.b",
    "a.b.c",
    "abc.",
    ".abc",
    ".",
    "",
    "a" * 2000 + ".b",  # within the field's limit, longer than any real token
]
#: Cookie values as raw header bytes (Latin-1, as ASGI servers deliver them).
MISSHAPEN_COOKIES = [
    b"abc.\xe9",
    b"\xe9" * 43,
    b"\xff\xfe.\x80",
    b"a" * 8000,
    b"a" * 42 + b"\xe9",
    b"a.b.c.d",
    b"x.y",
    b"a=b",
    b'"quoted.value"',
]


def client_of(env: Any) -> httpx.AsyncClient:
    """A browser with an empty cookie jar (its cookies go in raw headers)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.app), base_url="http://testserver"
    )


def cleared(response: httpx.Response) -> bool:
    set_cookie = response.headers.get("set-cookie", "")
    return set_cookie.startswith('refresh_token=""') and "max-age=0" in set_cookie.lower()


def answer(response: httpx.Response) -> tuple[int, Any, str | None]:
    return response.status_code, response.json(), response.headers.get("x-error-code")


# -- recovery links ----------------------------------------------------------------------------

CONFIRM_ROUTES = {
    "/password/reset-confirm": {"new_password": NEW_PASSWORD},
    "/email/verify-confirm": {},
    "/email/change-confirm": {},
}


@pytest.mark.parametrize("route", sorted(CONFIRM_ROUTES))
async def test_a_misshapen_link_token_is_an_invalid_token(make_env, route):
    env = await make_env(email=email_config(Outbox()))
    await register(env.client)
    extra = CONFIRM_ROUTES[route]
    forged = await env.client.post(route, json={"token": "abc.def", **extra})
    assert answer(forged) == (400, INVALID_LINK, "invalid_recovery_token")
    for token in MISSHAPEN_TOKENS:
        r = await env.client.post(route, json={"token": token, **extra})
        assert answer(r) == answer(forged), token


@pytest.mark.parametrize("route", sorted(CONFIRM_ROUTES))
async def test_a_link_token_over_the_field_limit_is_refused_before_any_work(make_env, route):
    env = await make_env(email=email_config(Outbox()))
    r = await env.client.post(route, json={"token": "a" * 2049, **CONFIRM_ROUTES[route]})
    assert r.status_code == 422


# -- the device cookie -------------------------------------------------------------------------


async def test_a_misshapen_device_cookie_is_ignored_at_sign_in(make_env):
    env = await make_env(transports=[SessionTransport(), BearerTransport(refresh="body")])
    await register(env.client)
    form = {"username": "alice", "password": "correct horse battery"}
    async with client_of(env) as browser:
        for route, value in itertools.product(("/login", "/token"), MISSHAPEN_COOKIES):
            cookie = b"crudauth_device=" + value
            r = await browser.post(route, data=form, headers=[(b"cookie", cookie)])
            assert r.status_code == 200, (route, value, r.text)
            # A new device token replaces the one that could not be read.
            assert "crudauth_device=" in r.headers["set-cookie"]


# -- the session cookie and the CSRF token -----------------------------------------------------


async def test_a_misshapen_session_cookie_is_an_unknown_session(make_env):
    env = await make_env()
    async with client_of(env) as browser:
        unknown = await browser.get("/me", headers={"cookie": "session_id=" + "A" * 43})
        assert answer(unknown) == (401, NOT_AUTHENTICATED, "invalid_session")
        for method, value in itertools.product(("GET", "POST"), MISSHAPEN_COOKIES):
            cookie = b"session_id=" + value
            r = await browser.request(method, "/private", headers=[(b"cookie", cookie)])
            assert answer(r) == answer(unknown), value


async def test_a_misshapen_csrf_header_is_a_wrong_csrf_token(make_env):
    env = await make_env()
    await register(env.client)
    assert (await login(env.client)).status_code == 200
    wrong = await env.client.post("/private", headers={"x-csrf-token": "A" * 43})
    assert answer(wrong) == (403, {"detail": "Invalid CSRF token"}, "csrf_failed")
    for value in MISSHAPEN_COOKIES:
        r = await env.client.post("/private", headers=[(b"x-csrf-token", value)])
        assert answer(r) == answer(wrong), value


async def test_a_misshapen_csrf_cookie_gets_a_fresh_token(make_env):
    env = await make_env(transports=[SessionTransport(management_routes=True)])
    await register(env.client)
    session = (await login(env.client)).cookies["session_id"]
    async with client_of(env) as browser:
        for value in MISSHAPEN_COOKIES:
            cookie = b"session_id=" + session.encode() + b"; csrf_token=" + value
            r = await browser.post("/csrf/refresh", headers=[(b"cookie", cookie)])
            assert r.status_code == 200, (value, r.text)
            token = r.json()["csrf_token"]
            assert r.cookies["csrf_token"] == token  # rotated and set again


# -- refresh tokens ----------------------------------------------------------------------------


async def test_a_misshapen_refresh_cookie_is_an_invalid_refresh_token(make_env):
    env = await make_env(transports=[BearerTransport()])
    async with client_of(env) as browser:
        junk = await browser.post("/refresh", headers={"cookie": "refresh_token=junk"})
        assert answer(junk) == (401, INVALID_REFRESH, "invalid_refresh_token")
        for value in MISSHAPEN_COOKIES:
            cookie = b"refresh_token=" + value
            r = await browser.post("/refresh", headers=[(b"cookie", cookie)])
            assert answer(r) == answer(junk), value
            assert cleared(r) and cleared(junk)  # the dead cookie goes


async def test_a_misshapen_refresh_token_in_the_body_is_an_invalid_refresh_token(make_env):
    env = await make_env(transports=[BearerTransport(refresh="body")])
    junk = await env.client.post("/refresh", json={"refresh_token": "a.b.c"})
    assert answer(junk) == (401, INVALID_REFRESH, "invalid_refresh_token")
    # (An oversized body token is a 422 before any work: tests/test_request_limits.py.)
    for token in [*filter(None, MISSHAPEN_TOKENS), "é.a.b", "a.b.é"]:
        r = await env.client.post("/refresh", json={"refresh_token": token})
        assert answer(r) == answer(junk), token
