"""Audit events of the second factor and of OAuth linking: one event per moment, no secret."""

from __future__ import annotations

from typing import Any

from crudauth.audit import AuditEvent, Events
from crudauth.oauth import OAuthUserInfo
from tests.mfa_support import PASSWORD, enrol, mfa_env, verify
from tests.oauth_support import OIDCProvider, oauth_env


def _names(events: list[AuditEvent], prefix: str) -> list[str]:
    return [e.name for e in events if e.name.startswith(prefix)]


async def test_enrolling_spending_a_recovery_code_and_disabling_are_recorded(
    make_env: Any,
) -> None:
    events: list[AuditEvent] = []
    env = await mfa_env(make_env, audit=events.append)
    enrolled = await enrol(env)
    r = await env.client.post("/login", data={"username": "alice", "password": PASSWORD})
    spent = enrolled.recovery_codes[0]
    assert (await verify(env.client, r.json()["challenge"], spent)).status_code == 200
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "username", "alice")
        await env.auth.mfa.disable(db, user, elevated=True)
    assert _names(events, "mfa.") == [
        Events.MFA_ENABLED,
        Events.MFA_RECOVERY_CODE_USED,
        Events.MFA_DISABLED,
    ]
    user_id = str(env.auth.repo.user_id(user))
    mfa_events = [e for e in events if e.name.startswith("mfa.")]
    assert {e.user_id for e in mfa_events} == {user_id}
    text = repr([e.to_dict() for e in events])
    assert spent not in text and enrolled.secret not in text and PASSWORD not in text


async def test_linking_and_unlinking_a_provider_are_recorded(make_env: Any) -> None:
    events: list[AuditEvent] = []
    env = await oauth_env(make_env, {"corp": OIDCProvider().provider()}, audit=events.append)
    body = {"username": "bob", "email": "bob@example.com", "password": PASSWORD}
    assert (await env.client.post("/register", json=body)).status_code in (200, 202)
    accounts = env.auth.oauth_accounts
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "username", "bob")
        info = OAuthUserInfo("corp", "subject-1", "bob@example.com", email_verified=True)
        await accounts.link(db, user, info)
        await db.commit()
        (identity,) = await accounts.list_identities(db, user)
        await accounts.unlink(db, user, identity.id)
        await db.commit()
    linked = [e for e in events if e.name.startswith("oauth.")]
    assert [e.name for e in linked] == [Events.OAUTH_LINKED, Events.OAUTH_UNLINKED]
    assert all(e.details["provider"] == "corp" for e in linked)
    assert {e.user_id for e in linked} == {str(env.auth.repo.user_id(user))}
