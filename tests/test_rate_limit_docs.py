"""The rate-limiting page's example runs as written and is shown verbatim in the docs."""

from __future__ import annotations

import importlib
import logging
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "docs" / "rate_limits.py"
PAGE = ROOT / "docs" / "rate-limiting.md"
PASSWORD = "correct horse battery 9"
WRONG = "not my password at all"
LOCKED = {"detail": "Too many login attempts. Try again later."}
THROTTLED = {"detail": "Too many requests. Try again later."}


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(36))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "1")
    name = "examples.docs.rate_limits"
    sys.modules.pop(name, None)
    module = importlib.import_module(name)
    del sys.modules[name]  # no example (nor its engine) outlives its test
    return module


@asynccontextmanager
async def serve(module: ModuleType) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """Run the lifespan; yield a factory of clients, one cookie jar each."""
    clients: list[httpx.AsyncClient] = []
    transport = httpx.ASGITransport(app=module.app)

    def new_client() -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        return client

    async with module.app.router.lifespan_context(module.app):
        try:
            yield new_client
        finally:
            for client in clients:
                await client.aclose()
    # Its shutdown closed what it opened: a connection left in the pool would outlive the app.
    assert module.engine.pool.checkedin() == 0


def sign_in_form(password: str, name: str = "alice") -> dict[str, str]:
    return {"username": name, "password": password}


def at(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


def test_the_example_is_shown_verbatim_in_the_page() -> None:
    assert EXAMPLE.read_text().strip() in PAGE.read_text()


def test_the_page_names_every_default_limit() -> None:
    from crudauth.ratelimit import DEFAULT_RATE_LIMITS

    page = PAGE.read_text()
    for action in DEFAULT_RATE_LIMITS:
        assert f"`{action}`" in page, action


async def test_the_example_locks_out_guessers_but_not_the_owner(
    example: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(example) as new_client:
        owner, attacker = new_client(), new_client()
        body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
        assert (await owner.post("/register", json=body)).status_code == 200
        r = await owner.post("/login", data=sign_in_form(PASSWORD), headers=at("192.0.2.10"))
        assert r.status_code == 200
        assert "crudauth_device" in owner.cookies

        with caplog.at_level(logging.INFO, logger="app.security"):
            for i in range(5):
                r = await attacker.post(
                    "/login", data=sign_in_form(WRONG), headers=at(f"198.51.100.{i}")
                )
                assert r.status_code == 401
            r = await attacker.post(
                "/login", data=sign_in_form(PASSWORD), headers=at("198.51.100.50")
            )
        assert r.status_code == 429
        assert r.json() == LOCKED
        assert r.headers["retry-after"] == "120"  # lockout_base_seconds=120
        messages = [rec.getMessage() for rec in caplog.records if rec.name == "app.security"]
        assert len(messages) == 6
        assert "sign-in locked for 'alice' from 198.51.100.50, retry in 120s" in messages
        assert not any(WRONG in m or PASSWORD in m for m in messages)

        # The browser that signed in before is exempt from the identifier lock.
        r = await owner.post("/login", data=sign_in_form(PASSWORD), headers=at("192.0.2.10"))
        assert r.status_code == 200, r.text


async def test_the_example_throttles_its_routes(example: ModuleType) -> None:
    async with serve(example) as new_client:
        client = new_client()
        for left in range(9, -1, -1):
            r = await client.get("/search", params={"q": "x"}, headers=at("203.0.113.1"))
            assert r.status_code == 200
            assert r.headers["x-ratelimit-remaining"] == str(left)
            assert r.headers["ratelimit-policy"] == '"search";q=10;w=60'
        r = await client.get("/search", params={"q": "x"}, headers=at("203.0.113.1"))
        assert r.status_code == 429
        assert r.json() == THROTTLED
        assert int(r.headers["retry-after"]) >= 1
        # Another address has its own quota; the route's own 400 still carries it.
        r = await client.get("/search", headers=at("203.0.113.2"))
        assert r.status_code == 400
        assert r.headers["x-ratelimit-remaining"] == "9"

        assert (await client.get("/reports/export")).status_code == 401
        body = {"username": "bob", "email": "bob@example.com", "password": PASSWORD}
        assert (await client.post("/register", json=body)).status_code == 200
        r = await client.post("/login", data=sign_in_form(PASSWORD, "bob"))
        assert r.status_code == 200
        for left in (2, 1, 0):
            r = await client.get("/reports/export")
            assert r.status_code == 200
            assert r.headers["x-ratelimit-remaining"] == str(left)
        assert (await client.get("/reports/export")).status_code == 429


async def test_the_example_limits_registration(example: ModuleType) -> None:
    async with serve(example) as new_client:
        client = new_client()
        for i in range(3):
            body = {"username": f"u{i}", "email": f"u{i}@example.com", "password": PASSWORD}
            assert (await client.post("/register", json=body)).status_code == 200
        body = {"username": "u3", "email": "u3@example.com", "password": PASSWORD}
        r = await client.post("/register", json=body)
        assert r.status_code == 429
        assert r.json() == THROTTLED
