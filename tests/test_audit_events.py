"""Audit events: the exact events a flow emits, what they carry, and sinks that fail or hang.

The full account flow of ``test_hooks_and_logs_carry_no_secrets`` (sign-up, guesses up to a
lock, sign-in, sudo, email change, password change, bearer tokens and a replayed refresh
token, a reset, a sign-out) runs with a recording sink and the logging sink captured.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from crudauth import BearerTransport, SessionTransport, SudoConfig
from crudauth.audit import AuditEvent, AuditLog, Events
from crudauth.clock import FrozenClock
from crudauth.hooks import HookContext
from crudauth.passwords import make_unusable_password
from tests.email_support import Outbox, email_config
from tests.test_hooks_and_logs_carry_no_secrets import Secrets, full_flow

#: (event, actor, reason) in the order the flow emits them.
EXPECTED = [
    ("email.verified", "user", None),
    *[("signin.failed", None, "invalid_credentials")] * 5,
    ("lockout.engaged", None, "locked_out"),
    ("signin.failed", None, "invalid_credentials"),
    ("signin.succeeded", None, None),
    ("sudo.granted", "user", None),
    ("email.change_requested", "user", None),
    ("email.change_confirmed", "user", None),
    ("password.changed", "user", None),
    ("signin.succeeded", None, None),
    ("refresh.reuse_detected", "system", None),
    ("password.reset", "user", None),
    ("lockout.cleared", "user", "password_reset"),
    ("signin.succeeded", None, None),
    ("signout", "user", None),
]


async def run_flow(make_env: Any, sink: Any) -> tuple[Secrets, Any]:
    outbox = Outbox()
    secrets = Secrets()
    env = await make_env(
        transports=[SessionTransport(), BearerTransport(refresh="body")],
        email=email_config(outbox),
        sudo=SudoConfig(),
        trusted_proxy_hops=1,
        audit=sink,
    )
    await full_flow(env, outbox, secrets)
    return secrets, env


async def test_a_full_flow_emits_exactly_its_events_and_none_carries_a_secret(
    make_env, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="crudauth.audit")
    events: list[AuditEvent] = []
    secrets, _ = await run_flow(make_env, events.append)

    assert [(e.name, e.actor, e.reason) for e in events] == EXPECTED
    alice = {e.user_id for e in events if e.name != "lockout.engaged" and e.user_id}
    assert len(alice) == 1
    guesses = [e for e in events if e.name in ("signin.failed", "lockout.engaged")]
    assert guesses[0].identifier == "evil\\r\\nINFO admin logged in"  # escaped, as typed
    assert guesses[0].client_ip == "198.51.100.0"  # behind one trusted proxy
    assert events[-1].client_ip == "192.0.2.1"
    assert {e.transport for e in events if e.name == "signin.succeeded"} == {"session", "bearer"}

    logged = [r for r in caplog.records if r.name == "crudauth.audit"]
    assert [json.loads(r.getMessage())["event"] for r in logged] == [n for n, _, _ in EXPECTED]
    for text in [json.dumps(e.to_dict()) for e in events] + [r.getMessage() for r in logged]:
        assert not secrets.found_in(text), text
        assert "\r" not in text and "\n" not in text


async def test_an_event_carries_the_request_id_and_a_bounded_user_agent(make_env):
    events: list[AuditEvent] = []
    env = await make_env(audit=events.append)
    r = await env.client.post(
        "/login",
        data={"username": "nobody", "password": "wrong password here"},
        headers={"X-Request-ID": "req-42\n", "User-Agent": "x" * 1000},
    )
    assert r.status_code == 401
    (event,) = events
    assert (event.name, event.reason, event.identifier) == (
        "signin.failed",
        "invalid_credentials",
        "nobody",
    )
    assert event.request_id == "req-42\\n"
    assert event.user_agent is not None and len(event.user_agent) <= 256
    assert event.user_id is None


async def test_a_failing_or_hanging_sink_neither_fails_nor_holds_up_the_sign_in(
    make_env, caplog: pytest.LogCaptureFixture
):
    released = asyncio.Event()
    delivered: list[str] = []

    def broken(event: AuditEvent) -> None:
        raise RuntimeError("the log pipeline is down")

    async def hanging(event: AuditEvent) -> None:
        await released.wait()
        delivered.append(event.name)

    env = await make_env(audit=[broken, hanging])
    assert (
        await env.client.post(
            "/register",
            json={
                "username": "alice",
                "email": "alice@example.com",
                "password": "correct horse battery",
            },
        )
    ).status_code in (200, 201)
    r = await env.client.post(
        "/login", data={"username": "alice", "password": "correct horse battery"}
    )
    assert r.status_code == 200  # answered while the async sink still waits
    assert delivered == []
    assert env.auth.runtime.audit.failures == 1
    assert any("audit sink" in r.getMessage() for r in caplog.records)
    released.set()
    await env.auth.runtime.audit.drain()
    assert delivered == ["signin.succeeded"]


async def test_an_async_sink_that_never_returns_is_bounded():
    log = AuditLog([lambda event: asyncio.sleep(3600)], FrozenClock())
    for _ in range(1005):
        log.emit(Events.SIGNOUT, HookContext())
    assert len(log._pending) == 1000
    assert log.failures == 5
    await asyncio.sleep(0)  # every task starts awaiting its sink
    for task in list(log._pending):
        task.cancel()
    await asyncio.gather(*log._pending, return_exceptions=True)


async def test_an_administrator_revoking_a_user_is_recorded_with_what_ended(make_env):
    events: list[AuditEvent] = []
    env = await make_env(audit=events.append)
    await env.client.post(
        "/register",
        json={
            "username": "alice",
            "email": "alice@example.com",
            "password": "correct horse battery",
        },
    )
    await env.client.post("/login", data={"username": "alice", "password": "correct horse battery"})
    events.clear()
    assert await env.auth.revoke_user(1) == 1
    (event,) = events
    assert (event.name, event.actor, event.reason) == ("session.revoked", "admin", "revoke_user")
    assert event.details == {"ended_session": 1}


def test_the_audit_option_refuses_what_is_not_callable():
    with pytest.raises(TypeError):
        AuditLog(["not a sink"])  # type: ignore[list-item]


def test_every_event_in_the_catalogue_is_documented_and_emitted_by_the_flow():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    names = {v for k, v in vars(Events).items() if k.isupper()}
    assert all(f"| `{name}` |" in page for name in names)
    # The full flow reaches all but these; the tests below and tests/test_audit_mfa_oauth.py
    # emit them.
    assert names - {n for n, _, _ in EXPECTED} == {
        "password.set",
        "session.revoked",
        "mfa.enabled",
        "mfa.disabled",
        "mfa.recovery_code_used",
        "oauth.linked",
        "oauth.unlinked",
    }


async def test_ending_one_of_your_sessions_and_setting_a_first_password_are_recorded(make_env):
    events: list[AuditEvent] = []
    env = await make_env(audit=events.append, transports=[SessionTransport(management_routes=True)])
    await env.client.post(
        "/register",
        json={
            "username": "alice",
            "email": "alice@example.com",
            "password": "correct horse battery",
        },
    )
    r = await env.client.post(
        "/login", data={"username": "alice", "password": "correct horse battery"}
    )
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    listing = await env.client.get("/sessions")
    assert listing.status_code == 200, listing.text
    (session,) = listing.json()
    events.clear()
    r = await env.client.delete(f"/sessions/{session['id']}", headers=csrf)
    assert r.status_code == 200, r.text
    assert [(e.name, e.actor, e.user_id) for e in events] == [("session.revoked", "user", "1")]

    events.clear()
    async with env.sessionmaker() as db:
        user = await env.auth.repo.get(db, 1)
        await env.auth.repo.update(db, user, {"hashed_password": make_unusable_password()})
        await env.auth.accounts.set_password(db, user, "a first real passphrase")
    assert [(e.name, e.actor) for e in events] == [("password.set", "admin")]
