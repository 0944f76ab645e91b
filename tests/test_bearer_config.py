"""BearerTransport options: validation at construction, and EdDSA/ES256 keys with a JWKS."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from crudauth import BearerTransport, ConfigurationError, CookieConfig
from tests.bearer_support import (
    assert_invalid_token,
    b64,
    bearer,
    claims_of,
    get_tokens,
    header_of,
    hs256,
    sign_up,
)

BAD_OPTIONS: list[dict[str, Any]] = [
    {"access_ttl": 0},
    {"access_ttl": -5},
    {"access_ttl": 2 * 86400},
    {"access_ttl": True},
    {"refresh_ttl_days": 0},
    {"refresh_idle_days": 0},
    {"refresh": "header"},
    {"default_scopes": ["admin"], "grantable_scopes": ["read"]},
    {"default_scopes": "read write"},
    {"grantable_scopes": ["has space"]},
    {"grantable_scopes": [""]},
    {"refresh_cookie_name": ""},
    {"refresh_cookie_name": "bad;name"},
    {"refresh_cookie_path": "relative"},
    {"refresh_cookie_path": "/a;b"},
    {"cookies": {"secure": False}},
    {"issuer": ""},
    {"audience": "  "},
    {"reuse_grace_seconds": -1},
    {"reuse_grace_seconds": 3600},
    {"leeway_seconds": 31},
    {"leeway_seconds": -1},
    {"algorithm": "none"},
    {"algorithm": "RS256"},
    {"algorithm": "HS512"},
    {"algorithm": "EdDSA"},
    {"algorithm": "HS256", "signing_key": b"x" * 32},
    {"algorithm": "EdDSA", "signing_key": "not a pem"},
    {"algorithm": "EdDSA", "signing_key": ec.generate_private_key(ec.SECP256R1())},
    {"algorithm": "ES256", "signing_key": ed25519.Ed25519PrivateKey.generate()},
    {"algorithm": "ES256", "signing_key": ec.generate_private_key(ec.SECP384R1())},
    {
        "algorithm": "ES256",
        "signing_key": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    },
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=range(len(BAD_OPTIONS)))
def test_bad_options_fail_at_construction(options):
    with pytest.raises(ConfigurationError):
        BearerTransport(**options)


def test_configuration_errors_are_value_errors():
    with pytest.raises(ValueError):
        BearerTransport(refresh="both")  # type: ignore[arg-type]


def test_grantable_defaults_to_default_scopes():
    transport = BearerTransport(default_scopes=["read"])
    assert transport.grantable_scopes == {"read"}
    assert transport.clamp_scopes(None) == {"read"}
    assert transport.clamp_scopes(["read", "write"]) == {"read"}


def test_a_short_absolute_lifetime_caps_the_idle_window():
    transport = BearerTransport(refresh_ttl_days=7)
    assert transport.refresh_idle == transport.refresh_ttl == 7 * 86400


async def test_samesite_none_is_refused_for_the_refresh_cookie(make_env):
    with pytest.raises(ConfigurationError):
        await make_env(transports=[BearerTransport()], cookies=CookieConfig(samesite="none"))
    with pytest.raises(ConfigurationError):
        await make_env(
            transports=[BearerTransport(refresh_cookie_name="__Host-refresh")],
            cookies=CookieConfig(secure=False),
        )


async def test_hs256_serves_no_jwks(make_env):
    env = await make_env(transports=[BearerTransport()])
    assert (await env.client.get("/.well-known/jwks.json")).status_code == 404


def pem(private: Any) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(private: Any) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


KEYS = {
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
}


@pytest.mark.parametrize("algorithm", sorted(KEYS))
async def test_asymmetric_tokens_verify_against_the_published_jwks(make_env, algorithm):
    private = KEYS[algorithm]()
    transport = BearerTransport(refresh="body", algorithm=algorithm, signing_key=pem(private))
    env = await make_env(transports=[transport])
    await sign_up(env.client)
    tokens = await get_tokens(env.client)
    access = tokens["access_token"]
    assert header_of(access)["alg"] == algorithm
    assert (await env.client.get("/me", headers=bearer(access))).status_code == 200

    r = await env.client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    assert "no-store" not in r.headers.get("cache-control", "")
    (jwk,) = r.json()["keys"]
    assert jwk["kid"] == header_of(access)["kid"]
    assert {"d"}.isdisjoint(jwk)  # never the private part
    # Any verifier can check our tokens with the JWKS alone (clock aside: iat is in 2027).
    key = jwt.PyJWK(jwk)
    claims = jwt.decode(
        access,
        key,
        algorithms=[algorithm],
        audience="crudauth",
        issuer="crudauth",
        options={"verify_iat": False, "verify_nbf": False, "verify_exp": False},
    )
    assert claims["sub"] == "1"
    # Refresh tokens stay HMAC under a secret key of their own.
    assert header_of(tokens["refresh_token"])["alg"] == "HS256"
    r = await env.client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200


async def test_hs256_made_with_the_public_key_is_refused(make_env):
    private = ed25519.Ed25519PrivateKey.generate()
    transport = BearerTransport(refresh="body", algorithm="EdDSA", signing_key=private)
    env = await make_env(transports=[transport])
    await sign_up(env.client)
    access = (await get_tokens(env.client))["access_token"]
    header = {**header_of(access), "alg": "HS256"}
    jwk_text = (await env.client.get("/.well-known/jwks.json")).json()["keys"][0]["x"]
    for secret in (public_pem(private), jwk_text.encode(), b64(public_pem(private)).encode()):
        forged = hs256(header, claims_of(access), secret)
        assert_invalid_token(await env.client.get("/me", headers=bearer(forged)))


async def test_a_retired_signing_key_still_verifies_while_listed(make_env):
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    env = await make_env(transports=[BearerTransport(algorithm="EdDSA", signing_key=old)])
    await sign_up(env.client)
    access = (await get_tokens(env.client))["access_token"]

    from tests.bearer_support import rebuild

    rotated = BearerTransport(
        algorithm="EdDSA", signing_key=new, verification_keys=[public_pem(old)]
    )
    async with rebuild(env, transports=[rotated]) as client:
        assert (await client.get("/me", headers=bearer(access))).status_code == 200
        assert len((await client.get("/.well-known/jwks.json")).json()["keys"]) == 2
    async with rebuild(
        env, transports=[BearerTransport(algorithm="EdDSA", signing_key=new)]
    ) as client:
        assert_invalid_token(await client.get("/me", headers=bearer(access)))
