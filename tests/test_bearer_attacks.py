"""The JWT attack table: every forged, stale or malformed access token is a 401, never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from crudauth import BearerTransport
from crudauth.transports.bearer.tokens import MAX_TOKEN_BYTES
from tests.bearer_support import (
    access_key,
    assert_invalid_token,
    b64,
    bearer,
    claims_of,
    get_tokens,
    header_of,
    hs256,
    refresh_key,
    resign,
    sign_up,
)
from tests.conftest import Env


@pytest.fixture
async def env(make_env: Callable[..., Any]) -> Env:
    env: Env = await make_env(transports=[BearerTransport(refresh="body", leeway_seconds=5)])
    await sign_up(env.client)
    return env


async def me(env: Env, token: str | bytes) -> Any:
    return await env.client.get("/me", headers=bearer(token))


async def test_a_genuine_token_is_accepted(env):
    token = (await get_tokens(env.client))["access_token"]
    r = await me(env, token)
    assert r.status_code == 200
    assert r.json()["via"] == "bearer"


def _alg_none(env: Env, token: str) -> str:
    return f"{b64({**header_of(token), 'alg': 'none'})}.{token.split('.')[1]}."


def _empty_signature(env: Env, token: str) -> str:
    return token.rsplit(".", 1)[0] + "."


def _other_key(env: Env, token: str) -> str:
    return hs256(header_of(token), claims_of(token), secrets.token_bytes(32))


def _old_library_key(env: Env, token: str) -> str:
    # The reference signed with the raw SECRET_KEY; ours signs with a derived key.
    from tests.conftest import SECRET

    return hs256(header_of(token), claims_of(token), SECRET.encode())


def _es256_with_our_kid(env: Env, token: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(
        claims_of(token),
        key,
        algorithm="ES256",
        headers={"kid": header_of(token)["kid"], "typ": "at+jwt"},
    )


def _eddsa_with_our_kid(env: Env, token: str) -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return jwt.encode(
        claims_of(token),
        key,
        algorithm="EdDSA",
        headers={"kid": header_of(token)["kid"], "typ": "at+jwt"},
    )


def _tampered(env: Env, token: str) -> str:
    head, _, sig = token.split(".")
    return f"{head}.{b64({**claims_of(token), 'sub': '2', 'scopes': ['admin']})}.{sig}"


def _oversized(env: Env, token: str) -> str:
    return resign(env.auth, token, padding="x" * 9000)


def _header(**extra: Any) -> Callable[[Env, str], str]:
    def forge(env: Env, token: str) -> str:
        return resign(env.auth, token, header=extra)

    forge.__name__ = f"header_{'_'.join(extra)}"
    return forge


def _claims(**changes: Any) -> Callable[[Env, str], str]:
    def forge(env: Env, token: str) -> str:
        return resign(env.auth, token, **changes)

    forge.__name__ = f"claims_{'_'.join(changes)}"
    return forge


def _kid_path(env: Env, token: str) -> str:
    return resign(env.auth, token, header={"kid": "../../dev/null"})


def _no_kid(env: Env, token: str) -> str:
    header = {k: v for k, v in header_of(token).items() if k != "kid"}
    return hs256(header, claims_of(token), access_key(env.auth))


ATTACKS: list[Callable[[Env, str], str]] = [
    _alg_none,
    _empty_signature,
    _other_key,
    _old_library_key,
    _es256_with_our_kid,
    _eddsa_with_our_kid,
    _tampered,
    _oversized,
    _kid_path,
    _no_kid,
    _header(kid=12345),
    _header(typ="JWT"),
    _header(typ="rt+jwt"),
    _header(alg="HS512"),
    _header(jwk={"kty": "oct", "k": b64(b"attacker")}),
    _header(jku="https://evil.example/jwks.json"),
    _header(x5u="https://evil.example/cert.pem"),
    _header(x5c=["MIIB"]),
    _header(crit=["exp"]),
    _header(b64=False),
    _claims(aud="someone-else"),
    _claims(aud=["crudauth", "someone-else"]),
    _claims(iss="https://evil.example"),
    _claims(token_type="refresh"),
    _claims(sub=None),
    _claims(sub=1),
    _claims(sub=""),
    _claims(sub="999"),
    _claims(jti=None),
    _claims(ver=None),
    _claims(ver="0"),
    _claims(ver=True),
    _claims(exp=None),
    _claims(exp="never"),
    _claims(iat=None),
    _claims(scopes="admin"),
    _claims(nbf=1_800_000_000 + 3600),
    _claims(iat=1_800_000_000 + 3600),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.__name__.strip("_"))
async def test_forged_access_tokens_are_refused(env, attack):
    token = (await get_tokens(env.client))["access_token"]
    assert_invalid_token(await me(env, attack(env, token)))


GARBAGE: list[bytes] = [
    b"",
    b"a",
    b"a.b",
    b"a.b.c",
    b"a.b.c.d",
    b"....",
    b"!!!.@@@.###",
    b"eyJhbGciOiJIUzI1NiJ9",
    b64(b"not json").encode() + b"." + b64(b"{}").encode() + b".",
    b64(b"[1,2]").encode() + b"." + b64(b"{}").encode() + b".",
    b64(b'{"alg":"HS256","typ":"at+jwt","kid":"x"}').encode() + b".%%%." + b"sig",
    b64(json.dumps({"alg": "HS256"}).encode()).encode() + b"." + b"\xff\xfe" + b".x",
    b"\xe9\xe9\xe9.\xe9.\xe9",
    b"x" * 9000,
    b"Bearer",
]


@pytest.mark.parametrize("raw", GARBAGE, ids=range(len(GARBAGE)))
async def test_garbage_is_a_401_not_a_500(env, raw):
    assert_invalid_token(await me(env, raw))


async def test_a_refresh_token_is_not_an_access_token(env):
    tokens = await get_tokens(env.client)
    assert_invalid_token(await me(env, tokens["refresh_token"]))


async def test_an_access_token_is_not_a_refresh_token(env):
    tokens = await get_tokens(env.client)
    r = await env.client.post("/refresh", json={"refresh_token": tokens["access_token"]})
    assert_invalid_token(r)
    assert r.json() == {"detail": "Invalid or expired refresh token"}


async def test_a_refresh_token_signed_with_the_access_key_is_refused(env):
    refresh = (await get_tokens(env.client))["refresh_token"]
    forged = hs256({**header_of(refresh)}, claims_of(refresh), access_key(env.auth))
    assert_invalid_token(await env.client.post("/refresh", json={"refresh_token": forged}))


async def test_expiry_is_enforced_at_the_leeway_boundary(env):
    token = (await get_tokens(env.client))["access_token"]
    lifetime = claims_of(token)["exp"] - claims_of(token)["iat"]
    env.clock.advance(lifetime + 5 - 1)  # leeway is 5 s
    assert (await me(env, token)).status_code == 200
    env.clock.advance(1)
    assert_invalid_token(await me(env, token))


async def test_not_before_is_enforced_at_the_leeway_boundary(env):
    token = (await get_tokens(env.client))["access_token"]
    now = int(env.clock.now())
    assert (await me(env, resign(env.auth, token, nbf=now + 5))).status_code == 200
    assert_invalid_token(await me(env, resign(env.auth, token, nbf=now + 6)))


async def test_tokens_travel_only_in_the_authorization_header(env):
    token = (await get_tokens(env.client))["access_token"]
    r = await env.client.get("/me", params={"access_token": token})
    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}
    r = await env.client.get("/me", headers={"Cookie": f"access_token={token}"})
    assert r.status_code == 401
    r = await env.client.get("/me", headers={"Authorization": f"Token {token}"})
    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}


async def test_the_scheme_is_case_insensitive(env):
    token = (await get_tokens(env.client))["access_token"]
    r = await env.client.get("/me", headers={"Authorization": f"bearer {token}"})
    assert r.status_code == 200


def test_hs256_signed_with_a_public_key_is_refused_by_the_token_module():
    """CVE-2022-29217 shape: an HMAC over a public PEM never verifies against EdDSA keys."""
    from crudauth.transports.bearer.signing import asymmetric_keyset
    from crudauth.transports.bearer.tokens import (
        InvalidToken,
        TokenRules,
        TokenType,
        create_access_token,
        verify_token,
    )

    private = ed25519.Ed25519PrivateKey.generate()
    keys = asymmetric_keyset("EdDSA", private)
    rules = TokenRules("crudauth", "crudauth")
    good = create_access_token(keys, rules, subject=1, version=0, scopes=(), now=100, ttl=60)
    assert verify_token(good, keys, TokenType.ACCESS, rules=rules, now=110)["sub"] == "1"
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, pem.strip(), base64.b64encode(pem)):
        header = {**header_of(good), "alg": "HS256"}
        signing_input = f"{b64(header)}.{good.split('.')[1]}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(InvalidToken):
            verify_token(
                f"{signing_input}.{b64(mac)}", keys, TokenType.ACCESS, rules=rules, now=110
            )


# -- claims out of range: signed with the real key, so only the claim checks stand between
# the value and the code that uses it (float(), int(), a SQL bind, a store key).

HUGE = 10**400
OUT_OF_RANGE: list[dict[str, Any]] = [
    {"sub": "1" * 400},
    {"sub": "9" * 19},  # past a 64-bit integer
    {"sub": "2147483648"},  # past the 32-bit id column
    {"sub": "-2147483649"},
    {"sub": "x" * 4000},
    {"sub": " 1"},  # int() would read these as user 1: only the canonical spelling is an id
    {"sub": "1_0"},
    {"sub": "\u0661"},  # ARABIC-INDIC DIGIT ONE
    {"exp": HUGE},
    {"exp": -HUGE},
    {"exp": float("inf")},
    {"exp": float("nan")},
    {"exp": 1e300},
    {"exp": 2_000_000_000.5},
    {"iat": HUGE},
    {"iat": -HUGE},
    {"iat": float("-inf")},
    {"nbf": HUGE},
    {"nbf": -HUGE},
    {"nbf": float("nan")},
    {"ver": HUGE},
    {"ver": -HUGE},
    {"ver": 1.0},
    {"jti": "x" * 4000},
    {"jti": HUGE},
    {"scopes": ["s"] * 1500},
    {"scopes": ["x" * 4000]},
    {"scopes": [HUGE]},
    {"token_type": HUGE},
]


@pytest.mark.parametrize("changes", OUT_OF_RANGE, ids=lambda c: repr(c)[:40])
@pytest.mark.parametrize("path", ["/me", "/claims"])
async def test_claims_out_of_range_are_a_401_not_a_500(env, changes, path):
    from fastapi import Depends

    from crudauth import Principal

    @env.app.get("/claims")
    async def claims(p: Principal = Depends(env.auth.current_user(load_user=False))) -> Any:
        return {"user_id": p.user_id}

    token = (await get_tokens(env.client))["access_token"]
    r = await env.client.get(path, headers=bearer(resign(env.auth, token, **changes)))
    assert_invalid_token(r)
    assert r.json() == {"detail": "Invalid token"}


REFRESH_OUT_OF_RANGE: list[dict[str, Any]] = [
    *OUT_OF_RANGE,
    {"gen": HUGE},
    {"gen": 2**40},
    {"gen": 1.0},
    {"fst": HUGE},
    {"fst": float("nan")},
    {"fst": -HUGE},
    {"fam": "x" * 4000},
    {"fam": HUGE},
]


@pytest.mark.parametrize("changes", REFRESH_OUT_OF_RANGE, ids=lambda c: repr(c)[:40])
async def test_refresh_claims_out_of_range_are_a_401_not_a_500(env, changes):
    refresh = (await get_tokens(env.client))["refresh_token"]
    body = {**claims_of(refresh), **changes}
    forged = hs256(header_of(refresh), body, refresh_key(env.auth))
    r = await env.client.post("/refresh", json={"refresh_token": forged})
    if len(forged) > MAX_TOKEN_BYTES:  # the body's bound refuses it before any work
        assert r.status_code == 422
        return
    assert_invalid_token(r)
    assert r.json() == {"detail": "Invalid or expired refresh token"}


# -- the verified-token memo -------------------------------------------------------------------


async def test_a_memoised_access_token_still_expires(make_env):
    """The verified-token memo skips only the signature work: time is checked every time."""
    env = await make_env(transports=[BearerTransport(refresh="body", access_ttl=60)])
    await sign_up(env.client)
    headers = bearer((await get_tokens(env.client))["access_token"])
    assert (await env.client.get("/private", headers=headers)).status_code == 200
    assert (await env.client.get("/private", headers=headers)).status_code == 200  # memoised
    env.clock.advance(60 + 31)  # past exp and any leeway
    r = await env.client.get("/private", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_memoised_token_does_not_vouch_for_a_tampered_copy(env):
    token = (await get_tokens(env.client))["access_token"]
    assert (await me(env, token)).status_code == 200
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}"
    assert (await me(env, forged)).status_code == 401
