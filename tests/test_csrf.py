"""CSRF: a session-bound token in ``X-CSRF-Token`` on every unsafe request, and login CSRF."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from fastapi import Depends

from crudauth import Principal, SessionTransport
from tests.conftest import login, register

UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]


async def signed_in(env: Any, username: str = "alice") -> str:
    """Register and log in ``username`` on a clean client; return its CSRF token."""
    await register(env.client, username=username, email=f"{username}@example.com")
    env.client.cookies.clear()
    r = await login(env.client, username=username)
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def add_unsafe_routes(env: Any) -> None:
    """``/private`` for every unsafe method (POST already exists in conftest)."""
    guard = env.auth.current_user()

    async def endpoint(p: Principal = Depends(guard)) -> dict[str, Any]:
        return {"user_id": p.user_id}

    env.app.add_api_route("/private", endpoint, methods=["PUT", "PATCH", "DELETE"])


def assert_csrf_refused(r: httpx.Response, detail: str) -> None:
    assert r.status_code == 403, r.text
    assert r.json() == {"detail": detail}
    assert r.headers["x-csrf-error"] == "true"


@pytest.mark.parametrize("method", UNSAFE)
async def test_unsafe_method_without_csrf_token_is_refused(make_env, method):
    env = await make_env()
    add_unsafe_routes(env)
    await signed_in(env)

    r = await env.client.request(method, "/private")

    assert_csrf_refused(r, "Missing CSRF token")


@pytest.mark.parametrize("method", UNSAFE)
async def test_unsafe_method_with_wrong_csrf_token_is_refused(make_env, method):
    env = await make_env()
    add_unsafe_routes(env)
    await signed_in(env)

    for wrong in (secrets.token_urlsafe(32), "x", "A" * 5000):
        r = await env.client.request(method, "/private", headers={"X-CSRF-Token": wrong})
        assert_csrf_refused(r, "Invalid CSRF token")


@pytest.mark.parametrize("method", UNSAFE)
async def test_unsafe_method_with_the_sessions_token_is_allowed(make_env, method):
    env = await make_env()
    add_unsafe_routes(env)
    csrf = await signed_in(env)

    r = await env.client.request(method, "/private", headers={"X-CSRF-Token": csrf})

    assert r.status_code == 200, r.text


async def test_another_users_csrf_token_is_refused(make_env):
    env = await make_env()
    bobs_token = await signed_in(env, "bob")
    await signed_in(env, "alice")

    r = await env.client.post("/private", headers={"X-CSRF-Token": bobs_token})

    assert_csrf_refused(r, "Invalid CSRF token")


async def test_another_session_of_the_same_user_has_its_own_token(make_env):
    env = await make_env()
    first_token = await signed_in(env)
    env.client.cookies.clear()
    second_token = (await login(env.client)).json()["csrf_token"]
    assert first_token != second_token

    r = await env.client.post("/private", headers={"X-CSRF-Token": first_token})

    assert_csrf_refused(r, "Invalid CSRF token")


async def test_csrf_cookie_alone_is_not_enough(make_env):
    env = await make_env()
    csrf = await signed_in(env)
    assert env.client.cookies["csrf_token"] == csrf  # the browser holds and sends it

    r = await env.client.post("/private")

    assert_csrf_refused(r, "Missing CSRF token")


async def test_csrf_token_in_the_body_or_query_is_not_enough(make_env):
    env = await make_env()
    csrf = await signed_in(env)

    r = await env.client.post("/private", params={"csrf_token": csrf})
    assert_csrf_refused(r, "Missing CSRF token")
    r = await env.client.post("/private", data={"csrf_token": csrf})
    assert_csrf_refused(r, "Missing CSRF token")


async def test_safe_methods_need_no_csrf_token(make_env):
    env = await make_env()
    await signed_in(env)

    assert (await env.client.get("/private")).status_code == 200
    assert (await env.client.get("/me")).status_code == 200


async def test_login_rotates_the_csrf_token(make_env):
    env = await make_env()
    before = await signed_in(env)

    r = await login(env.client)  # the same browser signs in again

    after = r.json()["csrf_token"]
    assert after != before
    assert r.cookies["csrf_token"] == after
    assert_csrf_refused(
        await env.client.post("/private", headers={"X-CSRF-Token": before}), "Invalid CSRF token"
    )
    assert (await env.client.post("/private", headers={"X-CSRF-Token": after})).status_code == 200


async def test_logout_retires_the_csrf_token(make_env):
    env = await make_env()
    before = await signed_in(env)

    r = await env.client.post("/logout", headers={"X-CSRF-Token": before})
    assert r.status_code == 200, r.text
    cleared = [h for h in r.headers.get_list("set-cookie") if h.startswith("csrf_token=")]
    assert len(cleared) == 1
    assert "max-age=0" in cleared[0].lower()
    assert "csrf_token" not in env.client.cookies

    after = (await login(env.client)).json()["csrf_token"]
    assert after != before
    assert_csrf_refused(
        await env.client.post("/private", headers={"X-CSRF-Token": before}), "Invalid CSRF token"
    )


async def test_cross_site_login_is_refused_without_a_session(make_env):
    env = await make_env()
    await register(env.client)

    r = await env.client.post(
        "/login",
        data={"username": "alice", "password": "correct horse battery"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )

    assert r.status_code == 403
    assert r.json() == {"detail": "Cross-site login requests are not allowed."}
    assert r.headers.get_list("set-cookie") == []
    assert (await env.client.get("/me")).status_code == 401


@pytest.mark.parametrize("site", ["same-origin", "same-site", "none"])
async def test_same_site_and_direct_logins_are_allowed(make_env, site):
    env = await make_env()
    await register(env.client)

    r = await env.client.post(
        "/login",
        data={"username": "alice", "password": "correct horse battery"},
        headers={"Sec-Fetch-Site": site},
    )

    assert r.status_code == 200, r.text


async def test_login_from_an_opaque_origin_is_refused(make_env):
    env = await make_env()
    await register(env.client)

    r = await env.client.post(
        "/login",
        data={"username": "alice", "password": "correct horse battery"},
        headers={"Origin": "null"},
    )

    assert r.status_code == 403
    assert r.json() == {"detail": "Cross-site login requests are not allowed."}
    assert r.headers.get_list("set-cookie") == []


async def test_junk_bearer_header_does_not_skip_csrf_for_a_cookie_session(make_env):
    env = await make_env()
    await signed_in(env)

    r = await env.client.post("/private", headers={"Authorization": "Bearer x"})

    assert_csrf_refused(r, "Missing CSRF token")


async def test_csrf_can_be_turned_off_per_transport(make_env):
    env = await make_env(transports=[SessionTransport(csrf=False)])
    await signed_in(env)

    assert (await env.client.post("/private")).status_code == 200
