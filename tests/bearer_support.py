"""Helpers for the bearer tests: sign in for tokens, read and forge JWTs byte by byte.

Forged tokens are assembled by hand (not through PyJWT), so a test can build exactly the
malformed or malicious token it means to, including ones the library would refuse to encode.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth import CookieConfig, CRUDAuth
from crudauth.keys import Purpose
from tests.conftest import SECRET, Env, User

PASSWORD = "correct horse battery"


def b64(data: bytes | str | Mapping[str, Any]) -> str:
    if isinstance(data, Mapping):
        data = json.dumps(data, separators=(",", ":"))
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def header_of(token: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(unb64(token.split(".")[0]))
    return result


def claims_of(token: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(unb64(token.split(".")[1]))
    return result


def hs256(header: Mapping[str, Any], claims: Mapping[str, Any], key: bytes) -> str:
    """An HS256 JWT signed with ``key``, with exactly this header."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    mac = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def access_key(auth: CRUDAuth, index: int = 0) -> bytes:
    return auth.runtime.keys.key(Purpose.ACCESS_TOKEN, index)


def refresh_key(auth: CRUDAuth, index: int = 0) -> bytes:
    return auth.runtime.keys.key(Purpose.REFRESH_TOKEN, index)


def resign(
    auth: CRUDAuth, token: str, *, header: Mapping[str, Any] | None = None, **claims: Any
) -> str:
    """``token`` with changed claims (``None`` removes one), signed with the real access key."""
    body = {**claims_of(token), **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return hs256({**header_of(token), **(header or {})}, body, access_key(auth))


def bearer(token: str | bytes) -> dict[str, Any]:
    raw = token if isinstance(token, bytes) else token.encode("latin-1")
    return {"Authorization": b"Bearer " + raw}


async def sign_up(client: httpx.AsyncClient, username: str = "alice") -> None:
    r = await client.post(
        "/register",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert r.status_code == 200, r.text


async def get_tokens(
    client: httpx.AsyncClient, username: str = "alice", **form: str
) -> dict[str, Any]:
    r = await client.post("/token", data={"username": username, "password": PASSWORD, **form})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def update_user(env: Env, username: str, **values: Any) -> None:
    async with env.sessionmaker() as db:
        await db.execute(update(User).where(User.username == username).values(**values))
        await db.commit()


class RebuiltApp(httpx.AsyncClient):
    """A client of a second app; leaving its ``async with`` shuts that app down too (its
    Redis connections are closed, not left to the garbage collector)."""

    def __init__(self, auth: CRUDAuth, **options: Any) -> None:
        super().__init__(**options)
        self.crudauth = auth

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await super().__aexit__(*exc_info)
        finally:
            await self.crudauth.shutdown()


def rebuild(env: Env, **options: Any) -> RebuiltApp:
    """A second app over the same database and clock (a deploy with new settings)."""

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with env.sessionmaker() as db:
            yield db

    options.setdefault("SECRET_KEY", SECRET)
    auth = CRUDAuth(
        session=get_session,
        user_model=User,
        clock=env.clock,
        password_hasher=env.hasher,
        cookies=CookieConfig(secure=False),
        warn_on_memory_backend=False,
        **options,
    )
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(auth.router)
    return RebuiltApp(auth, transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
