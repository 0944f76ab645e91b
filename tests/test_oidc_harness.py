"""The OAuth test harness works: each server behaves as the tests built on it assume.

Driven with Authlib's httpx client and joserfc directly, not through crudauth, so a failure here
points at the harness and not at the library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.errors import ClaimError, JoseError
from joserfc.jwk import KeySet

from tests.apps.github_stub import GitHubStub
from tests.apps.rogue_oidc import (
    ATTACKER_ISSUER,
    OTHER_AUDIENCE,
    TAMPER_MODES,
    RogueOIDC,
    Tamper,
    half_hash,
)
from tests.oidc_support import (
    ALICE,
    BASIC_CLIENT_ID,
    BOB,
    OIDC_DIR,
    POST_CLIENT_ID,
    OIDCProvider,
    ProviderInteractionError,
    complete_login,
)

REDIRECT_URI = "http://testserver/oauth/oidc/callback"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def oidc_client(provider: OIDCProvider, client_id: str) -> AsyncOAuth2Client:
    client = provider.client(client_id)
    return AsyncOAuth2Client(
        client.client_id,
        client.client_secret,
        token_endpoint_auth_method=client.token_endpoint_auth_method,
        scope="openid email profile",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        timeout=10,
    )


async def authorize(
    provider: OIDCProvider, client: AsyncOAuth2Client, **params: Any
) -> tuple[str, str, str, str]:
    """An authorization URL with PKCE and a nonce: (url, state, verifier, nonce)."""
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    endpoint = provider.metadata["authorization_endpoint"]
    url, state = client.create_authorization_url(
        endpoint, code_verifier=verifier, nonce=nonce, **params
    )
    return url, state, verifier, nonce


# --- oidc-provider -------------------------------------------------------------------------


@pytest.mark.parametrize("client_id", [BASIC_CLIENT_ID, POST_CLIENT_ID])
async def test_code_flow_with_pkce_yields_an_id_token_valid_against_the_provider_jwks(
    oidc_provider: OIDCProvider, client_id: str
) -> None:
    meta = oidc_provider.metadata
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    async with oidc_client(oidc_provider, client_id) as client:
        url, state, verifier, nonce = await authorize(oidc_provider, client)
        callback = await complete_login(url, ALICE.email, ALICE.password)
        assert callback.startswith(REDIRECT_URI + "?")
        params = query(callback)
        assert params["state"] == state
        assert params["iss"] == oidc_provider.issuer  # RFC 9207
        token = await client.fetch_token(
            meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
        )
        userinfo = (await client.get(meta["userinfo_endpoint"])).json()
    keys = KeySet.import_key_set(await oidc_provider.jwks())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": oidc_provider.issuer},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True, "value": ALICE.sub},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(id_token.claims)
    assert id_token.header["kid"] in {k.kid for k in keys}
    # at_hash is optional for an ID token from the token endpoint; oidc-provider omits it.
    assert id_token.claims.get("at_hash", at_hash(token["access_token"])) == at_hash(
        token["access_token"]
    )
    assert id_token.claims["email"] == ALICE.email
    assert id_token.claims["email_verified"] is True
    assert userinfo == {
        "sub": ALICE.sub,
        "email": ALICE.email,
        "email_verified": True,
        "name": ALICE.name,
    }


async def test_a_wrong_pkce_verifier_is_refused_by_the_provider(
    oidc_provider: OIDCProvider,
) -> None:
    meta = oidc_provider.metadata
    async with oidc_client(oidc_provider, BASIC_CLIENT_ID) as client:
        url, _, _, _ = await authorize(oidc_provider, client)
        callback = await complete_login(url, ALICE.email, ALICE.password)
        with pytest.raises(OAuthError) as refused:
            await client.fetch_token(
                meta["token_endpoint"],
                authorization_response=callback,
                code_verifier=secrets.token_urlsafe(48),
            )
        assert refused.value.error == "invalid_grant"
        with pytest.raises(OAuthError, match="invalid_grant"):  # and a missing one too
            await client.fetch_token(meta["token_endpoint"], authorization_response=callback)


async def test_an_authorization_request_without_pkce_is_refused(
    oidc_provider: OIDCProvider,
) -> None:
    async with oidc_client(oidc_provider, BASIC_CLIENT_ID) as client:
        endpoint = oidc_provider.metadata["authorization_endpoint"]
        url, state = client.create_authorization_url(endpoint, nonce="n")  # no code_verifier
    callback = await complete_login(url, ALICE.email, ALICE.password)
    params = query(callback)
    assert params["error"] == "invalid_request"
    assert params["state"] == state


async def test_denied_consent_gives_access_denied(oidc_provider: OIDCProvider) -> None:
    async with oidc_client(oidc_provider, BASIC_CLIENT_ID) as client:
        url, state, _, _ = await authorize(oidc_provider, client)
    callback = await complete_login(url, ALICE.email, ALICE.password, consent=False)
    params = query(callback)
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert params["iss"] == oidc_provider.issuer
    assert "code" not in params


async def test_a_wrong_password_stops_at_the_login_form(oidc_provider: OIDCProvider) -> None:
    async with oidc_client(oidc_provider, BASIC_CLIENT_ID) as client:
        url, _, _, _ = await authorize(oidc_provider, client)
    with pytest.raises(ProviderInteractionError, match="Invalid login or password"):
        await complete_login(url, ALICE.email, "not-the-password")


async def test_an_interaction_without_its_cookie_is_an_error_page(
    oidc_provider: OIDCProvider,
) -> None:
    with pytest.raises(ProviderInteractionError, match="provider answered 400"):
        await complete_login(f"{oidc_provider.issuer}/interaction/abc", "x", "y")
    assert '"event":"interaction.error"' in oidc_provider.logs()


async def test_an_unverified_account_signs_in_with_email_verified_false(
    oidc_provider: OIDCProvider,
) -> None:
    meta = oidc_provider.metadata
    async with oidc_client(oidc_provider, POST_CLIENT_ID) as client:
        url, _, verifier, _ = await authorize(oidc_provider, client)
        callback = await complete_login(url, BOB.email, BOB.password)
        token = await client.fetch_token(
            meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
        )
    claims = jwt.decode(token["id_token"], KeySet.import_key_set(await oidc_provider.jwks())).claims
    assert (claims["sub"], claims["email"], claims["email_verified"]) == (BOB.sub, BOB.email, False)


async def test_a_signed_in_browser_skips_the_login_form_but_not_a_new_state(
    oidc_provider: OIDCProvider,
) -> None:
    async with httpx.AsyncClient() as browser, oidc_client(oidc_provider, BASIC_CLIENT_ID) as c:
        first, _, _, _ = await authorize(oidc_provider, c)
        await complete_login(first, ALICE.email, ALICE.password, browser=browser)
        second, state, _, _ = await authorize(oidc_provider, c)
        callback = await complete_login(second, "ignored", "ignored", browser=browser)
    assert query(callback)["state"] == state
    assert "code" in query(callback)


def test_the_provider_exits_when_its_parent_goes(tmp_path: Path) -> None:
    """Stdin closing (the parent died, even by SIGKILL) or the parent pid vanishing ends it."""
    script = str(OIDC_DIR / "provider.mjs")
    parent = subprocess.Popen(["sleep", "60"])
    by_stdin = subprocess.Popen(
        ["node", script],
        cwd=OIDC_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    by_pid = subprocess.Popen(
        ["node", script, "--no-stdin-watch", "--parent-pid", str(parent.pid)],
        cwd=OIDC_DIR,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        for child in (by_stdin, by_pid):
            assert child.stdout is not None
            ready = json.loads(child.stdout.readline())
            assert ready["issuer"] == f"http://127.0.0.1:{ready['port']}"
        assert by_stdin.stdin is not None
        by_stdin.stdin.close()
        parent.kill()
        parent.wait()
        assert by_stdin.wait(timeout=15) == 0
        assert by_pid.wait(timeout=15) == 0
    finally:
        for process in (parent, by_stdin, by_pid):
            if process.poll() is None:
                process.kill()
                process.wait()
            for pipe in (process.stdout,):
                if pipe is not None:
                    pipe.close()


# --- the GitHub stub -----------------------------------------------------------------------

GITHUB_CALLBACK = "http://testserver/oauth/github/callback"


def github_client(stub: GitHubStub, **options: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        stub.client_id,
        stub.client_secret,
        token_endpoint_auth_method=options.pop("auth_method", "client_secret_post"),
        scope=options.pop("scope", "read:user user:email"),
        redirect_uri=GITHUB_CALLBACK,
        code_challenge_method="S256",
        timeout=10,
        **options,
    )


async def github_authorize(stub: GitHubStub, client: AsyncOAuth2Client) -> tuple[str, str, str]:
    """(callback URL, state, verifier) after the stub's authorize step."""
    verifier = secrets.token_urlsafe(48)
    url, state = client.create_authorization_url(stub.authorize_url, code_verifier=verifier)
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302
    return answer.headers["location"], state, verifier


@pytest.mark.parametrize("auth_method", ["client_secret_post", "client_secret_basic"])
async def test_github_flow_gives_the_user_and_their_emails(
    github_stub: GitHubStub, auth_method: str
) -> None:
    async with github_client(github_stub, auth_method=auth_method) as client:
        callback, state, verifier = await github_authorize(github_stub, client)
        assert callback.startswith(GITHUB_CALLBACK + "?")
        assert query(callback)["state"] == state
        assert github_stub.authorize_requests[-1]["state"] == state
        assert github_stub.authorize_requests[-1]["code_challenge_method"] == "S256"
        token = await client.fetch_token(
            github_stub.token_url, authorization_response=callback, code_verifier=verifier
        )
        assert token["access_token"].startswith("gho_")
        assert (token["token_type"], token["scope"]) == ("bearer", "read:user,user:email")
        user = (await client.get(f"{github_stub.api_url}/user")).json()
        emails = (await client.get(f"{github_stub.api_url}/user/emails")).json()
        # The code was single-use.
        with pytest.raises(OAuthError, match="bad_verification_code"):
            await client.fetch_token(
                github_stub.token_url, authorization_response=callback, code_verifier=verifier
            )
    assert (user["id"], user["login"], user["email"]) == (583231, "octocat", "octocat@github.com")
    assert [e for e in emails if e["primary"] and e["verified"]] == [
        {
            "email": "octocat@github.com",
            "primary": True,
            "verified": True,
            "visibility": "public",
        }
    ]
    assert len(emails) == 3 and any(not e["verified"] for e in emails)


async def test_github_answers_form_encoded_unless_json_is_asked_for(
    github_stub: GitHubStub,
) -> None:
    async with github_client(github_stub) as client:
        callback, _, verifier = await github_authorize(github_stub, client)
    form = {
        "client_id": github_stub.client_id,
        "client_secret": github_stub.client_secret,
        "code": query(callback)["code"],
        "redirect_uri": GITHUB_CALLBACK,
        "code_verifier": verifier,
    }
    async with httpx.AsyncClient() as raw:
        answer = await raw.post(github_stub.token_url, data=form)
    assert answer.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert parse_qs(answer.text)["access_token"][0].startswith("gho_")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"client_secret": "wrong"}, "incorrect_client_credentials"),
        ({"redirect_uri": "http://testserver/elsewhere"}, "redirect_uri_mismatch"),
        ({"code_verifier": "x" * 43}, "bad_verification_code"),
        ({"code_verifier": ""}, "bad_verification_code"),
        ({"code": "not-a-code"}, "bad_verification_code"),
    ],
)
async def test_github_refuses_bad_token_requests_with_status_200_and_an_error(
    github_stub: GitHubStub, change: dict[str, str], error: str
) -> None:
    async with github_client(github_stub) as client:
        callback, _, verifier = await github_authorize(github_stub, client)
    form = {
        "client_id": github_stub.client_id,
        "client_secret": github_stub.client_secret,
        "code": query(callback)["code"],
        "redirect_uri": GITHUB_CALLBACK,
        "code_verifier": verifier,
        **change,
    }
    async with httpx.AsyncClient(headers={"Accept": "application/json"}) as raw:
        answer = await raw.post(github_stub.token_url, data=form)
    assert answer.status_code == 200
    assert answer.json()["error"] == error
    assert "access_token" not in answer.json()


async def test_github_denied_authorization_redirects_with_access_denied(
    github_stub: GitHubStub,
) -> None:
    github_stub.deny = True
    async with github_client(github_stub) as client:
        callback, state, _ = await github_authorize(github_stub, client)
    params = query(callback)
    assert (params["error"], params["state"]) == ("access_denied", state)
    assert "code" not in params


async def github_token(stub: GitHubStub, scope: str = "read:user user:email") -> str:
    async with github_client(stub, scope=scope) as client:
        callback, _, verifier = await github_authorize(stub, client)
        token = await client.fetch_token(
            stub.token_url, authorization_response=callback, code_verifier=verifier
        )
    return str(token["access_token"])


async def test_github_switches_break_what_they_say(github_stub: GitHubStub) -> None:
    api = github_stub.api_url
    token = await github_token(github_stub)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        github_stub.server_error = {"user"}
        assert (await client.get(f"{api}/user")).status_code == 500
        github_stub.server_error = set()
        github_stub.malformed_json = {"emails"}
        answer = await client.get(f"{api}/user/emails")
        with pytest.raises(json.JSONDecodeError):
            answer.json()
        github_stub.malformed_json = set()
        github_stub.no_verified_email = True
        assert not any(e["verified"] for e in (await client.get(f"{api}/user/emails")).json())
        assert (await client.get(f"{api}/user")).json()["email"] is None
        github_stub.delay = {"user": 0.3}
        started = time.monotonic()
        assert (await client.get(f"{api}/user")).status_code == 200
        assert time.monotonic() - started >= 0.3
        assert (await client.get(f"{api}/user", headers={"Authorization": "Bearer no"})).json()[
            "message"
        ] == "Bad credentials"
    github_stub.server_error = {"access_token"}
    with pytest.raises(httpx.HTTPStatusError):
        await github_token(github_stub)


async def test_github_hides_emails_without_the_email_scope_and_signs_in_whoever_is_set(
    github_stub: GitHubStub,
) -> None:
    github_stub.signed_in_as = "mona"
    token = await github_token(github_stub, scope="read:user")
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"}) as client:
        assert (await client.get(f"{github_stub.api_url}/user")).json()["login"] == "mona"
        assert (await client.get(f"{github_stub.api_url}/user/emails")).status_code == 404
    token = await github_token(github_stub)
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"}) as client:
        emails = (await client.get(f"{github_stub.api_url}/user/emails")).json()
    # Mona's primary address is unverified: a verified primary does not exist.
    assert not [e for e in emails if e["primary"] and e["verified"]]


# --- the rogue provider --------------------------------------------------------------------

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
        assert query(callback)["state"] == state
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
    assert query(run.callback)["iss"] == rogue_oidc.base_url
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
    assert run.claims["iss"] == query(run.callback)["iss"] == ATTACKER_ISSUER
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
        assert query((await browser.get(url)).headers["location"])["error"] == "invalid_request"
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
    assert "iss" not in query((await rogue_sign_in(rogue_oidc)).callback)
    rogue_oidc.authorize_iss = "wrong"
    run = await rogue_sign_in(rogue_oidc)
    assert query(run.callback)["iss"] == ATTACKER_ISSUER != run.claims["iss"]


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
