"""The OAuth example program (examples/docs/oauth.py) against the real OpenID Connect provider."""

from __future__ import annotations

import importlib
import secrets
import sys
from pathlib import Path

import httpx
import pytest

from tests.oidc_support import ALICE, POST_CLIENT_ID, OIDCProvider, complete_login

PUBLIC_URL = "http://testserver"


async def test_the_oauth_example_signs_in_with_the_provider(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, oidc_provider: OIDCProvider
) -> None:
    client = oidc_provider.client(POST_CLIENT_ID)
    for key, value in {
        "SECRET_KEY": secrets.token_urlsafe(36),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        "PUBLIC_URL": PUBLIC_URL,
        "OIDC_ISSUER": oidc_provider.issuer,
        "OIDC_CLIENT_ID": client.client_id,
        "OIDC_CLIENT_SECRET": client.client_secret,
    }.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("examples.docs.oauth", None)
    example = importlib.import_module("examples.docs.oauth")
    del sys.modules["examples.docs.oauth"]
    transport = httpx.ASGITransport(app=example.app)
    async with (
        example.app.router.lifespan_context(example.app),
        httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as browser,
    ):
        home = await browser.get("/")
        assert 'href="/oauth/corp/authorize?redirect_to=/">Sign in with corp</a>' in home.text
        start = await browser.get("/oauth/corp/authorize", params={"redirect_to": "/"})
        callback = await complete_login(start.headers["location"], ALICE.email, ALICE.password)
        answer = await browser.get(callback)
        assert answer.status_code == 307 and answer.headers["location"] == "/"
        assert "Signed in as alice" in (await browser.get("/")).text
        identities = (await browser.get("/oauth/identities")).json()
        assert [i["provider"] for i in identities] == ["corp"]
        refused = await browser.get("/oauth/corp/callback", params={"state": "x", "code": "y"})
        assert refused.headers["location"] == "/?error=invalid_state"
    assert example.engine.pool.checkedin() == 0
