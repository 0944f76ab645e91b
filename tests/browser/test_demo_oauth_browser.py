"""Click "Sign in with corp" in the demo, in Debian's chromium, and land signed in.

The provider is the real OpenID Connect provider of the test suite (npm ``oidc-provider``) on
loopback; its login and consent pages are filled in as a person would.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.browser.test_demo_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    _free_port,
    _wait_until_up,
)
from tests.oidc_support import ALICE, POST_CLIENT_ID, OIDCProviderFactory

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_with_provider(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider_factory: OIDCProviderFactory
) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("demo-oauth")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    provider = oidc_provider_factory(redirect_uris=[f"{url}/oauth/corp/callback"])
    client = provider.client(POST_CLIENT_ID)
    env = {
        **os.environ,
        "DEMO_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DEMO_OIDC_ISSUER": provider.issuer,
        "DEMO_OIDC_NAME": "corp",
        "DEMO_OIDC_CLIENT_ID": client.client_id,
        "DEMO_OIDC_CLIENT_SECRET": client.client_secret,
        "DEMO_PUBLIC_URL": url,
    }
    log = workdir / "uvicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.demo.app:app", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(process, url + "/", log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_sign_in_with_a_provider_from_the_demo(demo_with_provider: str, browser: Browser) -> None:
    context = browser.new_context(base_url=demo_with_provider)
    page = context.new_page()
    try:
        page.goto("/")
        expect(page.locator("#status")).to_have_text("Signed out")
        page.get_by_role("link", name="Sign in with corp").click()
        # The provider's own pages: login, then consent.
        page.get_by_label("Login").fill(ALICE.email)
        page.get_by_label("Password").fill(ALICE.password)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Allow").click()
        # Back in the demo, signed in by the provider.
        page.wait_for_url(f"{demo_with_provider}/")
        expect(page.locator("#status")).to_contain_text("Signed in as")
        expect(page.locator("#me-output")).to_contain_text(ALICE.email)
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["session_id"]["httpOnly"] is True
        assert "oauth_state" not in cookies  # cleared by the callback
    finally:
        context.close()


def test_the_demo_without_providers_shows_no_provider_links(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEMO_")},
        "DEMO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
    }
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.demo.app:app", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(process, f"http://127.0.0.1:{port}/", log)
            answer = httpx.get(f"http://127.0.0.1:{port}/api/providers", timeout=5)
            assert answer.json() == {"providers": []}
        finally:
            process.terminate()
            process.wait(timeout=10)
