"""Every hook the library fires, and every log record it writes, over one full account flow:
no password, password hash, token, cookie value or raw control character ever reaches them.

The flow: register, verify the address, wrong passwords (one identifier forging a log line)
up to a lock, sign in (session and bearer), sudo, email change, password change, a refresh
token replayed, a password reset, logout. Each hook records what it is given; the log is
captured on ``crudauth`` at DEBUG. Typed identifiers reach hooks escaped (printable, one line).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crudauth import AuthHooks, BearerTransport, SessionTransport, SudoConfig
from crudauth.hooks import HookContext
from crudauth.identity.identifiers import escape_identifier
from tests.conftest import User
from tests.email_support import NEW_PASSWORD, PASSWORD, Outbox, email_config, signup

THIRD_PASSWORD = "the third passphrase of alice"
GUESS = "hunter2 is the guess"
FORGED = "evil\r\nINFO admin logged in"
#: Hooks this module does not drive: OAuth is not implemented; the MFA hooks have their own
#: test (tests/test_mfa_account.py).
NOT_FIRED = {
    "on_oauth_login",
    "on_after_mfa_enabled",
    "on_after_mfa_disabled",
    "on_after_recovery_code_used",
}
EVERY_HOOK = {f.name for f in dataclasses.fields(AuthHooks)} - NOT_FIRED

Call = tuple[str, tuple[Any, ...], dict[str, Any]]


def strings(value: Any) -> Iterator[str]:
    """Every string inside what a hook was given (the request object aside)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, HookContext):
        for field in dataclasses.fields(value):
            if field.name != "request":
                yield from strings(getattr(value, field.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from strings(item)
    elif value is not None and not isinstance(value, (int, float, bool)):
        yield repr(value)  # the request, the database session: their repr only


class Secrets:
    """What must never be handed to a hook or written to a log."""

    def __init__(self) -> None:
        self.values: set[str] = {PASSWORD, NEW_PASSWORD, THIRD_PASSWORD, GUESS}

    def add(self, *values: Any) -> None:
        self.values.update(v for v in values if isinstance(v, str) and len(v) >= 8)

    def jar(self, client: httpx.AsyncClient) -> None:
        self.add(*(cookie.value for cookie in client.cookies.jar))

    async def hash_of(self, env: Any) -> None:
        async with env.sessionmaker() as db:
            user = (await db.execute(select(User).where(User.username == "alice"))).scalar_one()
        self.add(user.hashed_password)

    def found_in(self, text: str) -> list[str]:
        return [secret for secret in self.values if secret in text]


def client_at(env: Any, ip: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.app),
        base_url="http://testserver",
        headers={"X-Forwarded-For": ip},
    )


def recording_hooks(calls: list[Call]) -> AuthHooks:
    def recorder(name: str) -> Callable[..., None]:
        def hook(*args: Any, **kwargs: Any) -> None:
            calls.append((name, args, kwargs))
            if name == "on_lockout":  # a failing hook is logged: that record is checked too
                raise RuntimeError("the application's hook failed")

        return hook

    return AuthHooks(**{name: recorder(name) for name in EVERY_HOOK})


async def sign_up_and_guess(
    env: Any, browser: httpx.AsyncClient, outbox: Outbox, secrets: Secrets
) -> None:
    assert (await signup(browser)).status_code in (200, 201, 202)
    await secrets.hash_of(env)
    token = outbox.last_token("verify_email")
    secrets.add(token)
    r = await browser.post("/email/verify-confirm", json={"token": token})
    assert r.status_code == 200, r.text

    for i in range(6):  # five failures, then the forged identifier's own lock
        guesser = client_at(env, f"198.51.100.{i}")
        r = await guesser.post("/login", data={"username": FORGED, "password": GUESS})
        assert r.status_code == (401 if i < 5 else 429)
        await guesser.aclose()
    r = await browser.post("/login", data={"username": "alice", "password": GUESS})
    assert r.status_code == 401


async def browser_flow(
    env: Any, browser: httpx.AsyncClient, outbox: Outbox, secrets: Secrets
) -> None:
    """Sign in, sudo, change the email address, change the password."""
    r = await browser.post("/login", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200, r.text
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    secrets.jar(browser)
    r = await browser.post("/sudo", json={"password": PASSWORD}, headers=csrf)
    assert r.status_code == 200, r.text
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    secrets.jar(browser)

    r = await browser.post(
        "/email/change-request",
        json={"new_email": "alice.new@example.com", "password": PASSWORD},
        headers=csrf,
    )
    assert r.status_code == 200, r.text
    secrets.add(outbox.last_token("change_email"))
    r = await browser.post(
        "/email/change-confirm", json={"token": outbox.last_token("change_email")}, headers=csrf
    )
    assert r.status_code == 200, r.text

    r = await browser.post(
        "/change-password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=csrf,
    )
    assert r.status_code == 200, r.text
    await secrets.hash_of(env)
    secrets.jar(browser)


async def bearer_flow(env: Any, secrets: Secrets) -> None:
    """Tokens, a refresh, and the spent refresh token replayed."""
    api = client_at(env, "192.0.2.2")
    r = await api.post("/token", data={"username": "alice", "password": NEW_PASSWORD})
    assert r.status_code == 200, r.text
    tokens = r.json()
    secrets.add(tokens["access_token"], tokens["refresh_token"])
    r = await api.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    secrets.add(r.json()["access_token"], r.json()["refresh_token"])
    r = await api.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401  # a replay: the family is revoked and the hook told
    await api.aclose()


async def reset_and_log_out(
    env: Any, browser: httpx.AsyncClient, outbox: Outbox, secrets: Secrets
) -> None:
    r = await browser.post("/password/reset-request", json={"email": "alice.new@example.com"})
    assert r.status_code == 200, r.text
    secrets.add(outbox.last_token("reset_password"))
    r = await browser.post(
        "/password/reset-confirm",
        json={"token": outbox.last_token("reset_password"), "new_password": THIRD_PASSWORD},
    )
    assert r.status_code == 200, r.text
    await secrets.hash_of(env)

    browser.cookies.clear()
    r = await browser.post("/login", data={"username": "alice", "password": THIRD_PASSWORD})
    assert r.status_code == 200, r.text
    secrets.jar(browser)
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    assert (await browser.post("/logout", headers=csrf)).status_code == 200


async def full_flow(env: Any, outbox: Outbox, secrets: Secrets) -> None:
    browser = client_at(env, "192.0.2.1")
    try:
        await sign_up_and_guess(env, browser, outbox, secrets)
        await browser_flow(env, browser, outbox, secrets)
        await bearer_flow(env, secrets)
        await reset_and_log_out(env, browser, outbox, secrets)
    finally:
        await browser.aclose()


async def test_no_hook_and_no_log_record_carries_a_secret_or_a_raw_control_character(
    make_env, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="crudauth")
    calls: list[Call] = []
    outbox = Outbox()
    secrets = Secrets()
    env = await make_env(
        transports=[SessionTransport(), BearerTransport(refresh="body")],
        email=email_config(outbox),
        sudo=SudoConfig(),
        hooks=recording_hooks(calls),
        trusted_proxy_hops=1,
        warn_on_memory_backend=True,
    )
    await full_flow(env, outbox, secrets)

    assert {name for name, _, _ in calls} == EVERY_HOOK  # the flow reaches every hook
    for name, args, kwargs in calls:
        for text in strings([args, kwargs]):
            assert not secrets.found_in(text), (name, text)
            assert "\r" not in text and "\n" not in text, (name, text)
    identifiers = [args[0] for name, args, _ in calls if name in ("on_login_failed", "on_lockout")]
    assert "evil\\r\\nINFO admin logged in" in identifiers

    records = [r for r in caplog.records if r.name.startswith("crudauth")]
    assert any(r.name == "crudauth.hooks" for r in records)  # the failing hook was logged
    for record in records:
        text = record.getMessage() + (caplog.handler.format(record) if record.exc_info else "")
        assert not secrets.found_in(text), (record.name, text)
        assert FORGED not in text and "evil\r" not in text


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("alice", "alice"),
        ("José.Núñez@example.com", "José.Núñez@example.com"),
        (FORGED, "evil\\r\\nINFO admin logged in"),
        ("a\\r\\nb", "a\\\\r\\\\nb"),  # a typed backslash cannot pass for an escape
        ("\u202egnp.exe", "\\u202egnp.exe"),  # a bidi override
        ("nul\x00\x1b[31m", "nul\\x00\\x1b[31m"),
        ("line\u2028separator", "line\\u2028separator"),
        ("a" * 320, "a" * 320),
        ("a" * 321, "a" * 320 + "..."),
        ("\n" * 400, "\\n" * 160 + "..."),
    ],
)
def test_a_typed_identifier_is_shown_printable_on_one_line_and_bounded(typed, shown):
    assert escape_identifier(typed) == shown
