"""Drive the demo app in headless Chromium as a person would.

The demo runs under a real uvicorn process on a free loopback port, with its own SQLite file,
and Chromium is Debian's (Playwright never downloads a browser here). The test stays sync and in
its own module so that Playwright's event loop never meets pytest-asyncio's.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_SECONDS = 30

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo exited early:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the demo did not start within {STARTUP_SECONDS}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running demo server; always stopped at the end, whatever happened."""
    workdir = tmp_path_factory.mktemp("demo")
    port = _free_port()
    env = {
        **os.environ,
        "DEMO_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
    }
    log = workdir / "uvicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.demo.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
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


def _cookies(page: Page) -> dict[str, dict[str, object]]:
    return {c["name"]: dict(c) for c in page.context.cookies()}


def _sign_in(page: Page, identifier: str, password: str, *, remember: bool = False) -> None:
    form = page.locator("#login-form")
    form.get_by_label("Email or username").fill(identifier)
    form.get_by_label("Password").fill(password)
    form.get_by_label("Remember me").set_checked(remember)
    form.get_by_role("button", name="Sign in").click()


def _fetch_status(page: Page, path: str) -> int:
    status: int = page.evaluate("async (path) => (await fetch(path)).status", path)
    return status


def test_register_sign_in_use_and_sign_out(demo_url: str, browser: Browser, tmp_path: Path) -> None:
    context = browser.new_context(base_url=demo_url)
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto("/")
        status = page.locator("#status")
        expect(status).to_have_text("Signed out")

        # Register.
        form = page.locator("#register-form")
        form.get_by_label("Email").fill("alice@example.com")
        form.get_by_label("Username").fill("alice")
        form.get_by_label("Password").fill("correct horse battery")
        form.get_by_role("button", name="Register").click()
        expect(page.locator("#message")).to_contain_text("Registered alice")

        # Sign in (by email, in another case) and see /me on the page.
        _sign_in(page, "Alice@Example.com", "correct horse battery")
        expect(status).to_have_text("Signed in as alice")
        expect(page.locator("#me-output")).to_contain_text('"via": "session"')
        expect(page.locator("#me-output")).to_contain_text('"email": "alice@example.com"')

        # The session cookie is HttpOnly; the CSRF cookie is readable by the page's script.
        cookies = _cookies(page)
        session, csrf = cookies["session_id"], cookies["csrf_token"]
        assert session["httpOnly"] is True
        assert csrf["httpOnly"] is False
        assert session["sameSite"] == csrf["sameSite"] == "Lax"
        assert session["path"] == csrf["path"] == "/"
        assert session["expires"] == -1  # no remember-me: ends with the browser session
        visible = page.evaluate("document.cookie")
        assert f"csrf_token={csrf['value']}" in visible
        assert "session_id" not in visible

        # The protected unsafe action works because the script sends X-CSRF-Token.
        with page.expect_request(
            lambda r: r.url.endswith("/api/notes") and r.method == "POST"
        ) as sent:
            page.locator("#note-form").get_by_label("New note").fill("buy milk")
            page.get_by_role("button", name="Add note").click()
        assert sent.value.headers.get("x-csrf-token") == csrf["value"]
        expect(page.locator("#notes li")).to_have_text(["buy milk"])

        # Without the header the same call is refused.
        page.get_by_role("button", name="Try it without the CSRF header").click()
        expect(page.locator("#message")).to_contain_text("403")
        expect(page.locator("#message")).to_contain_text("Missing CSRF token")
        expect(page.locator("#notes li")).to_have_count(1)

        page.screenshot(path=str(tmp_path / "signed-in.png"), full_page=True)
        assert (tmp_path / "signed-in.png").stat().st_size > 0

        # Sign out: the page shows it, the cookies are gone, and /me answers 401.
        page.get_by_role("button", name="Sign out").click()
        expect(status).to_have_text("Signed out")
        expect(page.locator("#message")).to_have_text("You are signed out.")
        assert "session_id" not in _cookies(page)
        assert "csrf_token" not in _cookies(page)
        assert _fetch_status(page, "/me") == 401
        assert _fetch_status(page, "/api/notes") == 401

        # Remember me: the cookies now outlive the browser session (30 days).
        _sign_in(page, "alice", "correct horse battery", remember=True)
        expect(status).to_have_text("Signed in as alice")
        expect(page.locator("#notes li")).to_have_text(["buy milk"])
        session = _cookies(page)["session_id"]
        expires = float(session["expires"])  # type: ignore[arg-type]
        assert 29 * 86400 < expires - time.time() <= 30 * 86400 + 60
        page.get_by_role("button", name="Sign out").click()
        expect(status).to_have_text("Signed out")
        assert _fetch_status(page, "/me") == 401

        # A wrong password leaves the person signed out with the generic message.
        _sign_in(page, "alice", "not the password")
        expect(page.locator("#message")).to_contain_text("Incorrect username or password")
        expect(status).to_have_text("Signed out")

        # The only console errors expected are the refused requests we made on purpose.
        unexpected = [e for e in console_errors if "status of 40" not in e]
        assert unexpected == []
    finally:
        context.close()


def test_two_factor_settings_enrol_then_sign_in_with_the_second_step(
    demo_url: str, browser: Browser
) -> None:
    context = browser.new_context(base_url=demo_url)
    page = context.new_page()
    try:
        page.goto("/")
        status = page.locator("#status")
        form = page.locator("#register-form")
        form.get_by_label("Email").fill("bob@example.com")
        form.get_by_label("Username").fill("bob")
        form.get_by_label("Password").fill("bob's long passphrase")
        form.get_by_role("button", name="Register").click()
        expect(page.locator("#message")).to_contain_text("Registered bob")
        _sign_in(page, "bob", "bob's long passphrase")
        expect(status).to_have_text("Signed in as bob")

        # The settings section: set up, read the secret, confirm with a code computed here.
        settings = page.locator("#two-factor")
        expect(settings.locator("#mfa-status")).to_have_text("Two-factor sign-in is off.")
        settings.get_by_label("Password").fill("bob's long passphrase")
        settings.get_by_role("button", name="Set up two-factor sign-in").click()
        secret = settings.locator("#mfa-secret")
        expect(secret).to_have_text(re.compile(r"^[A-Z2-7]{32}$"))
        expect(settings.locator("#mfa-uri")).to_contain_text("otpauth://totp/crudauth%20demo:")
        totp = pyotp.TOTP(secret.inner_text())
        # The previous step's code (one step of drift is accepted): the current one stays
        # unspent for the sign-in below, which a code is good for only once.
        settings.get_by_label("Code from the app").fill(totp.at(time.time() - 30))
        settings.get_by_role("button", name="Turn on two-factor sign-in").click()
        expect(settings.locator("#recovery-codes li")).to_have_count(10)
        expect(settings.locator("#mfa-status")).to_contain_text("Two-factor sign-in is on")

        page.get_by_role("button", name="Sign out").click()
        expect(status).to_have_text("Signed out")

        # The password alone stops at the second step: nothing signed in yet.
        _sign_in(page, "bob", "bob's long passphrase")
        second = page.locator("#mfa-form")
        expect(second).to_be_visible()
        expect(status).to_have_text("Signed out")
        assert "session_id" not in _cookies(page)
        binding = _cookies(page)["crudauth_mfa"]
        assert binding["httpOnly"] is True
        assert _fetch_status(page, "/me") == 401

        second.get_by_label("Code").fill(totp.now())
        second.get_by_role("button", name="Verify").click()
        expect(status).to_have_text("Signed in as bob")
        assert "crudauth_mfa" not in _cookies(page)
        assert _fetch_status(page, "/me") == 200
    finally:
        context.close()
