"""Origin checks on cookie-bearing unsafe requests (SECURITY items 17 and 33).

The test client talks to ``http://testserver``: that host is the app's own origin.
"""

from __future__ import annotations

from typing import Any

import pytest

from crudauth import BearerTransport, ConfigurationError, CRUDAuth
from crudauth.http.origins import OriginPolicy
from tests.conftest import SECRET, User, login, register

FORM = {"username": "alice", "password": "correct horse battery"}
CROSS = "Cross-site login requests are not allowed."


async def signed_up(make_env: Any, **options: Any) -> Any:
    env = await make_env(**options)
    assert (await register(env.client)).is_success
    return env


# -- login ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "http://testserver"},
        {"Origin": "https://testserver"},  # TLS ended at a proxy: the scheme is not compared
        {"Origin": "http://TESTSERVER"},
        {"Origin": "http://testserver:80"},
        {"Referer": "http://testserver/login?next=/"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
    ],
)
async def test_logins_from_the_apps_own_pages_are_allowed(
    make_env: Any, headers: dict[str, str]
) -> None:
    env = await signed_up(make_env)
    r = await env.client.post("/login", data=FORM, headers=headers)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://testserver.attacker.com"},
        {"Origin": "http://attacker.com"},
        {"Origin": "http://evil.testserver"},  # a sibling or child host: same-site, not ours
        {"Origin": "http://testserver:8080"},
        {"Origin": "http://user@testserver"},
        {"Origin": "not an origin"},
        {"Origin": "null"},
        {"Origin": " NULL "},
        {"Referer": "http://attacker.com/page"},
        {"Referer": "http://testserver.attacker.com/"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://app.testserver"},
    ],
)
async def test_logins_from_other_pages_are_refused_and_set_no_cookie(
    make_env: Any, headers: dict[str, str]
) -> None:
    env = await signed_up(make_env)
    r = await env.client.post("/login", data=FORM, headers=headers)
    assert r.status_code == 403
    assert r.json() == {"detail": CROSS}
    assert r.headers["X-Error-Code"] == "cross_site"
    assert r.headers.get_list("set-cookie") == []
    assert (await env.client.get("/me")).status_code == 401


async def test_trusted_origins_are_matched_exactly(make_env: Any) -> None:
    env = await signed_up(make_env, trusted_origins=["https://app.example.com"])
    allowed = await env.client.post(
        "/login", data=FORM, headers={"Origin": "https://app.example.com"}
    )
    assert allowed.status_code == 200
    for origin in (
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "https://example.com",
        "https://app.example.com.attacker.com",
    ):
        r = await env.client.post("/login", data=FORM, headers={"Origin": origin})
        assert r.status_code == 403, origin


async def test_a_bearer_cookie_login_checks_the_origin_and_a_body_login_does_not(
    make_env: Any,
) -> None:
    foreign = {"Origin": "https://attacker.example"}
    env = await signed_up(make_env, transports=[BearerTransport()])
    r = await env.client.post("/token", data=FORM, headers=foreign)
    assert r.status_code == 403  # the refresh cookie would land in the victim's browser
    env = await signed_up(make_env, transports=[BearerTransport(refresh="body")])
    assert (await env.client.post("/token", data=FORM, headers=foreign)).status_code == 200


# -- a session's unsafe requests --------------------------------------------------------------


async def test_a_sessions_unsafe_request_from_another_origin_is_refused_even_with_its_token(
    make_env: Any,
) -> None:
    env = await signed_up(make_env)
    csrf = (await login(env.client)).json()["csrf_token"]
    token = {"X-CSRF-Token": csrf}

    refused = await env.client.post(
        "/private", headers={**token, "Origin": "https://attacker.example"}
    )
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Cross-origin request refused"}
    assert refused.headers["X-Error-Code"] == "csrf_failed"
    r = await env.client.post("/private", headers={**token, "Referer": "https://attacker.example/"})
    assert r.status_code == 403

    for ok in ({}, {"Origin": "http://testserver"}, {"Referer": "http://testserver/app"}):
        r = await env.client.post("/private", headers={**token, **ok})
        assert r.status_code == 200, (ok, r.text)
    # Safe methods are not checked: a cross-origin GET cannot change anything.
    r = await env.client.get("/private", headers={"Origin": "https://attacker.example"})
    assert r.status_code == 200


async def test_the_token_is_still_required_from_the_apps_own_origin(make_env: Any) -> None:
    env = await signed_up(make_env)
    await login(env.client)
    r = await env.client.post("/private", headers={"Origin": "http://testserver"})
    assert r.status_code == 403
    assert r.json() == {"detail": "Missing CSRF token"}


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "https://app.example.com",  # a string, not a list of origins
        ["https://app.example.com/login"],
        ["app.example.com"],
        ["ftp://app.example.com"],
        ["https://*.example.com"],
        ["*"],
        ["https://user@app.example.com"],
        [None],
    ],
)
def test_malformed_trusted_origins_are_refused_at_construction(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        CRUDAuth(
            session=lambda: None,
            user_model=User,
            SECRET_KEY=SECRET,
            trusted_origins=bad,
            warn_on_memory_backend=False,
        )


def test_trusted_origins_are_normalised() -> None:
    policy = OriginPolicy.build(["HTTPS://App.Example.com:443/", "http://localhost:3000"])
    assert policy.trusted == {("https", "app.example.com", None), ("http", "localhost", 3000)}
