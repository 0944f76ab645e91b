"""A credential cookie sent more than once is no credential (cookie tossing).

Another host of the parent domain can set ``session_id`` for the whole domain; the browser then
sends both, ordered by path length and creation time, not by who set them. Whichever the server
picked, an attacker could arrange to be that one, so neither is used: not the session, the CSRF,
the refresh or the device cookie. The response clears nothing (see docs/sessions.md: clearing
this host's cookie would leave only the planted one).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends

from crudauth import BearerTransport, Principal, SessionTransport
from crudauth.ratelimit import LockoutConfig
from tests.bearer_support import bearer, get_tokens, sign_up
from tests.conftest import login, register

NOT_AUTHENTICATED = {"detail": "Not authenticated"}
PASSWORD = "correct horse battery"


def client_of(env: Any, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    """A browser with an empty cookie jar (its cookies go in raw headers)."""
    transport = httpx.ASGITransport(app=env.app, client=(peer, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def session_of(env: Any, username: str) -> str:
    async with client_of(env) as browser:
        r = await login(browser, username)
        assert r.status_code == 200, r.text
        return r.cookies["session_id"]


def both_orders(name: str, mine: str, planted: str) -> list[list[tuple[str, str]]]:
    """The two cookies in one header, either way round, and in two headers (as HTTP/2 may)."""
    return [
        [("cookie", f"{name}={mine}; {name}={planted}")],
        [("cookie", f"{name}={planted}; {name}={mine}")],
        [("cookie", f"{name}={mine}"), ("cookie", f"theme=dark; {name}={planted}")],
    ]


async def test_duplicate_session_cookie_is_no_credential(make_env, caplog):
    env = await make_env()
    claims_only = env.auth.current_user(load_user=False)

    @env.app.get("/claims")
    async def claims(p: Principal = Depends(claims_only)) -> dict[str, Any]:
        return {"user_id": p.user_id}

    await register(env.client)
    await register(env.client, "mallory", "mallory@example.com")
    victim, planted = await session_of(env, "alice"), await session_of(env, "mallory")

    async with client_of(env) as browser:
        for headers in both_orders("session_id", victim, planted):
            for method, path in (("GET", "/private"), ("GET", "/me"), ("GET", "/claims")):
                r = await browser.request(method, path, headers=headers)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.json() == NOT_AUTHENTICATED
                assert r.headers["x-error-code"] == "not_authenticated"
                assert "set-cookie" not in r.headers
        assert "'session_id' cookie was sent more than once" in caplog.text
        # One copy of either cookie is a session as usual.
        for session, user_id in ((victim, 1), (planted, 2)):
            r = await browser.get("/private", headers={"cookie": f"session_id={session}"})
            assert r.json() == {"user_id": user_id, "via": "session"}


async def test_duplicate_session_cookie_leaves_the_bearer_header_to_decide(make_env):
    env = await make_env(transports=[SessionTransport(), BearerTransport(refresh="body")])
    await sign_up(env.client)
    await register(env.client, "mallory", "mallory@example.com")
    victim, planted = await session_of(env, "alice"), await session_of(env, "mallory")
    access = (await get_tokens(env.client))["access_token"]
    async with client_of(env) as browser:
        for cookies in both_orders("session_id", victim, planted):
            r = await browser.get("/private", headers=[*cookies, *bearer(access).items()])
            assert r.json() == {"user_id": 1, "via": "bearer"}


async def test_duplicate_session_cookie_ends_no_session_at_sign_in(make_env):
    env = await make_env()
    await register(env.client)
    await register(env.client, "mallory", "mallory@example.com")
    victim, planted = await session_of(env, "alice"), await session_of(env, "mallory")
    async with client_of(env) as browser:
        cookie = f"session_id={victim}; session_id={planted}"
        r = await browser.post(
            "/login", data={"username": "alice", "password": PASSWORD}, headers={"cookie": cookie}
        )
        assert r.status_code == 200, r.text
        for session in (victim, planted):
            r = await browser.get("/private", headers={"cookie": f"session_id={session}"})
            assert r.status_code == 200


async def test_duplicate_csrf_cookie_is_no_csrf_cookie(make_env):
    env = await make_env(transports=[SessionTransport(management_routes=True)])
    await register(env.client)
    r = await login(env.client)
    session, csrf = r.cookies["session_id"], r.json()["csrf_token"]
    async with client_of(env) as browser:
        for arrangement in range(3):
            # The session's current token is one of the two, so a read of either would match.
            headers = both_orders("csrf_token", csrf, "A" * 43)[arrangement]
            cookie = f"session_id={session}; {headers[0][1]}"
            r = await browser.post("/csrf/refresh", headers=[("cookie", cookie), *headers[1:]])
            assert r.status_code == 200, r.text
            fresh = r.json()["csrf_token"]
            assert fresh != csrf  # rotated, as for a browser without the cookie
            assert r.cookies["csrf_token"] == fresh
            csrf = fresh


async def test_duplicate_refresh_cookie_is_no_refresh_token(make_env):
    env = await make_env(transports=[BearerTransport()])
    await sign_up(env.client)
    await sign_up(env.client, "mallory")
    tokens = []
    for username in ("alice", "mallory"):
        async with client_of(env) as browser:
            r = await browser.post("/token", data={"username": username, "password": PASSWORD})
            tokens.append(r.cookies["refresh_token"])
    victim, planted = tokens

    async with client_of(env) as browser:
        for headers in both_orders("refresh_token", victim, planted):
            r = await browser.post("/refresh", headers=headers)
            assert r.status_code == 401, r.text
            assert r.json() == {"detail": "Refresh token missing"}
            assert "set-cookie" not in r.headers
            r = await browser.post("/logout", headers=headers)  # revokes neither family
            assert r.status_code == 200
        for token in (victim, planted):
            r = await browser.post("/refresh", headers={"cookie": f"refresh_token={token}"})
            assert r.status_code == 200, r.text


@pytest.mark.parametrize("order", ["planted_last", "planted_first"])
async def test_duplicate_device_cookie_is_no_device_cookie(make_env, order):
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    home = {"X-Forwarded-For": "192.0.2.10"}
    form = {"username": "alice", "password": PASSWORD}
    async with client_of(env) as owner:
        r = await owner.post("/login", data=form, headers=home)
        device = r.cookies["crudauth_device"]
    for i in range(LockoutConfig().max_attempts):  # someone locks alice's identifier
        wrong = {"username": "alice", "password": "wrong horse battery"}
        r = await env.client.post(
            "/login", data=wrong, headers={"X-Forwarded-For": f"198.51.100.{i}"}
        )
        assert r.status_code == 401
    async with client_of(env) as owner:
        # The device cookie alone exempts the owner's browser from the identifier's lock...
        r = await owner.post(
            "/login", data=form, headers={**home, "cookie": f"crudauth_device={device}"}
        )
        assert r.status_code == 200, r.text
        # ... but not when a second one comes with it, whichever the server would have read.
        pair = [f"crudauth_device={device}", "crudauth_device=x.y"]
        if order == "planted_first":
            pair.reverse()
        r = await owner.post("/login", data=form, headers={**home, "cookie": "; ".join(pair)})
        assert r.status_code == 429, r.text
