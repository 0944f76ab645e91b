"""The recovery page's example runs as written and is shown verbatim in the docs."""

from __future__ import annotations

import importlib
import secrets
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "docs" / "recovery.py"
PAGE = ROOT / "docs" / "recovery.md"
PASSWORD = "correct horse battery 9"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, *, to: str, subject: str, body: str, kind: Any, context: Any) -> None:
        self.sent.append({"to": to, "kind": str(kind.value), "link": context.link, "body": body})

    def token(self, kind: str) -> str:
        link = [m for m in self.sent if m["kind"] == kind][-1]["link"]
        return parse_qs(urlsplit(link).query)["token"][0]


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(36))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    name = "examples.docs.recovery"
    sys.modules.pop(name, None)
    module = importlib.import_module(name)
    del sys.modules[name]  # no example (nor its engine) outlives its test
    return module


def test_the_example_is_shown_verbatim_in_the_page() -> None:
    assert EXAMPLE.read_text().strip() in PAGE.read_text()


async def test_the_example_verifies_resets_and_evicts_sessions(example: ModuleType) -> None:
    recorder = Recorder()
    # The example's MailQueue only logs; record what it is handed instead.
    example.auth.emails.config.sender.send = recorder.send
    transport = httpx.ASGITransport(app=example.app)
    async with (
        example.app.router.lifespan_context(example.app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as web,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as phone,
    ):
        body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
        assert (await web.post("/register", json=body)).status_code == 202
        login = await web.post("/login", data={"username": "alice", "password": PASSWORD})
        assert login.status_code == 200
        assert (await web.get("/billing")).status_code == 403  # not verified yet

        token = recorder.token("verify_email")
        r = await web.post("/email/verify-confirm", json={"token": token})
        assert r.json() == {"detail": "Verified successfully."}
        assert (await web.get("/billing")).json() == {"plan": "pro"}

        await phone.post("/password/reset-request", json={"email": "alice@example.com"})
        [reset] = [m for m in recorder.sent if m["kind"] == "reset_password"]
        assert reset["link"].startswith("https://app.example.com/account/reset?token=")
        assert reset["body"].endswith(reset["link"])
        r = await phone.post(
            "/password/reset-confirm",
            json={"token": recorder.token("reset_password"), "new_password": "fresh pass 42"},
        )
        assert r.json() == {"detail": "Password reset successfully."}
        assert (await web.get("/billing")).status_code == 401  # the reset evicted it
    # Its shutdown closed what it opened: a connection left in the pool would outlive the app.
    assert example.engine.pool.checkedin() == 0
