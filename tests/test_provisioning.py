"""Registration gating and provisioning: what a sign-up may set, and what the server sets."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import BaseModel, EmailStr
from sqlalchemy import select

from crudauth import ConfigurationError, NewUserContext
from tests.conftest import User


class SignUp(BaseModel):
    email: EmailStr
    username: str
    password: str
    bio: str | None = None
    is_superuser: bool = False
    email_verified: bool = False
    token_version: int = 0


BODY = {
    "email": "alice@example.com",
    "username": "alice",
    "password": "correct horse battery",
    "bio": "hello",
    "is_superuser": True,
    "email_verified": True,
    "token_version": 7,
}


async def stored(env: Any) -> Any:
    async with env.sessionmaker() as db:
        return (await db.execute(select(User))).scalars().one()


async def test_a_custom_schema_sets_only_opted_in_fields(make_env):
    env = await make_env(register_schema=SignUp, register_extra_fields={"bio"})
    r = await env.client.post("/register", json=BODY)
    assert r.status_code == 200, r.text
    user = await stored(env)
    assert user.bio == "hello"
    # Privileged fields sent by the client are dropped, whatever the schema accepts.
    assert (user.is_superuser, user.email_verified, user.token_version) == (False, False, 0)


async def test_extra_fields_are_dropped_unless_opted_in(make_env):
    env = await make_env(register_schema=SignUp)
    assert (await env.client.post("/register", json=BODY)).status_code == 200
    assert (await stored(env)).bio is None


@pytest.mark.parametrize("field", ["is_superuser", "hashed_password", "token_version"])
async def test_crudauth_owned_fields_cannot_be_opted_in(make_env, field):
    with pytest.raises(ConfigurationError):
        await make_env(register_schema=SignUp, register_extra_fields={field})


async def test_defaults_then_derived_fields_and_owned_keys_dropped(make_env):
    seen: list[NewUserContext] = []

    async def derive(ctx: NewUserContext) -> dict[str, Any]:
        seen.append(ctx)
        return {"bio": f"{ctx.suggested_name} via {ctx.source}", "is_superuser": True}

    env = await make_env(
        new_user_defaults={"bio": "default", "email_verified": True}, new_user_fields=derive
    )
    body = {"email": "alice@example.com", "username": "alice", "password": "correct horse battery"}
    assert (await env.client.post("/register", json=body)).status_code == 200
    user = await stored(env)
    assert user.bio == "alice via register"  # derived values win over constants
    assert (user.is_superuser, user.email_verified) == (False, False)
    [ctx] = seen
    assert ctx.email == "alice@example.com" and ctx.username == "alice"
    assert "password" not in ctx.register_data


async def test_derived_fields_may_be_a_model_or_sync(make_env):
    class Extra(BaseModel):
        bio: str

    env = await make_env(new_user_fields=lambda ctx: Extra(bio="from a model"))
    body = {"email": "bob@example.com", "username": "bob", "password": "correct horse battery"}
    assert (await env.client.post("/register", json=body)).status_code == 200
    assert (await stored(env)).bio == "from a model"


# -- startup warnings --------------------------------------------------------------------------


def startup_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "crudauth" and r.levelno == logging.WARNING
    ]


class PlainSignUp(BaseModel):
    email: EmailStr
    username: str
    password: str
    accept_terms: bool = True  # not a column: nothing to warn about


class SelfPromotingSignUp(PlainSignUp):
    is_superuser: bool = False


class BioSignUp(PlainSignUp):
    bio: str | None = None


async def test_a_schema_declaring_a_privileged_field_is_warned_about(make_env, caplog):
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        await make_env(register_schema=SelfPromotingSignUp)
    [message] = startup_warnings(caplog)
    assert "SelfPromotingSignUp" in message and "'is_superuser'" in message
    assert "privileged" in message


async def test_a_schema_column_not_opted_in_is_warned_about(make_env, caplog):
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        await make_env(register_schema=BioSignUp)
    [message] = startup_warnings(caplog)
    assert "'bio'" in message and "register_extra_fields" in message


async def test_a_schema_whose_columns_are_opted_in_is_not_warned_about(make_env, caplog):
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        env = await make_env(register_schema=BioSignUp, register_extra_fields={"bio"})
        env.auth.router  # noqa: B018 - building the routes must not warn either
        await make_env(register_schema=PlainSignUp)
    assert startup_warnings(caplog) == []


async def test_owned_keys_in_new_user_defaults_are_warned_about(make_env, caplog):
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        await make_env(new_user_defaults={"bio": "hi", "is_superuser": True})
    [message] = startup_warnings(caplog)
    assert "new_user_defaults" in message and "is_superuser" in message
