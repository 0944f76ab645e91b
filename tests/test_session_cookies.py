"""The session and CSRF cookies that /login sets, and the headers of auth responses."""

from __future__ import annotations

import re

import httpx

from crudauth import CookieConfig
from tests.conftest import login, register

SESSION_ID_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str | bool]]:
    """Parse every raw ``Set-Cookie`` header into ``{name: {attribute: value}}``.

    Attribute names are lower-cased; flag attributes (HttpOnly, Secure) map to ``True``.
    """
    cookies: dict[str, dict[str, str | bool]] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *rest = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        attributes: dict[str, str | bool] = {"value": value}
        for part in rest:
            if not part:
                continue
            key, sep, val = part.partition("=")
            attributes[key.lower()] = val if sep else True
        cookies[name] = attributes
    return cookies


async def test_login_sets_session_cookie_with_secure_defaults(make_env):
    env = await make_env(cookies=CookieConfig())
    await register(env.client)

    r = await login(env.client)

    assert r.status_code == 200, r.text
    session = set_cookies(r)["session_id"]
    assert session["httponly"] is True
    assert session["secure"] is True
    assert session["path"] == "/"
    assert str(session["samesite"]).lower() == "lax"
    assert "domain" not in session
    assert "max-age" not in session
    assert "expires" not in session


async def test_login_sets_readable_csrf_cookie(make_env):
    env = await make_env(cookies=CookieConfig())
    await register(env.client)

    r = await login(env.client)

    csrf = set_cookies(r)["csrf_token"]
    assert "httponly" not in csrf  # the page's script must read it
    assert csrf["secure"] is True
    assert csrf["path"] == "/"
    assert str(csrf["samesite"]).lower() == "lax"
    assert "domain" not in csrf
    assert csrf["value"] == r.json()["csrf_token"]


async def test_insecure_development_cookies_omit_secure(make_env):
    env = await make_env(cookies=CookieConfig(secure=False))
    await register(env.client)

    r = await login(env.client)

    cookies = set_cookies(r)
    assert "secure" not in cookies["session_id"]
    assert "secure" not in cookies["csrf_token"]
    # Over plain http the client keeps and sends them: /me works.
    assert (await env.client.get("/me")).status_code == 200


async def test_remember_me_sets_thirty_day_max_age(make_env):
    env = await make_env()
    await register(env.client)

    r = await login(env.client, remember_me="true")

    assert r.status_code == 200, r.text
    cookies = set_cookies(r)
    assert cookies["session_id"]["max-age"] == "2592000"
    assert cookies["csrf_token"]["max-age"] == "2592000"


async def test_without_remember_me_cookies_are_session_cookies(make_env):
    env = await make_env()
    await register(env.client)

    r = await login(env.client, remember_me="false")

    cookies = set_cookies(r)
    assert "max-age" not in cookies["session_id"]
    assert "max-age" not in cookies["csrf_token"]


async def test_auth_responses_are_not_cached(make_env):
    env = await make_env()

    r = await register(env.client)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"

    r = await login(env.client)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    csrf = r.json()["csrf_token"]

    r = await env.client.get("/me")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"

    r = await env.client.post("/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"


async def test_session_id_is_256_bit_urlsafe_and_fresh_per_login(make_env):
    env = await make_env()
    await register(env.client)

    seen = set()
    for _ in range(5):
        env.client.cookies.clear()
        r = await login(env.client)
        assert r.status_code == 200, r.text
        session_id = r.cookies["session_id"]
        assert SESSION_ID_SHAPE.match(session_id), session_id
        seen.add(session_id)
    assert len(seen) == 5


async def test_login_body_carries_csrf_token_but_never_the_session_id(make_env):
    env = await make_env()
    registered = (await register(env.client)).json()

    r = await login(env.client)

    body = r.json()
    assert set(body) == {"id", "username", "csrf_token"}
    assert body["id"] == registered["id"]
    assert body["username"] == "alice"
    assert r.cookies["session_id"] not in r.text


async def test_session_id_in_query_string_is_ignored(make_env):
    env = await make_env()
    await register(env.client)
    session_id = (await login(env.client)).cookies["session_id"]
    env.client.cookies.clear()

    r = await env.client.get("/me", params={"session_id": session_id})

    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}
