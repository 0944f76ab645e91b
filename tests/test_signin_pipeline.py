"""The sign-in pipeline, driven without HTTP: its steps run in order, and a step that stops the
sign-in leaves nothing issued, nothing ended and the lockout slot still taken."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from crudauth import AuthHooks, BearerTransport, SessionTransport
from crudauth.errors import InvalidCredentials
from crudauth.signin.pipeline import (
    Challenge,
    Pending,
    SignInPipeline,
    check_password,
    no_second_factor,
)
from tests.conftest import REDIS_TEST_URL, Env, User, login, register

PASSWORD = "correct horse battery"


def a_request(cookie: str | None = None) -> Request:
    headers = [(b"cookie", cookie.encode())] if cookie else []
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/login",
            "headers": headers,
            "client": ("203.0.113.7", 50000),
            "query_string": b"",
        }
    )


@asynccontextmanager
async def first_factor(env: Env, request: Request) -> AsyncIterator[tuple[AsyncSession, Any]]:
    """A database session and the password sign-in verified in it (step 1)."""
    async with env.sessionmaker() as db:
        yield (
            db,
            await check_password(
                env.auth.runtime, request, db, "alice", PASSWORD, transport="session"
            ),
        )


class Journal:
    """Records the pipeline's observable steps, in order (``on_after_login`` by the hook)."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.hooks = AuthHooks(on_after_login=lambda *a, **k: self.steps.append("on_after_login"))

    def watch(self, env: Env, monkeypatch: pytest.MonkeyPatch) -> Journal:
        runtime = env.auth.runtime
        transport = env.auth.transports[0]
        self._wrap(monkeypatch, transport, "end_presented", "end presented")
        self._wrap(monkeypatch, transport, "issue_credential", "issue")
        self._wrap(monkeypatch, runtime.repo, "current_epoch", "epoch re-check")
        self._wrap(monkeypatch, runtime.lockout, "succeeded", "lockout success")
        return self

    def _wrap(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.steps.append(label)
            return await original(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)


async def signed_up(make_env: Any, **options: Any) -> Env:
    env: Env = await make_env(**options)
    assert (await register(env.client)).status_code == 200
    return env


async def test_the_default_second_factor_step_passes_every_sign_in_through() -> None:
    pending = Pending(a_request(), SessionTransport(), object(), None, {})  # type: ignore[arg-type]
    assert await no_second_factor(pending) is None


async def test_a_session_sign_in_runs_the_steps_in_order(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal()
    env = await signed_up(make_env, hooks=journal.hooks)
    journal.watch(env, monkeypatch)
    pipeline = SignInPipeline(env.auth.runtime)
    request, response = a_request(), Response()
    async with first_factor(env, request) as (db, verified):
        body = await pipeline.complete(
            request, response, db, env.auth.transports[0], verified.user, {},
            attempt=verified.attempt,
        )  # fmt: skip
    assert journal.steps == [
        "end presented",
        "issue",
        "epoch re-check",
        "lockout success",
        "on_after_login",
    ]
    assert set(body) == {"id", "username", "csrf_token"}
    assert len(await env.auth.sessions.list_for_user(1)) == 1
    cookies = response.headers.getlist("set-cookie")
    assert any(c.startswith("session_id=") for c in cookies)
    assert any(c.startswith("crudauth_device=") for c in cookies)


async def test_a_token_sign_in_has_nothing_to_re_check(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both tokens carry the epoch and every use compares it: no query after minting."""
    journal = Journal()
    env = await signed_up(
        make_env, transports=[BearerTransport(refresh="body")], hooks=journal.hooks
    )
    journal.watch(env, monkeypatch)
    request = a_request()
    async with first_factor(env, request) as (db, verified):
        body = await SignInPipeline(env.auth.runtime).complete(
            request, Response(), db, env.auth.transports[0], verified.user, {"scopes": []},
            attempt=verified.attempt,
        )  # fmt: skip
    assert journal.steps == ["end presented", "issue", "lockout success", "on_after_login"]
    assert set(body) == {"access_token", "token_type", "refresh_token"}


async def test_a_second_factor_challenge_stops_before_any_credential_is_issued(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal()
    env = await signed_up(make_env, hooks=journal.hooks)
    assert (await login(env.client)).status_code == 200
    presented = env.client.cookies["session_id"]
    journal.steps.clear()
    journal.watch(env, monkeypatch)
    asked: list[Pending] = []

    async def ask_for_a_code(pending: Pending) -> Challenge:
        asked.append(pending)
        return Challenge({"mfa_required": True})

    pipeline = SignInPipeline(env.auth.runtime, second_factor=ask_for_a_code)
    request, response = a_request(f"session_id={presented}"), Response()
    async with first_factor(env, request) as (db, verified):
        body = await pipeline.complete(
            request, response, db, env.auth.transports[0], verified.user,
            {"remember_me": True}, attempt=verified.attempt,
        )  # fmt: skip
    assert body == {"mfa_required": True}
    assert journal.steps == []  # nothing ended, issued, recorded as a success, or announced
    assert "set-cookie" not in response.headers
    assert len(await env.auth.sessions.list_for_user(1)) == 1  # only the presented one
    assert (await env.client.get("/private")).status_code == 200  # which still works
    assert asked[0].state.user_id == 1 and asked[0].state.epoch == 0
    assert asked[0].options == {"remember_me": True}


async def test_a_second_factor_that_refuses_issues_nothing(make_env: Any) -> None:
    env = await signed_up(make_env)

    async def refuse(pending: Pending) -> Challenge | None:
        raise InvalidCredentials("second factor refused", pending.user)

    request = a_request()
    async with first_factor(env, request) as (db, verified):
        with pytest.raises(InvalidCredentials):
            await SignInPipeline(env.auth.runtime, second_factor=refuse).complete(
                request, Response(), db, env.auth.transports[0], verified.user, {},
                attempt=verified.attempt,
            )  # fmt: skip
    assert await env.auth.sessions.list_for_user(1) == []


async def test_a_failed_epoch_re_check_leaves_no_session_and_keeps_the_lockout_slot(
    make_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal()
    env = await signed_up(make_env, hooks=journal.hooks)
    journal.watch(env, monkeypatch)
    transport = env.auth.transports[0]
    assert isinstance(transport, SessionTransport)
    issue = transport.issue_credential

    async def a_reset_commits_meanwhile(*args: Any) -> Any:
        issued = await issue(*args)
        async with env.sessionmaker() as other:
            await other.execute(update(User).values(token_version=User.token_version + 1))
            await other.commit()
        return issued

    monkeypatch.setattr(transport, "issue_credential", a_reset_commits_meanwhile)
    request = a_request()
    async with first_factor(env, request) as (db, verified):
        with pytest.raises(InvalidCredentials, match="credentials changed during sign-in"):
            await SignInPipeline(env.auth.runtime).complete(
                request, Response(), db, transport, verified.user, {},
                attempt=verified.attempt,
            )  # fmt: skip
    assert journal.steps == ["end presented", "issue", "epoch re-check"]  # no success, no hook
    assert await env.auth.sessions.list_for_user(1) == []


async def test_a_disabled_account_is_refused_at_the_account_state_step(make_env: Any) -> None:
    env = await signed_up(make_env)
    async with env.sessionmaker() as db:
        user = await env.auth.repo.get(db, 1)
        user.is_active = False  # as a first factor that does not check it would hand it over
        with pytest.raises(InvalidCredentials, match="inactive"):
            await SignInPipeline(env.auth.runtime).complete(
                a_request(), Response(), db, env.auth.transports[0], user, {}
            )
    assert await env.auth.sessions.list_for_user(1) == []


async def test_a_programmatic_password_check_reports_a_refusal_like_login(
    make_env: Any,
) -> None:
    """``authenticate_password`` without a request runs the same first factor as ``/login``:
    the same lockout, and the same ``on_login_failed`` report."""
    failed: list[str] = []
    hooks = AuthHooks(on_login_failed=lambda identifier, **kw: failed.append(kw["reason"]))
    env = await signed_up(make_env, hooks=hooks)
    async with env.sessionmaker() as db:
        with pytest.raises(Exception, match="Incorrect username or password"):
            await env.auth.authenticate_password(db, "alice", "wrong password!")
        assert await env.auth.authenticate_password(db, "alice", PASSWORD) is not None
    assert failed == ["invalid_credentials"]


# -- no more work than before ------------------------------------------------------------------


@asynccontextmanager
async def statements(env: Env) -> AsyncIterator[list[str]]:
    engine = env.sessionmaker.kw["bind"]
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def test_a_session_sign_in_reads_the_row_and_re_checks_the_epoch_only(
    make_env: Any,
) -> None:
    env = await signed_up(make_env)
    async with statements(env) as seen:
        assert (await login(env.client)).status_code == 200
    assert len(seen) == 2, seen  # the lookup by identifier, the committed epoch


async def test_a_token_sign_in_reads_the_row_only(make_env: Any) -> None:
    env = await signed_up(make_env, transports=[BearerTransport(refresh="body")])
    async with statements(env) as seen:
        r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200
    assert len(seen) == 1, seen


@contextmanager
def statements_now(env: Env) -> Iterator[list[str]]:
    engine = env.sessionmaker.kw["bind"]
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


#: (Redis commands, SQL statements) of a sign-in, then (the same) of an authenticated GET.
#: A pipeline counts once: the sign-in's record and index, and its lockout releases, are sent
#: together (tests/test_redis_round_trips.py counts the round trips on the wire).
COUNTS = {"session": (3, 2, 1, 1), "bearer": (4, 1, 0, 1)}


#: A script sent again after the server's script cache was flushed (by anyone: the cache is
#: server-wide): not a command of the request's own.
RELOADS = frozenset({"EVAL", "SCRIPT"})


@contextmanager
def redis_commands(env: Env) -> Iterator[list[str]]:
    """The commands the app sends to Redis: on its client, and on the session store's
    pipelined lane (pipelines count one per command they carry)."""
    client = env.auth.runtime.redis_client
    stores = [store for t in env.auth.transports for store in t.stores().values()]
    lane = next((store.lane for store in stores if getattr(store, "lane", None)), None)
    seen: list[str] = []
    patched: list[tuple[Any, str, Any]] = []

    def spy(owner: Any, attr: str) -> None:
        original = getattr(owner, attr)

        async def call(*args: Any, **kwargs: Any) -> Any:
            first = args[0]
            if isinstance(first, bytes):  # a packed RESP command: *N, $len, NAME, ...
                first = first.split(b"\r\n")[2].decode()
            name = str(first).upper()
            if name not in RELOADS:
                seen.append(name)
            return await original(*args, **kwargs)

        patched.append((owner, attr, original))
        setattr(owner, attr, call)

    spy(client, "execute_command")
    if lane is not None:
        spy(lane, "send")
    try:
        yield seen
    finally:
        for owner, attr, original in reversed(patched):
            setattr(owner, attr, original)


@pytest.mark.redis
@pytest.mark.parametrize("transport", ["session", "bearer"])
async def test_a_sign_in_and_a_request_on_redis_send_no_more_commands(
    make_env: Any, transport: str
) -> None:
    """Sessions, tokens, lockout and throttles in Redis: a sign-in and an authenticated GET
    cost the Redis commands and SQL statements they cost before the transports shared their
    rules (counted, not timed)."""
    transports = (
        [SessionTransport()] if transport == "session" else [BearerTransport(refresh="body")]
    )
    env = await signed_up(make_env, redis_url=REDIS_TEST_URL, transports=transports)
    headers = {}
    with redis_commands(env) as sent, statements_now(env) as sql:
        if transport == "session":
            assert (await login(env.client)).status_code == 200
        else:
            r = await env.client.post("/token", data={"username": "alice", "password": PASSWORD})
            assert r.status_code == 200
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    signin = (len(sent), len(sql))
    with redis_commands(env) as sent, statements_now(env) as sql:
        assert (await env.client.get("/private", headers=headers)).status_code == 200
    assert (*signin, len(sent), len(sql)) == COUNTS[transport], (sent, sql)
