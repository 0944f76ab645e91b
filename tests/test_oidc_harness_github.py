"""The GitHub stub speaks GitHub's OAuth shapes and its switches break what they say.

Driven with Authlib's httpx client, not through crudauth.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

from tests.apps.github_stub import GitHubStub
from tests.oidc_support import callback_params

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
        assert callback_params(callback)["state"] == state
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
        "code": callback_params(callback)["code"],
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
        "code": callback_params(callback)["code"],
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
    params = callback_params(callback)
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
