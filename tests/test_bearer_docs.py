"""The bearer examples in docs/ run as written: each is imported fresh and driven over HTTP."""

from __future__ import annotations

import importlib
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery 9"

Loader = Callable[[str], ModuleType]


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Loader:
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(36))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")

    def loader(name: str) -> ModuleType:
        module_name = f"examples.docs.{name}"
        sys.modules.pop(module_name, None)
        module = importlib.import_module(module_name)
        del sys.modules[module_name]  # no example (nor its engine) outlives its test
        return module

    return loader


@asynccontextmanager
async def serve(module: ModuleType) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=module.app)
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    async with module.app.router.lifespan_context(module.app), client:
        yield client
    # Its shutdown closed what it opened: a connection left in the pool would outlive the app.
    assert module.engine.pool.checkedin() == 0


async def sign_up(client: httpx.AsyncClient, name: str = "alice") -> None:
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    assert (await client.post("/register", json=body)).status_code == 200


def test_the_bearer_examples_are_shown_in_the_docs() -> None:
    pages = {
        "bearer_token_api": (ROOT / "docs" / "bearer.md").read_text(),
        "bearer_web_and_api": (ROOT / "docs" / "multiple-transports.md").read_text(),
    }
    for name, page in pages.items():
        assert (ROOT / "examples" / "docs" / f"{name}.py").read_text().strip() in page


async def test_token_api_example(load: Loader) -> None:
    async with serve(load("bearer_token_api")) as client:
        await sign_up(client)
        r = await client.post("/token", data={"username": "alice", "password": PASSWORD})
        assert r.status_code == 200
        tokens = r.json()
        assert set(tokens) == {"access_token", "token_type", "refresh_token"}
        read = {"Authorization": f"Bearer {tokens['access_token']}"}
        r = await client.get("/notes", headers=read)
        assert r.json() == {"owner": 1, "notes": [], "scopes": ["notes:read"]}
        r = await client.post("/notes", json={"text": "hi"}, headers=read)
        assert r.status_code == 403
        assert (await client.get("/notes")).status_code == 401

        form = {"username": "alice", "password": PASSWORD, "scope": "notes:write admin"}
        writer = (await client.post("/token", data=form)).json()
        r = await client.post(
            "/notes",
            json={"text": "hi"},
            headers={"Authorization": f"Bearer {writer['access_token']}"},
        )
        assert r.json() == {"owner": 1, "text": "hi"}

        r = await client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200
        fresh = r.json()["refresh_token"]
        # The spent token is refused, and its family (the fresh token too) is revoked.
        spent = await client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert spent.status_code == 401
        assert (await client.post("/refresh", json={"refresh_token": fresh})).status_code == 401


async def test_web_and_api_example(load: Loader) -> None:
    async with serve(load("bearer_web_and_api")) as client:
        await sign_up(client)
        r = await client.post("/token", data={"username": "alice", "password": PASSWORD})
        assert set(r.json()) == {"access_token", "token_type"}
        assert "refresh_token" in r.cookies
        api = {"Authorization": f"Bearer {r.json()['access_token']}"}
        client.cookies.clear()
        assert (await client.post("/profile", headers=api)).json() == {
            "user_id": 1,
            "via": "bearer",
        }
        assert (await client.get("/api/export", headers=api)).json() == {"user_id": 1, "rows": []}

        r = await client.post("/login", data={"username": "alice", "password": PASSWORD})
        csrf = r.json()["csrf_token"]
        assert (await client.post("/profile")).status_code == 403
        junk = {"Authorization": "Bearer junk"}
        assert (await client.post("/profile", headers=junk)).status_code == 403
        r = await client.post("/profile", headers={"X-CSRF-Token": csrf})
        assert r.json() == {"user_id": 1, "via": "session"}
        assert (await client.get("/api/export")).status_code == 401
