"""Every token a client can present, fuzzed: never a 5xx, never accepted.

Bearer JWTs (access and refresh) are fuzzed twice: as arbitrary bytes and JSON, and as tokens
signed with the app's real keys whose claims are hostile (wrong types, out of range, absurdly
large), which is what a leaked key or a bug in another service that shares the key would
produce. Recovery tokens (verify, reset, email change) likewise, as text and signed with the
app's own recovery keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crudauth.keys import Purpose
from tests.bearer_support import access_key, b64, claims_of, header_of, hs256, refresh_key
from tests.fuzz_support import (
    FuzzApp,
    assert_anonymous,
    assert_no_server_error,
    fuzz_app,
    fuzz_settings,
    raw_cookie_header,
)

LEEWAY = 10  # BearerTransport's default leeway_seconds


@pytest.fixture(scope="module")
def fuzz() -> Iterator[FuzzApp]:
    with fuzz_app() as app:
        yield app


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
#: Numbers no clock reading can be compared with safely once they are floats.
HUGE = st.sampled_from([10**400, -(10**400), 2**1024, 10**20, -(2**63)])
NOT_A_NUMBER = JSON.filter(lambda v: isinstance(v, bool) or not isinstance(v, (int, float)))
NOT_A_STRING = JSON.filter(lambda v: not isinstance(v, str))
NOT_AN_INT = JSON.filter(lambda v: isinstance(v, bool) or not isinstance(v, int))
REMOVED = st.just(None)  # resign() drops a claim set to None


def _future(fuzz: FuzzApp) -> st.SearchStrategy[Any]:
    now = int(fuzz.clock.now())
    return st.integers(min_value=now + LEEWAY + 1, max_value=now + 10**12)


def _hostile_access_claims(fuzz: FuzzApp) -> dict[str, st.SearchStrategy[Any]]:
    """For each claim, values that must make the token worthless."""
    now = int(fuzz.clock.now())
    past = st.integers(min_value=-(2**62), max_value=now - LEEWAY - 1)
    no_digits = st.text(max_size=60).filter(lambda s: not any(c.isdigit() for c in s))
    return {
        "sub": NOT_A_STRING
        | no_digits
        | st.integers(20, 400).map(lambda n: "9" * n)
        | st.sampled_from(["0", "-1", "2"])
        | REMOVED,
        "exp": past | NOT_A_NUMBER | HUGE | REMOVED,
        "iat": _future(fuzz) | NOT_A_NUMBER | HUGE | REMOVED,
        "nbf": _future(fuzz) | NOT_A_NUMBER | HUGE,
        "ver": NOT_AN_INT | st.integers().filter(lambda v: v != 0) | REMOVED,
        "jti": NOT_A_STRING | st.just("") | REMOVED,
        "iss": JSON.filter(lambda v: v != "crudauth") | REMOVED,
        "aud": JSON.filter(lambda v: v != "crudauth") | REMOVED,
        "token_type": JSON.filter(lambda v: v != "access") | REMOVED,
        "scopes": JSON.filter(
            lambda v: not isinstance(v, list) or not all(isinstance(s, str) for s in v)
        ),
    }


@st.composite
def hostile_claims(draw: st.DrawFn, fuzz: FuzzApp) -> dict[str, Any]:
    """The claims of alice's access token with at least one of them made hostile."""
    options = _hostile_access_claims(fuzz)
    chosen = draw(st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=4, unique=True))
    return {name: draw(options[name]) for name in chosen}


def _signed(fuzz: FuzzApp, header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """``claims`` over alice's real ones (``None`` drops a claim), signed with ``key``.

    Encoded by hand: ``json.dumps`` writes integers of any size, as a hostile issuer could.
    """
    body = {**claims_of(fuzz.alice.access_token), **claims}
    body = {k: v for k, v in body.items() if v is not None}
    signing_input = f"{b64(header)}.{b64(json.dumps(body, separators=(',', ':')))}"
    mac = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _me(fuzz: FuzzApp, token: str) -> Any:
    return fuzz.send("GET", "/me", headers={"Authorization": f"Bearer {token}".encode()})


@fuzz_settings()
@given(data=st.data())
def test_a_signed_access_token_with_hostile_claims_is_refused(fuzz: FuzzApp, data: Any) -> None:
    header = header_of(fuzz.alice.access_token)
    claims = data.draw(hostile_claims(fuzz), label="claims")
    response = _me(fuzz, _signed(fuzz, header, claims, access_key(fuzz.auth)))
    assert_anonymous(response)


@fuzz_settings()
@given(extra=st.dictionaries(st.text(max_size=10), JSON, max_size=4))
def test_a_signed_access_token_with_unknown_extra_claims_keeps_its_subject(
    fuzz: FuzzApp, extra: dict[str, Any]
) -> None:
    known = set(claims_of(fuzz.alice.access_token))
    extra = {k: v for k, v in extra.items() if k not in known and v is not None}
    header = header_of(fuzz.alice.access_token)
    response = _me(fuzz, _signed(fuzz, header, extra, access_key(fuzz.auth)))
    assert_no_server_error(response)
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == fuzz.alice.user_id


@fuzz_settings()
@given(header=st.dictionaries(st.text(max_size=6), JSON, max_size=5), data=st.data())
def test_a_signed_access_token_with_any_header_but_its_own_is_refused(
    fuzz: FuzzApp, header: dict[str, Any], data: Any
) -> None:
    real = header_of(fuzz.alice.access_token)
    if header == real:
        header = {**real, "typ": "JWT"}
    response = _me(fuzz, _signed(fuzz, header, {}, access_key(fuzz.auth)))
    assert_anonymous(response)


_SEGMENT = st.one_of(
    st.from_regex(r"[A-Za-z0-9_\-]{0,200}", fullmatch=True),
    JSON.map(lambda v: b64(json.dumps(v))),
    st.binary(max_size=100).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
    st.text(max_size=40),
)


@fuzz_settings()
@given(parts=st.lists(_SEGMENT, min_size=1, max_size=5))
def test_any_unsigned_jwt_shape_is_refused(fuzz: FuzzApp, parts: list[str]) -> None:
    token = ".".join(parts).replace("\r", "").replace("\n", "")
    assert_anonymous(_me(fuzz, token))


@fuzz_settings()
@given(claims=st.dictionaries(st.text(max_size=8), JSON, max_size=12))
def test_a_token_signed_with_the_refresh_key_never_grants_access(
    fuzz: FuzzApp, claims: dict[str, Any]
) -> None:
    token = hs256(header_of(fuzz.alice.access_token), claims, refresh_key(fuzz.auth))
    assert_anonymous(_me(fuzz, token))


@fuzz_settings()
@given(data=st.data())
def test_a_signed_refresh_token_with_hostile_claims_is_refused(fuzz: FuzzApp, data: Any) -> None:
    real = fuzz.alice.refresh_token
    options = {
        **_hostile_access_claims(fuzz),
        "token_type": JSON.filter(lambda v: v != "refresh") | REMOVED,
        "gen": NOT_AN_INT | st.integers(max_value=-1) | HUGE | REMOVED,
        "fam": NOT_A_STRING | st.text(max_size=50) | REMOVED,
        "fst": NOT_A_NUMBER | HUGE | REMOVED,
    }
    chosen = data.draw(
        st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=3, unique=True)
    )
    claims = {**claims_of(real)}
    for name in chosen:
        claims[name] = data.draw(options[name], label=name)
    claims = {k: v for k, v in claims.items() if v is not None}
    if "fam" in chosen and claims.get("fam") == claims_of(real)["fam"]:
        claims["fam"] = claims["fam"] + "x"
    token = _hand_signed(header_of(real), claims, refresh_key(fuzz.auth))
    cookie = raw_cookie_header([("refresh_token", token)])
    assert_anonymous(fuzz.send("POST", "/refresh", headers={"Cookie": cookie}))


def _hand_signed(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    signing_input = f"{b64(header)}.{b64(json.dumps(claims, separators=(',', ':')))}"
    mac = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


# -- recovery tokens --------------------------------------------------------------------------

RECOVERY_ROUTES = {
    "/email/verify-confirm": ("verify_email", Purpose.EMAIL_VERIFY_TOKEN),
    "/password/reset-confirm": ("reset_password", Purpose.PASSWORD_RESET_TOKEN),
    "/email/change-confirm": ("change_email", Purpose.EMAIL_CHANGE_TOKEN),
}
_TOKEN_TEXT = st.one_of(
    st.text(max_size=300),
    st.tuples(st.text(max_size=60), st.text(max_size=60)).map(".".join),
    st.from_regex(r"[A-Za-z0-9_\-]{0,120}\.[A-Za-z0-9_\-]{0,60}", fullmatch=True),
    st.text(min_size=2040, max_size=2100),
)


def _body(path: str, token: Any) -> dict[str, Any]:
    body = {"token": token}
    if path == "/password/reset-confirm":
        body["new_password"] = "a brand new passphrase"
    return body


@fuzz_settings()
@given(path=st.sampled_from(sorted(RECOVERY_ROUTES)), token=_TOKEN_TEXT)
@example(path="/password/reset-confirm", token="é.abc")
@example(path="/email/verify-confirm", token="abc.é")
def test_any_recovery_token_is_refused(fuzz: FuzzApp, path: str, token: str) -> None:
    response = fuzz.send("POST", path, json=_body(path, token))
    assert_anonymous(response)
    assert response.status_code in (400, 422), response.text


def _recovery_token(fuzz: FuzzApp, purpose: str, payload: Any) -> str:
    body = b64(json.dumps(payload, separators=(",", ":")))
    key = fuzz.auth.runtime.keys.key(purpose)
    return f"{body}.{b64(hmac.new(key, body.encode('ascii'), hashlib.sha256).digest())}"


@fuzz_settings()
@given(
    path=st.sampled_from(sorted(RECOVERY_ROUTES)),
    payload=st.fixed_dictionaries(
        {},
        optional={
            "p": JSON | st.sampled_from(["verify_email", "reset_password", "change_email"]),
            "u": JSON | st.just("1"),
            "x": JSON | HUGE,
            "n": JSON,
            "f": JSON,
            "r": JSON,
            "m": JSON,
        },
    )
    | JSON,
)
@example(path="/password/reset-confirm", payload={"p": "reset_password", "u": "1", "x": 10**400})
def test_a_signed_recovery_token_with_hostile_claims_is_refused(
    fuzz: FuzzApp, path: str, payload: Any
) -> None:
    token = _recovery_token(fuzz, RECOVERY_ROUTES[path][1], payload)
    response = fuzz.send("POST", path, json=_body(path, token))
    assert_anonymous(response)
