"""Every credential a client can present, fuzzed: never a 5xx, never signed in.

Session, CSRF, device and refresh cookies, and the ``Authorization`` header. The values come
from Hypothesis (any text, raw bytes, and shapes close to the real ones); each property runs a
fixed, bounded set of examples on one app (see tests/fuzz_support.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crudauth.ratelimit.lockout import DEVICE_PURPOSE
from tests.fuzz_support import (
    FuzzApp,
    assert_anonymous,
    assert_no_server_error,
    fuzz_app,
    fuzz_settings,
    raw_cookie_header,
)

#: Text a cookie value can carry once the header is split: anything but the separators.
_COOKIE_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters=";\r\n\x00"), max_size=120
)
#: Close to the real shapes: URL-safe base64 with dots, of about the real lengths.
_TOKEN_LIKE = st.from_regex(r"[A-Za-z0-9_\-]{0,64}(\.[A-Za-z0-9_\-]{0,80}){0,3}", fullmatch=True)
#: Two parts around one dot, as signed cookies are, with any text in either part.
_DOTTED = st.tuples(_COOKIE_TEXT, _COOKIE_TEXT).map(".".join)
COOKIE_VALUES = st.one_of(_COOKIE_TEXT, _TOKEN_LIKE, _DOTTED, st.text(max_size=3000).map(str.strip))


@pytest.fixture(scope="module")
def fuzz() -> Iterator[FuzzApp]:
    with fuzz_app() as app:
        yield app


@pytest.fixture(scope="module")
def fuzz_redis() -> Iterator[FuzzApp]:
    with fuzz_app(redis=True) as app:
        yield app


def _cookie(name: str, value: str) -> dict[str, bytes]:
    return {"Cookie": raw_cookie_header([(name, value)])}


@fuzz_settings()
@given(value=COOKIE_VALUES, path=st.sampled_from(["/me", "/private", "/sessions"]))
def test_any_session_cookie_is_anonymous(fuzz: FuzzApp, value: str, path: str) -> None:
    assert_anonymous(fuzz.send("GET", path, headers=_cookie("session_id", value)))


@pytest.mark.redis
@fuzz_settings()
@given(value=COOKIE_VALUES, path=st.sampled_from(["/me", "/logout-all", "/csrf/refresh"]))
def test_any_session_cookie_is_anonymous_over_redis(
    fuzz_redis: FuzzApp, value: str, path: str
) -> None:
    method = "GET" if path == "/me" else "POST"
    assert_anonymous(fuzz_redis.send(method, path, headers=_cookie("session_id", value)))


@fuzz_settings()
@given(value=COOKIE_VALUES, path=st.sampled_from(["/logout", "/logout-all", "/csrf/refresh"]))
def test_any_session_cookie_on_an_unsafe_route_is_no_server_error(
    fuzz: FuzzApp, value: str, path: str
) -> None:
    response = fuzz.send("POST", path, headers=_cookie("session_id", value))
    assert_no_server_error(response)
    if path != "/logout":  # logging out with no session is a 200 "Logged out"
        assert response.status_code != 200, response.text


@fuzz_settings()
@given(cookie=COOKIE_VALUES, header=COOKIE_VALUES)
def test_any_csrf_token_leaves_the_session_untouched(
    fuzz: FuzzApp, cookie: str, header: str
) -> None:
    alice = fuzz.alice
    pairs = [("session_id", alice.cookies["session_id"]), ("csrf_token", cookie)]
    headers = {"Cookie": raw_cookie_header(pairs), "X-CSRF-Token": header.encode("utf-8")}
    response = fuzz.send("POST", "/logout", headers=headers)
    assert_no_server_error(response)
    assert response.status_code == 403, response.text
    me = fuzz.send("GET", "/me", headers={"Cookie": raw_cookie_header(pairs)})
    assert me.status_code == 200, me.text


@fuzz_settings()
@given(value=COOKIE_VALUES, path=st.sampled_from(["/login", "/token"]))
@example(value="abc.\xe9", path="/login")
@example(value="abc.\xe9", path="/token")
def test_any_device_cookie_with_a_wrong_password_is_refused(
    fuzz: FuzzApp, value: str, path: str
) -> None:
    form = {"username": "alice", "password": "not the password"}
    response = fuzz.send("POST", path, data=form, headers=_cookie("crudauth_device", value))
    assert_anonymous(response)


def _device_token(fuzz: FuzzApp, payload: object) -> str:
    """A device cookie signed with the app's own key, carrying ``payload``."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{body}.{fuzz.auth.runtime.keys.digest(DEVICE_PURPOSE, body)}"


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
_HUGE = st.sampled_from([10**400, -(10**400), 1e308, -1e308, 2**63, 2**64 + 1])


@fuzz_settings()
@given(
    payload=st.fixed_dictionaries(
        {}, optional={"d": _JSON, "s": _JSON | st.lists(st.text(max_size=40)), "e": _JSON | _HUGE}
    )
    | _JSON
)
@example(payload={"d": "device", "s": [], "e": 10**400})
def test_a_signed_device_cookie_with_hostile_claims_is_no_server_error(
    fuzz: FuzzApp, payload: object
) -> None:
    cookie = _device_token(fuzz, payload)
    form = {"username": "alice", "password": "not the password"}
    response = fuzz.send("POST", "/login", data=form, headers=_cookie("crudauth_device", cookie))
    assert_anonymous(response)


@fuzz_settings()
@given(value=COOKIE_VALUES)
def test_any_refresh_cookie_is_refused(fuzz: FuzzApp, value: str) -> None:
    response = fuzz.send("POST", "/refresh", headers=_cookie("refresh_token", value))
    assert_anonymous(response)


@fuzz_settings()
@given(
    scheme=st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "", "Bearer\t"]) | _COOKIE_TEXT,
    value=COOKIE_VALUES | st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    path=st.sampled_from(["/me", "/private"]),
)
def test_any_authorization_header_is_anonymous(
    fuzz: FuzzApp, scheme: str, value: str, path: str
) -> None:
    header = f"{scheme} {value}".encode()
    if b"\n" in header or b"\r" in header:
        header = header.replace(b"\r", b"").replace(b"\n", b"")
    assert_anonymous(fuzz.send("GET", path, headers={"Authorization": header}))


@fuzz_settings()
@given(first=COOKIE_VALUES, second=COOKIE_VALUES)
def test_repeated_junk_credential_cookies_are_anonymous(
    fuzz: FuzzApp, first: str, second: str
) -> None:
    pairs = [
        ("session_id", first),
        ("session_id", second),
        ("refresh_token", second),
        ("crudauth_device", first),
        ("crudauth_device", second),
    ]
    assert_anonymous(fuzz.send("GET", "/me", headers={"Cookie": raw_cookie_header(pairs)}))
