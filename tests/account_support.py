"""Helpers for the account tests: several browsers (cookie jars) on one app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import Env, login

PASSWORD = "correct horse battery"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


@dataclass
class Browser:
    """One signed-in cookie jar and the CSRF token it was given."""

    client: httpx.AsyncClient
    csrf: str

    @property
    def session_id(self) -> str:
        return self.client.cookies["session_id"]

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return await self.client.post(url, headers=headers, **kwargs)

    async def delete(self, url: str) -> httpx.Response:
        return await self.client.delete(url, headers={"X-CSRF-Token": self.csrf})


def new_client(env: Env, user_agent: str | None = None) -> httpx.AsyncClient:
    headers = {"User-Agent": user_agent} if user_agent else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.app), base_url="http://testserver", headers=headers
    )


async def sign_in(
    env: Env,
    username: str = "alice",
    password: str = PASSWORD,
    user_agent: str | None = None,
    **form: Any,
) -> Browser:
    client = new_client(env, user_agent)
    r = await login(client, username, password, **form)
    assert r.status_code == 200, r.text
    return Browser(client, r.json()["csrf_token"])
