"""Several transports on one app: first credential present wins, CSRF for sessions only."""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from crudauth import BearerTransport, Principal, SessionTransport
from tests.bearer_support import PASSWORD, assert_invalid_token, bearer, get_tokens, sign_up


async def web_and_api(make_env: Any, *transports: Any) -> Any:
    env = await make_env(transports=list(transports))
    await sign_up(env.client, "alice")
    await sign_up(env.client, "bob")

    @env.app.get("/api-only")
    async def api_only(p: Principal = Depends(env.auth.current_user(transport="bearer"))) -> Any:
        return {"via": p.transport}

    @env.app.get("/web-only")
    async def web_only(p: Principal = Depends(env.auth.current_user(transport="session"))) -> Any:
        return {"via": p.transport}

    return env


async def session_login(env: Any, username: str = "alice") -> dict[str, str]:
    r = await env.client.post("/login", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    cookies = {"session_id": r.cookies["session_id"], "csrf_token": r.cookies["csrf_token"]}
    env.client.cookies.clear()
    return cookies


def as_cookies(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


async def test_one_route_serves_both_transports(make_env):
    env = await web_and_api(make_env, SessionTransport(), BearerTransport(refresh="body"))
    cookies = await session_login(env)
    token = (await get_tokens(env.client, "bob"))["access_token"]
    r = await env.client.get("/private", headers=as_cookies(cookies))
    assert r.json() == {"user_id": 1, "via": "session"}
    r = await env.client.get("/private", headers=bearer(token))
    assert r.json() == {"user_id": 2, "via": "bearer"}


async def test_the_first_configured_transport_with_a_credential_wins(make_env):
    env = await web_and_api(make_env, SessionTransport(), BearerTransport(refresh="body"))
    cookies = await session_login(env, "alice")
    token = (await get_tokens(env.client, "bob"))["access_token"]
    both = {**as_cookies(cookies), **bearer(token)}
    assert (await env.client.get("/private", headers=both)).json()["via"] == "session"

    env = await web_and_api(make_env, BearerTransport(refresh="body"), SessionTransport())
    cookies = await session_login(env, "alice")
    token = (await get_tokens(env.client, "bob"))["access_token"]
    both = {**as_cookies(cookies), **bearer(token)}
    assert (await env.client.get("/private", headers=both)).json() == {
        "user_id": 2,
        "via": "bearer",
    }


async def test_bearer_requests_need_no_csrf_token(make_env):
    env = await web_and_api(make_env, SessionTransport(), BearerTransport(refresh="body"))
    token = (await get_tokens(env.client))["access_token"]
    assert (await env.client.post("/private", headers=bearer(token))).status_code == 200


async def test_a_cookie_request_with_a_junk_authorization_header_still_needs_csrf(make_env):
    env = await web_and_api(make_env, SessionTransport(), BearerTransport(refresh="body"))
    cookies = await session_login(env)
    for junk in ("Bearer junk", "Basic YWxpY2U6cHc=", "junk"):
        headers = {**as_cookies(cookies), "Authorization": junk}
        r = await env.client.post("/private", headers=headers)
        assert r.status_code == 403, (junk, r.text)
        headers["X-CSRF-Token"] = cookies["csrf_token"]
        assert (await env.client.post("/private", headers=headers)).status_code == 200


async def test_with_bearer_first_a_junk_bearer_header_is_refused_not_skipped(make_env):
    env = await web_and_api(make_env, BearerTransport(refresh="body"), SessionTransport())
    cookies = await session_login(env)
    headers = {**as_cookies(cookies), "Authorization": "Bearer junk"}
    assert_invalid_token(await env.client.post("/private", headers=headers))
    # Another scheme is not a bearer credential: the session answers, and wants its CSRF token.
    headers["Authorization"] = "Basic YWxpY2U6cHc="
    assert (await env.client.post("/private", headers=headers)).status_code == 403


async def test_transport_narrows_a_route(make_env):
    env = await web_and_api(make_env, SessionTransport(), BearerTransport(refresh="body"))
    cookies = await session_login(env)
    token = (await get_tokens(env.client))["access_token"]
    assert (await env.client.get("/api-only", headers=as_cookies(cookies))).status_code == 401
    assert (await env.client.get("/api-only", headers=bearer(token))).json() == {"via": "bearer"}
    assert (await env.client.get("/web-only", headers=bearer(token))).status_code == 401
    r = await env.client.get("/web-only", headers=as_cookies(cookies))
    assert r.json() == {"via": "session"}


async def test_session_logout_also_clears_the_refresh_cookie(make_env):
    env = await web_and_api(make_env, SessionTransport(), BearerTransport())
    cookies = await session_login(env)
    headers = {**as_cookies(cookies), "X-CSRF-Token": cookies["csrf_token"]}
    r = await env.client.post("/logout", headers=headers)
    assert r.status_code == 200
    cleared = [h for h in r.headers.get_list("set-cookie") if h.startswith("refresh_token=")]
    assert cleared


async def test_resolve_principal_turns_a_bad_bearer_token_into_none(make_env):
    env = await web_and_api(make_env, SessionTransport(), BearerTransport(refresh="body"))
    token = (await get_tokens(env.client))["access_token"]
    from starlette.requests import Request

    def request(authorization: str) -> Request:
        return Request(
            {
                "type": "http",
                "method": "GET",
                "path": "/",
                "headers": [(b"authorization", authorization.encode())],
            }
        )

    principal = await env.auth.resolve_principal(request(f"Bearer {token}"))
    assert principal is not None and principal.transport == "bearer"
    assert await env.auth.resolve_principal(request("Bearer junk")) is None
