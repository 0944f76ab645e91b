"""The ``crudauth`` command against test apps: in process (Typer's runner) on SQLite, and as
real processes (``python -m crudauth.cli``) on PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

import crudauth
from crudauth.cli import app
from tests.conftest import PG_SCHEMA, POSTGRES_URL, REDIS_TEST_URL, User

APP = "tests.apps.cli_app:auth"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
ROOT = Path(__file__).resolve().parents[1]
SRC = Path(crudauth.__file__).resolve().parents[1]

runner = CliRunner()


def fresh_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Any:
    """(Re)import ``tests.apps.cli_app`` under ``env`` and create its tables."""
    monkeypatch.setenv("CLI_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "tests.apps.cli_app", raising=False)
    import tests.apps.cli_app as module

    asyncio.run(module.create_tables())
    return module


def cli(*args: str, input: str | None = None) -> Any:
    return runner.invoke(app, [*args], input=input)


def http(
    module: Any,
    method: str,
    path: str,
    ip: str = "192.0.2.1",
    cookies: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=module.app, client=(ip, 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", cookies=cookies
        ) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(call())


def sign_in(module: Any, password: str = PASSWORD, ip: str = "192.0.2.1") -> httpx.Response:
    data = {"username": "alice", "password": password}
    return http(module, "POST", "/login", ip=ip, data=data)


def test_every_command_has_help():
    for args in (
        [], ["doctor"], ["keys"], ["keys", "generate"], ["keys", "status"], ["users"],
        ["users", "create"], ["users", "set-password"], ["users", "deactivate"],
        ["users", "unlock"], ["users", "revoke"], ["sessions"], ["sessions", "list"],
        ["sessions", "purge"],
    ):  # fmt: skip
        result = cli(*args, "--help")
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_keys_generate_prints_a_strong_new_secret_each_time():
    first, second = cli("keys", "generate").output.strip(), cli("keys", "generate").output.strip()
    assert len(first) == 64 and first != second
    assert crudauth.keys.secret_problem(first) is None


def test_an_unknown_app_path_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("CRUDAUTH_APP", raising=False)
    assert "name the app" in cli("doctor").output
    result = cli("doctor", "tests.apps.cli_app:nothing_here")
    assert result.exit_code == 2


def test_a_password_is_never_taken_from_the_command_line(monkeypatch, tmp_path):
    fresh_app(monkeypatch, tmp_path)
    result = cli("users", "create", "--app", APP, "--username", "alice", "--password", PASSWORD)
    assert result.exit_code == 2  # no such option
    assert "No such option" in result.output


def test_users_create_reads_the_password_from_stdin_and_applies_the_policy(monkeypatch, tmp_path):
    module = fresh_app(monkeypatch, tmp_path)
    result = cli("users", "create", "--app", APP, "--username", "root", "--superuser",
                 input="short\n")  # fmt: skip
    assert result.exit_code == 1 and "password rejected" in result.output
    result = cli("users", "create", "--app", APP, "--username", "alice",
                 "--email", "Alice@Example.com", "--superuser", input=PASSWORD + "\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output

    async def row() -> Any:
        async with module.SessionLocal() as db:
            return (await db.execute(select(User))).scalar_one()

    alice = asyncio.run(row())
    assert (alice.username, alice.email, alice.is_superuser) == ("alice", "alice@example.com", True)
    assert sign_in(module).status_code == 200
    again = cli("users", "create", "--app", APP, "--username", "alice", input=PASSWORD + "\n")
    assert again.exit_code == 1 and "exists" in again.output


def test_unlock_revoke_set_password_and_deactivate_act_on_a_live_account(monkeypatch, tmp_path):
    module = fresh_app(monkeypatch, tmp_path)
    monkeypatch.setenv("CRUDAUTH_APP", APP)
    cli("users", "create", "--username", "alice", "--email", "alice@example.com",
        input=PASSWORD + "\n")  # fmt: skip
    signed_in = sign_in(module)
    cookies = dict(signed_in.cookies)
    listing = cli("sessions", "list", "alice")
    assert "1 session(s)" in listing.output and cookies["session_id"] not in listing.output

    for i in range(5):  # from five addresses: only the identifier and the account lock
        assert sign_in(module, "wrong password!", ip=f"198.51.100.{i}").status_code == 401
    assert sign_in(module).status_code == 429
    assert cli("users", "unlock", "alice@example.com").exit_code == 0
    assert sign_in(module).status_code == 200  # the account and its username are unlocked too

    module.EVENTS.clear()
    assert http(module, "GET", "/private", cookies=cookies).status_code == 200
    assert "ended" in cli("users", "revoke", "alice").output
    assert http(module, "GET", "/private", cookies=cookies).status_code == 401
    assert [(e.name, e.actor) for e in module.EVENTS] == [("session.revoked", "admin")]

    assert cli("users", "set-password", "alice", input=f"{NEW_PASSWORD}\n").exit_code == 0
    assert sign_in(module).status_code == 401
    assert sign_in(module, NEW_PASSWORD).status_code == 200
    assert cli("users", "deactivate", "alice").exit_code == 0
    assert sign_in(module, NEW_PASSWORD).status_code == 401
    assert cli("sessions", "list", "alice").output.strip().endswith("0 session(s)")
    assert cli("users", "revoke", "nobody").exit_code == 1


def test_sessions_purge_deletes_expired_sql_rows_in_batches_with_progress(monkeypatch, tmp_path):
    module = fresh_app(monkeypatch, tmp_path, CLI_SQL_STORE="1")
    store = module.options["database_store"]
    past = time.time() - 86400

    async def fill() -> None:
        rows = [
            {"key": f"k{i}", "user_id": "1", "seq": i, "last_activity": past,
             "idle_timeout": 60.0, "absolute_expires_at": past + 60, "version": 0, "data": "{}"}
            for i in range(2500)
        ]  # fmt: skip
        now = time.time()
        live = {**rows[0], "key": "live", "last_activity": now, "absolute_expires_at": now + 7200}
        async with store.transaction() as db:
            await db.execute(insert(store.sessions_table), [*rows, live])

    asyncio.run(fill())
    result = cli("sessions", "purge", "--app", APP, "--batch-size", "1000")
    assert result.exit_code == 0, result.output
    assert "1000 row(s) deleted so far" in result.output
    assert "2000 row(s) deleted so far" in result.output
    assert "purged 2500 expired row(s)" in result.output

    async def left() -> list[str]:
        async with store.transaction() as db:
            return list((await db.execute(select(store.sessions_table.c.key))).scalars())

    assert asyncio.run(left()) == ["live"]


def test_purge_without_a_sql_store_says_redis_expires_by_itself(monkeypatch, tmp_path):
    fresh_app(monkeypatch, tmp_path)
    result = cli("sessions", "purge", "--app", APP)
    assert result.exit_code == 1 and "no SQL store" in result.output


def test_doctor_fails_a_development_setup_and_says_how_to_fix_it(monkeypatch, tmp_path):
    fresh_app(monkeypatch, tmp_path)
    result = cli("doctor", APP, "--json", "--workers", "4")
    assert result.exit_code == 1
    findings = {f["check"]: f for f in json.loads(result.output)}
    assert findings["shared state"]["status"] == "fail"  # memory stores, 4 workers
    assert findings["cookies (session)"]["status"] == "fail"
    assert findings["password hashing"]["status"] == "fail"  # t=1, m=8 KiB
    assert findings["production mode"]["status"] == "warn"
    assert findings["database"]["status"] == "ok"
    assert all(f["fix"] for f in findings.values() if f["status"] != "ok")
    text = cli("doctor", APP, "--workers", "1")
    assert "WARN  shared state" in text.output and "fix:" in text.output


def test_keys_status_says_when_a_fallback_can_go(monkeypatch, tmp_path):
    fresh_app(monkeypatch, tmp_path)
    result = cli("keys", "status", "--app", APP, "--rotated-at", "2020-01-01T00:00:00")
    assert (
        result.exit_code == 0 and "1 key(s)" in result.output and "nothing to drop" in result.output
    )


# -- real processes on PostgreSQL and Redis ---------------------------------------------------


@pytest.fixture
def production_env() -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{ROOT}",
        "CLI_DATABASE_URL": POSTGRES_URL,
        "CLI_DATABASE_SCHEMA": PG_SCHEMA,
        "CLI_REDIS_URL": REDIS_TEST_URL,
        "CLI_PRODUCTION": "1",
        "CRUDAUTH_APP": APP,
    }
    setup = "import asyncio, tests.apps.cli_app as m; asyncio.run(m.create_tables())"
    subprocess.run([sys.executable, "-c", setup], env=env, check=True, cwd=ROOT)
    yield env


def run(env: dict[str, str], *args: str, input: str | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "crudauth.cli", *args],
        env=env, cwd=ROOT, input=input, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.postgres
@pytest.mark.redis
def test_the_console_script_passes_a_production_deployment_and_manages_its_users(
    production_env,
):
    result = run(production_env, "doctor", "--json", "--workers", "4")
    findings = {f["check"]: f for f in json.loads(result.stdout)}
    assert result.returncode == 0, findings
    assert {f["status"] for f in findings.values()} == {"ok"}
    server = REDIS_TEST_URL.removeprefix("redis://")
    assert findings[f"redis ({server})"]["detail"].startswith("reachable, version ")
    assert f"redis maxmemory-policy ({server})" in findings
    assert f"clock skew ({server})" in findings
    assert "users" in findings["database"]["detail"]

    incomplete = run(production_env, "users", "create", "--username", "bob", input=PASSWORD + "\n")
    assert incomplete.returncode == 1  # this model requires an email
    assert "could not be created" in incomplete.stderr and "argon2" not in incomplete.stderr
    created = run(
        production_env, "users", "create", "--username", "alice", "--email", "a@example.com",
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert run(production_env, "users", "unlock", "alice").returncode == 0
    revoked = run(production_env, "users", "revoke", "alice")
    assert revoked.returncode == 0 and "0 session(s)" in revoked.stdout
    assert run(production_env, "sessions", "list", "alice").stdout.strip() == "0 session(s)"


@pytest.mark.postgres
def test_the_console_script_fails_when_the_tables_are_missing(production_env):
    env = {**production_env, "CLI_DATABASE_SCHEMA": "crudauth_no_such_schema"}
    result = run(env, "doctor", "--json")
    assert result.returncode == 1
    findings = {f["check"]: f for f in json.loads(result.stdout)}
    assert findings["database tables"]["status"] == "fail"
    assert "users" in findings["database tables"]["detail"]
