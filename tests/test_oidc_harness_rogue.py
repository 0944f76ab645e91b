"""The rogue provider is honest by default and each tampering mode lies exactly as it claims.

Driven with Authlib's httpx client and checked with joserfc, not through crudauth.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.errors import ClaimError, JoseError
from joserfc.jwk import KeySet

from tests.apps.rogue_oidc import (
    ATTACKER_ISSUER,
    OTHER_AUDIENCE,
    TAMPER_MODES,
    RogueOIDC,
    Tamper,
    half_hash,
)
from tests.oidc_support import callback_params

ROGUE_CALLBACK = "http://testserver/oauth/rogue/callback"


@dataclass
class RogueRun:
    """What one sign-in at the rogue provider handed the client."""

    callback: str
    nonce: str
    token: dict[str, Any]
    id_token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    userinfo: dict[str, Any]


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JWT's header and claims, read without checking anything."""
    header, claims, _ = token.split(".")
    return tuple(  # type: ignore[return-value]
        json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        for part in (header, claims)
    )


async def rogue_sign_in(rogue: RogueOIDC) -> RogueRun:
    nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    async with AsyncOAuth2Client(
        rogue.client_id,
        rogue.client_secret,
        scope="openid email profile",
        redirect_uri=ROGUE_CALLBACK,
        code_challenge_method="S256",
        timeout=10,
    ) as client:
        url, state = client.create_authorization_url(
            f"{rogue.base_url}/authorize", code_verifier=verifier, nonce=nonce
        )
        async with httpx.AsyncClient() as browser:
            callback = (await browser.get(url)).headers["location"]
        assert callback_params(callback)["state"] == state
        token = await client.fetch_token(
            f"{rogue.base_url}/token", authorization_response=callback, code_verifier=verifier
        )
        userinfo = (await client.get(f"{rogue.base_url}/userinfo")).json()
    header, claims = segments(token["id_token"])
    return RogueRun(callback, nonce, dict(token), token["id_token"], header, claims, userinfo)


async def rogue_keys(rogue: RogueOIDC) -> KeySet:
    async with httpx.AsyncClient() as client:
        return KeySet.import_key_set((await client.get(f"{rogue.base_url}/jwks")).json())


def honest_claims(
    rogue: RogueOIDC, run: RogueRun, *, skip: str | None = None
) -> jwt.JWTClaimsRegistry:
    """Every check a relying party makes on the ID token's claims, less `skip`."""
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": rogue.base_url},
        "aud": {"essential": True, "value": rogue.client_id},
        "nonce": {"essential": True, "value": run.nonce},
        "at_hash": {"essential": True, "value": half_hash(run.token["access_token"])},
        "sub": {"essential": True, "value": run.userinfo["sub"]},
        "exp": {"essential": True},
        "iat": {"essential": True},
    }
    options.pop(skip or "", None)
    return jwt.JWTClaimsRegistry(leeway=0, **options)


async def test_the_honest_rogue_issues_a_token_that_passes_every_check(
    rogue_oidc: RogueOIDC,
) -> None:
    async with httpx.AsyncClient() as client:
        meta = (await client.get(f"{rogue_oidc.base_url}/.well-known/openid-configuration")).json()
    assert meta["issuer"] == rogue_oidc.base_url
    assert meta["authorization_response_iss_parameter_supported"] is True
    run = await rogue_sign_in(rogue_oidc)
    assert callback_params(run.callback)["iss"] == rogue_oidc.base_url
    token = jwt.decode(run.id_token, await rogue_keys(rogue_oidc), algorithms=["RS256"])
    honest_claims(rogue_oidc, run).validate(token.claims)
    assert token.claims["email_verified"] is True
    assert run.userinfo["sub"] == token.claims["sub"] == rogue_oidc.account.sub
    assert rogue_oidc.id_tokens == [run.id_token]
    assert rogue_oidc.authorize_requests[-1]["nonce"] == run.nonce


@pytest.mark.parametrize(
    ("mode", "claim"),
    [
        ("wrong_iss", "iss"),
        ("wrong_aud", "aud"),
        ("expired", "exp"),
        ("iat_future", "iat"),
        ("nonce_missing", "nonce"),
        ("nonce_mismatch", "nonce"),
        ("wrong_at_hash", "at_hash"),
    ],
)
async def test_a_claim_tampering_mode_breaks_only_that_claim(
    rogue_oidc: RogueOIDC, mode: Tamper, claim: str
) -> None:
    rogue_oidc.mode = mode
    run = await rogue_sign_in(rogue_oidc)
    token = jwt.decode(run.id_token, await rogue_keys(rogue_oidc), algorithms=["RS256"])
    with pytest.raises(ClaimError) as refused:
        honest_claims(rogue_oidc, run).validate(token.claims)
    assert refused.value.claim == claim
    honest = {k: v for k, v in token.claims.items() if k != claim}
    honest_claims(rogue_oidc, run, skip=claim).validate(honest)  # nothing else is off


async def test_several_audiences_come_without_or_with_a_wrong_azp(rogue_oidc: RogueOIDC) -> None:
    rogue_oidc.mode = "multi_aud_no_azp"
    claims = (await rogue_sign_in(rogue_oidc)).claims
    assert claims["aud"] == [rogue_oidc.client_id, OTHER_AUDIENCE] and "azp" not in claims
    rogue_oidc.mode = "multi_aud_wrong_azp"
    claims = (await rogue_sign_in(rogue_oidc)).claims
    assert claims["aud"] == [rogue_oidc.client_id, OTHER_AUDIENCE]
    assert claims["azp"] == OTHER_AUDIENCE


async def test_signature_forgeries_do_not_verify_against_the_jwks(rogue_oidc: RogueOIDC) -> None:
    keys = await rogue_keys(rogue_oidc)
    published = {k.kid for k in keys}

    rogue_oidc.mode = "alg_none"
    run = await rogue_sign_in(rogue_oidc)
    assert run.header["alg"] == "none" and run.id_token.endswith(".")
    with pytest.raises(JoseError):
        jwt.decode(run.id_token, keys)

    rogue_oidc.mode = "unknown_kid"
    run = await rogue_sign_in(rogue_oidc)
    assert run.header["alg"] == "RS256" and run.header["kid"] not in published
    with pytest.raises(JoseError):
        jwt.decode(run.id_token, keys, algorithms=["RS256"])

    rogue_oidc.mode = "wrong_key_same_kid"
    run = await rogue_sign_in(rogue_oidc)
    assert run.header["kid"] in published
    with pytest.raises(JoseError):
        jwt.decode(run.id_token, keys, algorithms=["RS256"])

    rogue_oidc.mode = "hs256_public_key"
    run = await rogue_sign_in(rogue_oidc)
    assert (run.header["alg"], run.header["kid"]) == ("HS256", rogue_oidc.signing_key.kid)
    signing_input, _, signature = run.id_token.rpartition(".")
    pem = rogue_oidc.signing_key.as_pem(private=False)
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == signature
    with pytest.raises(JoseError):
        jwt.decode(run.id_token, keys, algorithms=["RS256"])


async def test_profile_lies_unverified_email_and_a_userinfo_of_someone_else(
    rogue_oidc: RogueOIDC,
) -> None:
    rogue_oidc.mode = "email_unverified"
    run = await rogue_sign_in(rogue_oidc)
    assert run.claims["email_verified"] is False and run.userinfo["email_verified"] is False
    rogue_oidc.mode = "userinfo_sub_mismatch"
    run = await rogue_sign_in(rogue_oidc)
    assert run.claims["sub"] == rogue_oidc.account.sub != run.userinfo["sub"]


async def test_discovery_and_jwks_faults(rogue_oidc: RogueOIDC) -> None:
    discovery = f"{rogue_oidc.base_url}/.well-known/openid-configuration"
    rogue_oidc.mode = "discovery_issuer_mismatch"
    async with httpx.AsyncClient() as client:
        assert (await client.get(discovery)).json()["issuer"] == ATTACKER_ISSUER
    run = await rogue_sign_in(rogue_oidc)
    assert run.claims["iss"] == callback_params(run.callback)["iss"] == ATTACKER_ISSUER
    rogue_oidc.mode = "jwks_down"
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{rogue_oidc.base_url}/jwks")).status_code == 500


async def test_token_endpoint_faults(rogue_oidc: RogueOIDC) -> None:
    rogue_oidc.mode = "token_500"
    with pytest.raises(httpx.HTTPStatusError):
        await rogue_sign_in(rogue_oidc)
    rogue_oidc.mode = "token_malformed_json"
    with pytest.raises(ValueError, match="not a JSON object"):
        await rogue_sign_in(rogue_oidc)
    rogue_oidc.mode, rogue_oidc.slow_seconds = "token_slow", 0.3
    started = time.monotonic()
    await rogue_sign_in(rogue_oidc)
    assert time.monotonic() - started >= 0.3


async def test_the_rogue_checks_pkce_and_client_credentials_like_a_real_provider(
    rogue_oidc: RogueOIDC,
) -> None:
    base = rogue_oidc.base_url
    async with (
        AsyncOAuth2Client(
            rogue_oidc.client_id,
            rogue_oidc.client_secret,
            scope="openid",
            redirect_uri=ROGUE_CALLBACK,
            code_challenge_method="S256",
        ) as client,
        httpx.AsyncClient() as browser,
    ):
        url, _ = client.create_authorization_url(f"{base}/authorize", nonce="n")  # no PKCE
        assert (
            callback_params((await browser.get(url)).headers["location"])["error"]
            == "invalid_request"
        )
        for verifier in (None, secrets.token_urlsafe(48)):  # missing, then wrong
            url, _ = client.create_authorization_url(
                f"{base}/authorize", code_verifier=secrets.token_urlsafe(48)
            )
            callback = (await browser.get(url)).headers["location"]
            extra = {"code_verifier": verifier} if verifier else {}
            with pytest.raises(OAuthError, match="invalid_grant"):
                await client.fetch_token(f"{base}/token", authorization_response=callback, **extra)
    async with AsyncOAuth2Client(
        rogue_oidc.client_id, "wrong-secret", redirect_uri=ROGUE_CALLBACK
    ) as intruder:
        with pytest.raises(OAuthError, match="invalid_client"):
            await intruder.fetch_token(
                f"{base}/token", code="any", code_verifier=secrets.token_urlsafe(48)
            )


async def test_authorize_iss_can_be_left_out_or_wrong(rogue_oidc: RogueOIDC) -> None:
    rogue_oidc.authorize_iss = "omit"
    assert "iss" not in callback_params((await rogue_sign_in(rogue_oidc)).callback)
    rogue_oidc.authorize_iss = "wrong"
    run = await rogue_sign_in(rogue_oidc)
    assert callback_params(run.callback)["iss"] == ATTACKER_ISSUER != run.claims["iss"]


async def test_a_rotated_key_signs_under_a_new_kid_published_in_the_jwks(
    rogue_oidc: RogueOIDC,
) -> None:
    cached = await rogue_keys(rogue_oidc)
    new_key = rogue_oidc.rotate_key()
    run = await rogue_sign_in(rogue_oidc)
    assert run.header["kid"] == new_key.kid not in {k.kid for k in cached}
    with pytest.raises(JoseError):  # the cached JWKS cannot verify it...
        jwt.decode(run.id_token, cached, algorithms=["RS256"])
    refreshed = await rogue_keys(rogue_oidc)  # ...a refetched one can, and keeps the old key
    assert {k.kid for k in refreshed} == {k.kid for k in cached} | {new_key.kid}
    jwt.decode(run.id_token, refreshed, algorithms=["RS256"])


def test_every_tampering_mode_is_exercised_here() -> None:
    source = Path(__file__).read_text()
    assert [m for m in TAMPER_MODES if m != "honest" and f'"{m}"' not in source] == []
