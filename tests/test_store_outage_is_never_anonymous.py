"""A store that cannot answer is an outage (503), never "anonymous".

Only an absent credential and a present-but-invalid one read as anonymous, on every path that
may answer "nobody": ``current_user(optional=True)``, its claims-only form and
``auth.resolve_principal`` (for middleware).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends
from starlette.exceptions import HTTPException
from starlette.requests import Request

from crudauth import Principal, SessionTransport
from crudauth.errors import StoreUnavailable
from crudauth.storage.base import SessionRecord
from crudauth.storage.memory import MemorySessionStore
from tests.conftest import login, register


class SwitchableSessionStore(MemorySessionStore):
    """Sessions in memory, until ``down`` makes every read fail as an unreachable store."""

    down = False

    async def load(self, key: str, *, now: float, slide_after: float) -> SessionRecord | None:
        if self.down:
            raise StoreUnavailable("session store unreachable")
        return await super().load(key, now=now, slide_after=slide_after)


async def signed_in_env(make_env: Any) -> tuple[Any, SwitchableSessionStore, str]:
    store = SwitchableSessionStore()
    env = await make_env(transports=[SessionTransport(storage=store)])

    @env.app.get("/maybe")
    async def maybe(
        p: Principal | None = Depends(env.auth.current_user(optional=True)),
    ) -> dict[str, Any]:
        return {"user_id": p.user_id if p else None}

    @env.app.get("/maybe-claims")
    async def maybe_claims(
        p: Principal | None = Depends(env.auth.current_user(optional=True, load_user=False)),
    ) -> dict[str, Any]:
        return {"user_id": p.user_id if p else None}

    await register(env.client)
    assert (await login(env.client)).status_code == 200
    return env, store, env.client.cookies["session_id"]


def bare_request(cookie: str | None) -> Request:
    headers = [(b"cookie", f"session_id={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


@pytest.mark.parametrize("route", ["/maybe", "/maybe-claims"])
async def test_an_optional_current_user_answers_503_when_the_session_store_is_down(make_env, route):
    env, store, _ = await signed_in_env(make_env)
    assert (await env.client.get(route)).json() == {"user_id": 1}
    store.down = True
    r = await env.client.get(route)
    assert r.status_code == 503, r.text
    assert r.headers["x-error-code"] == "store_unavailable"
    assert int(r.headers["retry-after"]) >= 1
    env.client.cookies.clear()  # no credential: no store is asked, the caller is anonymous
    assert (await env.client.get(route)).json() == {"user_id": None}


async def test_resolve_principal_raises_503_when_the_session_store_is_down(make_env):
    env, store, cookie = await signed_in_env(make_env)
    principal = await env.auth.resolve_principal(bare_request(cookie))
    assert principal is not None and principal.user_id == 1
    store.down = True
    with pytest.raises(HTTPException) as raised:
        await env.auth.resolve_principal(bare_request(cookie))
    assert raised.value.status_code == 503
    assert raised.value.headers is not None and "Retry-After" in raised.value.headers


async def test_resolve_principal_reads_a_missing_or_invalid_credential_as_anonymous(make_env):
    env, _, _ = await signed_in_env(make_env)
    assert await env.auth.resolve_principal(bare_request(None)) is None
    assert await env.auth.resolve_principal(bare_request("no-such-session")) is None
