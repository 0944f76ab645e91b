"""A transport written as the reference documents it: subclass ``Transport``, read a credential.

An API-key transport reads a header and never signs anyone in; it needs no ``complete_login``.
"""

from __future__ import annotations

import hmac
from typing import Any

import pytest
from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth import AuthContext, ConfigurationError, Principal, SessionTransport, Transport
from crudauth.errors import InvalidToken
from tests.conftest import register

API_KEY = "k-0123456789abcdef0123456789abcdef"


class ApiKeyTransport(Transport):
    """``X-API-Key: <key>`` for machine clients; keys are issued out of band."""

    name = "apikey"

    def __init__(self, keys: dict[str, int]) -> None:
        self.keys = keys

    async def authenticate(self, request: Request, ctx: AuthContext) -> Principal | None:
        presented = request.headers.get("x-api-key")
        if presented is None:
            return None  # no credential: let the next transport try
        for key, user_id in self.keys.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                user = await ctx.runtime.repo.get(ctx.db, user_id)
                if user is not None:
                    return Principal(user_id=user_id, transport=self.name, user=user)
        raise InvalidToken("unknown API key")  # present but invalid: never anonymous


async def test_an_api_key_transport_authenticates_a_protected_route(make_env: Any) -> None:
    env = await make_env(transports=[ApiKeyTransport({API_KEY: 1})])
    assert (await register(env.client)).status_code == 200

    r = await env.client.get("/private", headers={"X-API-Key": API_KEY})
    assert r.status_code == 200 and r.json() == {"user_id": 1, "via": "apikey"}
    assert (await env.client.get("/private")).status_code == 401
    wrong = await env.client.get("/private", headers={"X-API-Key": "k-guessed"})
    assert wrong.status_code == 401


async def test_an_api_key_transport_beside_sessions_keeps_password_sign_in(
    make_env: Any,
) -> None:
    env = await make_env(transports=[SessionTransport(), ApiKeyTransport({API_KEY: 1})])
    await register(env.client)
    r = await env.client.post(
        "/login", data={"username": "alice", "password": "correct horse battery"}
    )
    assert r.status_code == 200
    assert (await env.client.get("/private")).json()["via"] == "session"
    env.client.cookies.clear()
    r = await env.client.get("/private", headers={"X-API-Key": API_KEY})
    assert r.json()["via"] == "apikey"


async def test_signing_in_through_a_transport_without_complete_login_is_refused(
    make_env: Any,
) -> None:
    api_keys = ApiKeyTransport({API_KEY: 1})
    env = await make_env(transports=[api_keys])
    await register(env.client)

    @env.app.post("/apikey/login")  # type: ignore[untyped-decorator]
    async def hand_rolled_login(request: Request, response: Response) -> dict[str, Any]:
        db: AsyncSession
        async with env.sessionmaker() as db:
            user = await env.auth.authenticate_password(
                db, "alice", "correct horse battery", request=request
            )
        return await api_keys.complete_login(request, response, user, {})

    with pytest.raises(ConfigurationError, match=r"ApiKeyTransport \(transport 'apikey'\)"):
        await env.client.post("/apikey/login")
