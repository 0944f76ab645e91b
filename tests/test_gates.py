"""``auth.current_user(...)``: each option on a tiny route of the app's own."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi import Depends
from sqlalchemy import update
from sqlalchemy.orm import DeclarativeBase

from crudauth import CRUDAuth, IdentityConfig, Principal, make_auth_identity
from tests.conftest import SECRET, User, login, register


async def set_user(env: Any, username: str = "alice", **values: Any) -> None:
    async with env.sessionmaker() as db:
        await db.execute(update(User).where(User.username == username).values(**values))
        await db.commit()


async def sign_in(env: Any) -> int:
    user_id = (await register(env.client)).json()["id"]
    r = await login(env.client)
    assert r.status_code == 200, r.text
    return int(user_id)


def add_gated_route(env: Any, path: str, **options: Any) -> None:
    gate = env.auth.current_user(**options)

    @env.app.get(path)
    async def gated(p: Principal | None = Depends(gate)) -> dict[str, Any]:
        return {"user_id": None if p is None else p.user_id}


# -- optional -------------------------------------------------------------------------------


async def test_optional_gives_none_without_a_credential(make_env):
    env = await make_env()
    add_gated_route(env, "/maybe", optional=True)

    r = await env.client.get("/maybe")

    assert r.status_code == 200, r.text
    assert r.json() == {"user_id": None}


async def test_optional_still_refuses_an_invalid_credential(make_env):
    env = await make_env()
    add_gated_route(env, "/maybe", optional=True)

    r = await env.client.get(
        "/maybe", headers={"Cookie": f"session_id={secrets.token_urlsafe(32)}"}
    )

    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}


async def test_optional_refuses_an_expired_session(make_env):
    env = await make_env()
    add_gated_route(env, "/maybe", optional=True)
    await sign_in(env)
    env.clock.advance(30 * 60 + 1)

    assert (await env.client.get("/maybe")).status_code == 401


async def test_optional_gives_the_principal_when_signed_in(make_env):
    env = await make_env()
    add_gated_route(env, "/maybe", optional=True)
    user_id = await sign_in(env)

    r = await env.client.get("/maybe")

    assert r.json() == {"user_id": user_id}


async def test_required_without_a_credential_is_401(make_env):
    env = await make_env()
    add_gated_route(env, "/must")

    r = await env.client.get("/must")

    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}


# -- superuser, verified, scopes ------------------------------------------------------------


async def test_superuser_gate(make_env):
    env = await make_env()
    add_gated_route(env, "/admin", superuser=True)
    user_id = await sign_in(env)

    r = await env.client.get("/admin")
    assert r.status_code == 403
    assert r.json() == {"detail": "Insufficient privileges"}

    await set_user(env, is_superuser=True)
    r = await env.client.get("/admin")
    assert r.status_code == 200, r.text
    assert r.json() == {"user_id": user_id}


async def test_superuser_gate_without_a_credential_is_401(make_env):
    env = await make_env()
    add_gated_route(env, "/admin", superuser=True)

    assert (await env.client.get("/admin")).status_code == 401


async def test_verified_gate(make_env):
    env = await make_env()
    add_gated_route(env, "/verified", verified=True)
    await sign_in(env)

    r = await env.client.get("/verified")
    assert r.status_code == 403
    assert r.json() == {"detail": "Recovery factor not verified"}

    await set_user(env, email_verified=True)
    assert (await env.client.get("/verified")).status_code == 200


async def test_scopes_gate(make_env):
    env = await make_env()
    add_gated_route(env, "/scoped", scopes=["reports:read"])
    await sign_in(env)

    r = await env.client.get("/scoped")

    assert r.status_code == 403
    assert r.json() == {"detail": "Insufficient scope"}


async def test_empty_scopes_require_nothing(make_env):
    env = await make_env()
    add_gated_route(env, "/scoped", scopes=[])
    await sign_in(env)

    assert (await env.client.get("/scoped")).status_code == 200


# -- check ----------------------------------------------------------------------------------


async def test_sync_check_refusing_is_access_denied(make_env):
    env = await make_env()
    add_gated_route(env, "/checked", check=lambda p: False)
    await sign_in(env)

    r = await env.client.get("/checked")

    assert r.status_code == 403
    assert r.json() == {"detail": "Access denied"}


async def test_async_check_refusing_is_access_denied(make_env):
    env = await make_env()

    async def deny(principal: Principal) -> bool:
        return False

    add_gated_route(env, "/checked", check=deny)
    await sign_in(env)

    r = await env.client.get("/checked")

    assert r.status_code == 403
    assert r.json() == {"detail": "Access denied"}


async def test_check_sees_the_principal_and_can_allow(make_env):
    env = await make_env()
    seen: list[Principal] = []

    async def only_alice(principal: Principal) -> bool:
        seen.append(principal)
        return principal.user is not None and principal.user.username == "alice"

    add_gated_route(env, "/alice-only", check=only_alice)
    add_gated_route(env, "/sync-allow", check=lambda p: True)
    user_id = await sign_in(env)

    assert (await env.client.get("/alice-only")).status_code == 200
    assert (await env.client.get("/sync-allow")).status_code == 200
    assert [p.user_id for p in seen] == [user_id]


async def test_check_is_not_called_without_a_credential(make_env):
    env = await make_env()
    calls: list[Principal] = []
    add_gated_route(env, "/checked", check=lambda p: calls.append(p) or True)

    assert (await env.client.get("/checked")).status_code == 401
    assert calls == []


# -- transport ------------------------------------------------------------------------------


async def test_unknown_transport_is_a_build_time_error(make_env):
    env = await make_env()

    with pytest.raises(ValueError, match="nope"):
        env.auth.current_user(transport="nope")


async def test_named_session_transport_works(make_env):
    env = await make_env()
    add_gated_route(env, "/session-only", transport="session")
    user_id = await sign_in(env)

    r = await env.client.get("/session-only")

    assert r.json() == {"user_id": user_id}


class UsernameOnlyBase(DeclarativeBase):
    pass


HandleIdentity: Any = make_auth_identity(identifiers=["username"], recovery=None, oauth=False)


class Handle(HandleIdentity, UsernameOnlyBase):
    __tablename__ = "handles"


def test_verified_gate_without_a_recovery_factor_is_a_build_time_error():
    async def no_db() -> Any:  # never called: the error comes before any request
        raise AssertionError("no request expected")

    auth = CRUDAuth(
        session=no_db,
        user_model=Handle,
        SECRET_KEY=SECRET,
        identity=IdentityConfig(login=["username"], recovery=None),
        warn_on_memory_backend=False,
    )

    assert auth.current_user() is not None
    with pytest.raises(ValueError, match="recovery"):
        auth.current_user(verified=True)


# -- once per request -----------------------------------------------------------------------


async def test_principal_is_resolved_once_per_request(make_env):
    env = await make_env()
    first_gate = env.auth.current_user()
    second_gate = env.auth.current_user(check=lambda p: True)

    @env.app.post("/twice")
    async def twice(
        a: Principal = Depends(first_gate), b: Principal = Depends(second_gate)
    ) -> dict[str, Any]:
        return {"same": a is b}

    await register(env.client)
    csrf = (await login(env.client)).json()["csrf_token"]
    loads = 0
    store = env.auth.sessions.store
    original = store.load

    async def counting_load(*args: Any, **kwargs: Any) -> Any:
        nonlocal loads
        loads += 1
        return await original(*args, **kwargs)

    store.load = counting_load

    r = await env.client.post("/twice", headers={"X-CSRF-Token": csrf})

    assert r.status_code == 200, r.text
    assert r.json() == {"same": True}
    assert loads == 1


async def test_failed_resolution_is_not_cached_as_anonymous(make_env):
    env = await make_env()
    optional = env.auth.current_user(optional=True)
    required = env.auth.current_user()

    @env.app.get("/both")
    async def both(
        a: Principal | None = Depends(optional), b: Principal = Depends(required)
    ) -> dict[str, Any]:
        return {"a": a is None, "b": b is None}

    r = await env.client.get("/both", headers={"Cookie": f"session_id={secrets.token_urlsafe(32)}"})

    assert r.status_code == 401
