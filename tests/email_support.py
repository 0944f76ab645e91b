"""A recording ``EmailSender`` and helpers shared by the recovery tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from crudauth import EmailConfig, EmailContext

FRONTEND = "https://app.example.com"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


@dataclass
class Outbox:
    """Keeps every message; ``fail`` makes ``send`` raise (a mail server that is down)."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def send(self, *, to: str, subject: str, body: str, kind: Any, context: EmailContext) -> None:
        if self.fail:
            raise ConnectionError("SMTP server unreachable")
        self.sent.append(
            {"to": to, "subject": subject, "body": body, "kind": str(kind.value), "ctx": context}
        )

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["kind"] == kind]

    def last_token(self, kind: str) -> str:
        link = self.of(kind)[-1]["ctx"].link
        return parse_qs(urlsplit(link).query)["token"][0]


def email_config(outbox: Outbox, **options: Any) -> EmailConfig:
    return EmailConfig(sender=outbox, frontend_url=FRONTEND, **options)


async def signup(
    client: httpx.AsyncClient, name: str = "alice", email: str | None = None
) -> httpx.Response:
    body = {"username": name, "email": email or f"{name}@example.com", "password": PASSWORD}
    return await client.post("/register", json=body)


async def sign_in(
    client: httpx.AsyncClient, name: str = "alice", password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/login", data={"username": name, "password": password})


def device(app: Any) -> httpx.AsyncClient:
    """Another browser: its own cookie jar on the same app (close it when done)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
