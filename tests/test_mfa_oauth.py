"""The second factor on OAuth sign-ins: asked for with ``MfaConfig(oauth=True)``, warned about
when MFA is required and OAuth sign-ins are not challenged."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from tests.mfa_support import MfaUser, code, mfa_config, verify
from tests.oauth_support import OIDCProvider, oauth_env, sign_in


async def _enrol_oauth_user(env: Any, email: str) -> str:
    """Enrol the provider-made account (it has no password: a fresh sign-in stands in)."""
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "email", email)
        setup = await env.auth.mfa.setup(db, user, fresh=True)
        await env.auth.mfa.confirm(db, user, code(setup["secret"], env.clock.now()))
    return str(setup["secret"])


async def test_an_oauth_sign_in_with_mfa_oauth_lands_only_after_the_code(make_env: Any) -> None:
    idp = OIDCProvider()
    provider = idp.provider()
    env = await oauth_env(
        make_env, {"corp": provider}, user_model=MfaUser, mfa=mfa_config(oauth=True)
    )
    first = await sign_in(env.client, provider, "corp")
    assert first.status_code == 307 and "session_id" in first.cookies  # not enrolled yet
    secret = await _enrol_oauth_user(env, "ada@example.com")
    env.client.cookies.clear()
    env.clock.advance(30)

    second = await sign_in(env.client, provider, "corp")
    assert second.status_code == 307
    fragment = urlsplit(second.headers["location"]).fragment
    assert fragment.startswith("mfa_challenge=")
    assert "session_id" not in second.cookies
    assert (await env.client.get("/me")).status_code == 401

    challenge = fragment.removeprefix("mfa_challenge=")
    r = await verify(env.client, challenge, code(secret, env.clock.now()))
    assert r.status_code == 200, r.text
    me = await env.client.get("/me")
    assert me.status_code == 200 and me.json()["email"] == "ada@example.com"


async def test_required_mfa_with_unchallenged_oauth_sign_ins_is_warned_about(
    make_env: Any, caplog: Any
) -> None:
    provider = OIDCProvider().provider()
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        await oauth_env(
            make_env, {"corp": provider}, user_model=MfaUser, mfa=mfa_config(required=True)
        )
    assert any("OAuth sign-ins are not challenged" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        await oauth_env(
            make_env,
            {"corp": OIDCProvider().provider()},
            user_model=MfaUser,
            mfa=mfa_config(required=True, oauth=True),
        )
    assert not any("not challenged" in r.getMessage() for r in caplog.records)
