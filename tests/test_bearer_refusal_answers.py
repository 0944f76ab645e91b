"""The exact HTTP answer to a refused bearer credential: status, body and headers.

Whatever layer refuses the token (the header reader, the per-user checks, the claims path,
the refresh route), a client sees one stable answer (RFC 6750 §3), never a 500.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends

from crudauth import BearerTransport, Principal
from tests.bearer_support import bearer, get_tokens, resign, sign_up, update_user
from tests.conftest import Env

INVALID_TOKEN_HEADERS = {
    "www-authenticate": 'Bearer error="invalid_token"',
    "x-error-code": "invalid_token",
    "cache-control": "no-store",
}


def assert_answer(r: httpx.Response, detail: str, headers: dict[str, str]) -> None:
    assert r.status_code == 401, r.text
    assert r.json() == {"detail": detail}
    for name, value in headers.items():
        assert r.headers.get(name) == value, (name, r.headers)
    assert "set-cookie" not in r.headers


@pytest.fixture
async def env(make_env: Any) -> Env:
    env: Env = await make_env(transports=[BearerTransport(refresh="body")])

    @env.app.get("/claims")
    async def claims(p: Principal = Depends(env.auth.current_user(load_user=False))) -> Any:
        return {"user_id": p.user_id}

    await sign_up(env.client)
    return env


@pytest.mark.parametrize("path", ["/private", "/claims"])
async def test_a_forged_access_token_gets_the_invalid_token_answer(env, path):
    token = (await get_tokens(env.client))["access_token"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    r = await env.client.get(path, headers=bearer(forged))
    assert_answer(r, "Invalid token", INVALID_TOKEN_HEADERS)


@pytest.mark.parametrize("path", ["/private", "/claims"])
async def test_an_expired_remembered_token_gets_the_invalid_token_answer(env, path):
    token = (await get_tokens(env.client))["access_token"]
    assert (await env.client.get(path, headers=bearer(token))).status_code == 200
    env.clock.advance(3600)  # the memo holds it; only its time has run out
    r = await env.client.get(path, headers=bearer(token))
    assert_answer(r, "Invalid token", INVALID_TOKEN_HEADERS)


@pytest.mark.parametrize("path", ["/private", "/claims"])
async def test_a_token_of_an_older_version_gets_the_invalid_token_answer(env, path):
    token = (await get_tokens(env.client))["access_token"]
    await update_user(env, "alice", token_version=5)
    await env.auth.revoke_user(1)
    r = await env.client.get(path, headers=bearer(token))
    assert_answer(r, "Invalid token", INVALID_TOKEN_HEADERS)


async def test_a_token_of_a_disabled_user_gets_the_invalid_token_answer(env):
    token = (await get_tokens(env.client))["access_token"]
    await update_user(env, "alice", is_active=False)
    r = await env.client.get("/private", headers=bearer(token))
    assert_answer(r, "Invalid token", INVALID_TOKEN_HEADERS)


async def test_a_token_of_an_unknown_user_gets_the_invalid_token_answer(env):
    token = (await get_tokens(env.client))["access_token"]
    r = await env.client.get("/private", headers=bearer(resign(env.auth, token, sub="999")))
    assert_answer(r, "Invalid token", INVALID_TOKEN_HEADERS)


async def test_a_refused_refresh_token_gets_the_invalid_refresh_answer(env):
    r = await env.client.post("/refresh", json={"refresh_token": "junk"})
    assert_answer(
        r,
        "Invalid or expired refresh token",
        {**INVALID_TOKEN_HEADERS, "x-error-code": "invalid_refresh_token"},
    )


async def test_a_refused_refresh_cookie_gets_the_invalid_refresh_answer_and_is_cleared(make_env):
    env = await make_env(transports=[BearerTransport()])
    r = await env.client.post("/refresh", headers={"Cookie": "refresh_token=junk"})
    assert r.status_code == 401
    assert r.json() == {"detail": "Invalid or expired refresh token"}
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert r.headers["x-error-code"] == "invalid_refresh_token"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["set-cookie"].startswith("refresh_token=")
    assert "max-age=0" in r.headers["set-cookie"].lower()


async def test_no_refresh_token_gets_the_missing_answer(env):
    r = await env.client.post("/refresh")
    assert r.status_code == 401
    assert r.json() == {"detail": "Refresh token missing"}
    assert r.headers["www-authenticate"] == "Bearer"


async def test_the_transport_refuses_with_the_domain_error_not_an_http_one(env):
    """The answer above is built at the HTTP edge only: the transport speaks domain errors."""
    from starlette.requests import Request

    from crudauth.errors import InvalidToken
    from crudauth.transports.base import AuthContext

    transport = next(t for t in env.auth.transports if t.name == "bearer")
    token = (await get_tokens(env.client))["access_token"]

    def request(value: str) -> Request:
        header = (b"authorization", b"Bearer " + value.encode())
        return Request({"type": "http", "method": "GET", "path": "/", "headers": [header]})

    with pytest.raises(InvalidToken):
        transport.access.read(request(token + "x"))
    await update_user(env, "alice", token_version=5)
    async with env.sessionmaker() as db:
        with pytest.raises(InvalidToken):
            await transport.authenticate(
                request(token), AuthContext(db=db, runtime=env.auth.runtime)
            )
    await env.auth.revoke_user(1)
    with pytest.raises(InvalidToken):
        await transport.authenticate_claims(request(token))
    env.clock.advance(3600)
    with pytest.raises(InvalidToken):
        transport.access.read(request(token))  # remembered, but expired
