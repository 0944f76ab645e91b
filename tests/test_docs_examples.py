"""Run every program in examples/docs/ over HTTP, so the documentation cannot rot.

Each example is imported fresh with ``SECRET_KEY`` and ``DATABASE_URL`` set for the test, its
lifespan is run, and it is driven through ``httpx.ASGITransport`` the way a client would.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import logging
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import bcrypt
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select, update

from crudauth import ConfigurationError
from crudauth.errors import StoreUnavailable
from tests.conftest import REDIS_TEST_URL

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = REDIS_TEST_URL
EXAMPLES = sorted(p for p in (ROOT / "examples" / "docs").glob("*.py") if p.name != "__init__.py")
PASSWORD = "correct horse battery 9"

Loader = Callable[..., ModuleType]


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Loader:
    """Import ``examples.docs.<name>`` afresh, with its environment set for this test."""
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(36))  # 48 random characters
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")

    def load(name: str, **env: str) -> ModuleType:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        module_name = f"examples.docs.{name}"
        sys.modules.pop(module_name, None)
        module = importlib.import_module(module_name)
        del sys.modules[module_name]  # no example (nor its engine) outlives its test
        return module

    return load


@asynccontextmanager
async def serve(
    module: ModuleType, base_url: str = "http://testserver"
) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """Run the example's lifespan; yield a factory of clients (one cookie jar each).

    Examples that keep the default ``CookieConfig(secure=True)`` need an ``https://`` base URL,
    or the client would not send the cookies back.
    """
    clients: list[httpx.AsyncClient] = []
    transport = httpx.ASGITransport(app=module.app)

    def new_client() -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=transport, base_url=base_url)
        clients.append(client)
        return client

    async with module.app.router.lifespan_context(module.app):
        try:
            yield new_client
        finally:
            for client in clients:
                await client.aclose()
    # Its shutdown closed what it opened: a connection left in the pool would outlive the app.
    assert module.engine.pool.checkedin() == 0


async def register(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("password", PASSWORD)
    return await client.post("/register", json=body)


async def login(client: httpx.AsyncClient, username: str, **form: Any) -> httpx.Response:
    form.setdefault("password", PASSWORD)
    return await client.post("/login", data={"username": username, **form})


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """``Set-Cookie`` headers by cookie name, lower-cased for attribute checks."""
    return {
        header.split("=", 1)[0]: header.lower()
        for header in response.headers.get_list("set-cookie")
    }


def test_every_example_is_shown_in_the_docs() -> None:
    pages = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    assert EXAMPLES, "no examples found"
    for example in EXAMPLES:
        assert example.read_text().strip() in pages, f"{example.name} is not copied into docs/"


async def test_quickstart(load_example: Loader) -> None:
    example = load_example("quickstart")
    async with serve(example) as new_client:
        client = new_client()
        r = await register(client, email="alice@example.com", username="alice")
        assert r.status_code == 200, r.text
        assert r.json() == {"id": 1, "email": "alice@example.com", "username": "alice"}

        assert (await client.get("/hello")).status_code == 401
        r = await login(client, "alice")
        assert r.status_code == 200, r.text
        csrf = r.json()["csrf_token"]
        cookies = set_cookies(r)
        assert "httponly" in cookies["session_id"]
        assert "httponly" not in cookies["csrf_token"]

        r = await client.get("/hello")
        assert r.json() == {"message": "Hello, user 1"}
        r = await client.get("/me")
        assert r.json()["username"] == "alice"
        assert r.json()["via"] == "session"

        assert (await client.post("/logout")).status_code == 403
        r = await client.post("/logout", headers={"X-CSRF-Token": csrf})
        assert r.json() == {"detail": "Logged out"}
        assert (await client.get("/hello")).status_code == 401


async def test_existing_table(load_example: Loader) -> None:
    example = load_example("existing_table")
    async with serve(example) as new_client:
        client = new_client()
        r = await register(client, email="Alice@Example.com", username="Alice")
        assert r.status_code == 200, r.text
        assert r.json()["email"] == "alice@example.com"

        r = await register(client, email="other@example.com", username="ALICE")
        assert r.status_code == 422
        assert r.json()["detail"] == "Username already taken"

        # Either login field, in any case.
        assert (await login(new_client(), "alice@EXAMPLE.com")).status_code == 200
        assert (await login(client, "aLiCe")).status_code == 200
        r = await client.get("/profile")
        assert r.json() == {"account_id": 1, "login": "Alice", "admin": False}

        async with example.SessionLocal() as db:
            account = (await db.scalars(select(example.Account))).one()
            assert account.pw_hash.startswith("$argon2id$")
            assert account.enabled is True


async def test_username_only(load_example: Loader) -> None:
    example = load_example("username_only")
    async with serve(example) as new_client:
        client = new_client()
        r = await register(client, username="zed")
        assert r.status_code == 200, r.text
        assert r.json() == {"id": 1, "email": None, "username": "zed"}
        assert (await login(client, "ZED")).status_code == 200
        assert (await client.get("/lobby")).json() == {"player": "zed"}
    with pytest.raises(ConfigurationError):
        example.auth.current_user(verified=True)  # no recovery factor to be verified


async def test_sessions(load_example: Loader) -> None:
    old_key = secrets.token_urlsafe(36)
    example = load_example("sessions", SECRET_KEY_FALLBACKS=old_key)
    assert example.auth.runtime.keys.size == 2
    async with serve(example) as new_client:
        client = new_client()
        assert (await register(client, email="a@example.com", username="alice")).status_code == 200

        # Ordinary session: browser-session cookies; remember-me: 14-day cookies.
        r = await login(client, "alice")
        assert "max-age" not in set_cookies(r)["session_id"]
        assert "samesite=lax" in set_cookies(r)["session_id"]
        r = await login(client, "alice", remember_me="true")
        assert "max-age=1209600" in set_cookies(r)["session_id"]
        csrf = r.json()["csrf_token"]
        assert client.cookies["csrf_token"] == csrf

        # CSRF: GET needs nothing; POST needs this session's token in the header.
        assert (await client.get("/todos")).status_code == 200
        r = await client.post("/todos", json={"title": "x"})
        assert (r.status_code, r.json()["detail"]) == (403, "Missing CSRF token")
        assert r.headers["x-csrf-error"] == "true"
        r = await client.post("/todos", json={"title": "x"}, headers={"X-CSRF-Token": "0" * 43})
        assert (r.status_code, r.json()["detail"]) == (403, "Invalid CSRF token")
        r = await client.post("/todos", json={"title": "x"}, headers={"X-CSRF-Token": csrf})
        assert r.json() == {"owner": 1, "title": "x"}

        # Fixation: signing in ends the session the browser presented.
        before = client.cookies["session_id"]
        assert (await login(client, "alice")).status_code == 200
        stale = new_client()
        stale.cookies.set("session_id", before)
        assert (await stale.get("/todos")).status_code == 401

        # The cap: a 4th concurrent session ends the least recently used one.
        others = [new_client() for _ in range(3)]
        for other in others:
            assert (await login(other, "alice")).status_code == 200
        assert (await client.get("/todos")).status_code == 401
        for other in others:
            assert (await other.get("/todos")).status_code == 200

        # A login a browser marks as cross-site is refused.
        r = await new_client().post(
            "/login",
            data={"username": "alice", "password": PASSWORD},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert (r.status_code, r.json()["detail"]) == (
            403,
            "Cross-site login requests are not allowed.",
        )


async def test_gates(load_example: Loader) -> None:
    example = load_example("gates")
    async with serve(example) as new_client:
        alice, bob = new_client(), new_client()
        assert (await alice.get("/feed")).json() == {"feed": "public"}
        assert (await alice.get("/dashboard")).status_code == 401

        await register(alice, email="alice@example.com", username="alice")
        await register(bob, email="bob@staff.example.com", username="bob")
        csrf = (await login(alice, "alice")).json()["csrf_token"]
        await login(bob, "bob")

        assert (await alice.get("/feed")).json() == {"feed": "personal"}
        assert (await alice.get("/dashboard")).json() == {"user_id": 1, "via": "session"}

        r = await alice.get("/admin")
        assert (r.status_code, r.json()["detail"]) == (403, "Insufficient privileges")
        r = await alice.get("/billing")
        assert (r.status_code, r.json()["detail"]) == (403, "Recovery factor not verified")
        r = await alice.get("/staff")
        assert (r.status_code, r.json()["detail"]) == (403, "Access denied")
        assert (await bob.get("/staff")).json() == {"area": "staff"}

        async with example.SessionLocal() as db:
            await db.execute(
                update(example.User)
                .where(example.User.username == "alice")
                .values(is_superuser=True, email_verified=True)
            )
            await db.commit()
        assert (await alice.get("/admin")).json() == {"area": "admin"}
        assert (await alice.get("/billing")).json() == {"area": "billing"}

        r = await alice.post("/settings", headers={"X-CSRF-Token": csrf})
        assert r.json() == {"saved": "yes"}

        # A credential that is present but wrong is never treated as anonymous.
        stranger = new_client()
        stranger.cookies.set("session_id", secrets.token_urlsafe(32))
        assert (await stranger.get("/feed")).status_code == 401


async def test_performance(load_example: Loader) -> None:
    example = load_example("performance")
    async with serve(example) as new_client:
        admin, bob = new_client(), new_client()
        await register(admin, email="admin@example.com", username="admin")
        await register(bob, email="bob@example.com", username="bob")
        async with example.SessionLocal() as db:
            await db.execute(
                update(example.User).where(example.User.id == 1).values(is_superuser=True)
            )
            await db.commit()
        csrf = (await login(admin, "admin")).json()["csrf_token"]
        await login(bob, "bob")

        assert (await bob.get("/profile")).json() == {"username": "bob", "same_session": True}
        assert (await bob.get("/feed")).json() == {"user_id": 2, "row_loaded": False}
        assert (await bob.get("/users/1")).json() == {"username": "admin"}
        assert (await bob.get("/users/9")).status_code == 404

        r = await bob.post("/users/2/deactivate", headers={"X-CSRF-Token": "x" * 43})
        assert r.status_code == 403
        r = await admin.post("/users/2/deactivate", headers={"X-CSRF-Token": csrf})
        assert r.json() == {"sessions_ended": 1}
        # Refused at once, on the claims-only route too.
        assert (await bob.get("/feed")).status_code == 401
        assert (await bob.get("/profile")).status_code == 401
        assert (await login(bob, "bob")).status_code == 401


def reference_format(password: str) -> str:
    """A hash as earlier crudauth versions stored it: bcrypt over base64(SHA-256(password))."""
    digest = base64.b64encode(hashlib.sha256(password.encode()).digest())
    return bcrypt.hashpw(digest, bcrypt.gensalt(rounds=4)).decode()


def django_pbkdf2(password: str) -> str:
    """A hash as Django stores it: ``pbkdf2_sha256$<iterations>$<salt>$<base64 digest>``."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), b"salt1234", 1000)
    return f"pbkdf2_sha256$1000$salt1234${base64.b64encode(digest).decode()}"


async def test_passwords(load_example: Loader) -> None:
    example = load_example("passwords")
    async with serve(example) as new_client:
        client = new_client()
        r = await register(client, email="a@example.com", username="alice", password="short1")
        assert r.status_code == 422
        assert [e["type"] for e in r.json()["detail"]] == ["string_too_short"]
        r = await register(client, email="a@example.com", username="alice", password="x" * 12)
        assert r.json()["detail"][0]["msg"] == "Password must contain a digit"
        r = await register(
            client, email="a@example.com", username="alice", password="alice-and-12345"
        )
        assert r.json()["detail"][0]["msg"] == "Password must not contain the username"
        r = await register(client, email="a@example.com", username="alice")
        assert r.status_code == 200, r.text

        plain_bcrypt = bcrypt.hashpw(b"old password 1", bcrypt.gensalt(rounds=4)).decode()
        async with example.SessionLocal() as db:
            await example.import_user(
                db, username="bob", email="bob@example.com", password_hash=plain_bcrypt
            )
            await example.import_user(
                db,
                username="carol",
                email="carol@example.com",
                password_hash=reference_format("old password 2"),
            )
            await example.import_user(
                db, username="svc", email="svc@example.com", password_hash=None
            )
            await example.import_user(
                db, username="dan", email="dan@example.com", password_hash=django_pbkdf2("old 3")
            )

        # Imported hashes keep working, and are upgraded to argon2id at the first sign-in.
        for username, password in (
            ("bob", "old password 1"),
            ("carol", "old password 2"),
            ("dan", "old 3"),  # through the legacy verifier
        ):
            signed_in = new_client()
            r = await login(signed_in, username, password=password)
            assert r.status_code == 200, r.text
            assert (await signed_in.get("/account")).json() == {"username": username}
            async with example.SessionLocal() as db:
                user = await db.scalar(
                    select(example.User).where(example.User.username == username)
                )
                assert user is not None
                assert user.hashed_password.startswith("$argon2id$")
            assert (await login(new_client(), username, password=password)).status_code == 200

        for password in ("", "!", "anything at all"):
            r = await login(new_client(), "svc", password=password)
            assert r.status_code in (401, 422)
        r = await login(new_client(), "svc", password="anything at all")
        assert r.json()["detail"] == "Incorrect username or password"


def memory_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "crudauth" and "in-memory backend" in r.getMessage()
    ]


@pytest.mark.redis
async def test_production_redis(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crudauth")
    # Production mode must accept this configuration: a strong key, Secure cookies, no memory.
    monkeypatch.setenv("CRUDAUTH_ENV", "production")
    example = load_example("production_redis", REDIS_URL=REDIS_URL, TRUSTED_PROXY_HOPS="1")
    assert example.auth.production is True
    assert memory_warnings(caplog) == []
    assert example.auth.sessions.store.kind == "redis"
    assert example.auth.tokens.kind == "redis"
    assert example.auth.rate_limiter.kind == "redis"

    inspector = Redis.from_url(REDIS_URL)
    try:
        async with serve(example, base_url="https://testserver") as new_client:
            client = new_client()
            # One trusted proxy: the client address is the last X-Forwarded-For entry. A fresh
            # address per run, because per-address counters in the shared Redis outlive a run.
            address = f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
            client.headers["X-Forwarded-For"] = f"203.0.113.7, {address}"
            assert (await register(client, email="a@example.com", username="alice")).is_success
            r = await login(client, "alice")
            assert r.status_code == 200, r.text
            assert "secure" in set_cookies(r)["session_id"]
            csrf = r.json()["csrf_token"]
            assert (await client.get("/hello")).json() == {"message": "Hello, user 1"}
            # That request's session check went over the worker's pipelined lane.
            lane = example.auth.sessions.store.lane
            assert lane is not None and lane._connections

            # The record is in Redis, under a keyed hash of the id, indexed under its user.
            session_id = client.cookies["session_id"]
            key = f"crudauth:session:{example.auth.sessions.storage_key(session_id)}"
            record = await inspector.hgetall(key)
            assert record, "the session is not in Redis"
            assert session_id.encode() not in b"".join([*record.keys(), *record.values()])
            assert await inspector.zscore("crudauth:{u:1}:sessions", key) is not None
            assert record[b"ip_address"] == f'"{address}"'.encode()

            # Single-use values live in Redis too.
            assert await example.auth.tokens.set_if_absent("docs-test", "v", 30)
            assert await inspector.exists("crudauth:kv:docs-test") == 1
            assert await example.auth.tokens.get_and_delete("docs-test") == "v"

            r = await client.post("/logout", headers={"X-CSRF-Token": csrf})
            assert r.json() == {"detail": "Logged out"}
            assert await inspector.exists(key) == 0
            assert (await client.get("/hello")).status_code == 401
    finally:
        await inspector.aclose()
    assert memory_warnings(caplog) == []


async def test_production_redis_refuses_to_start_without_redis(
    load_example: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crudauth")
    example = load_example("production_redis", REDIS_URL="redis://127.0.0.1:1/0")
    assert memory_warnings(caplog) == []
    with pytest.raises(StoreUnavailable, match="cannot reach Redis"):
        async with serve(example):
            pass  # never reached: initialize() fails, crudauth does not fall back to memory
    # The lifespan stopped before its cleanup (a real process would exit here).
    await example.auth.shutdown()
    await example.engine.dispose()


async def test_production_sql(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crudauth")
    monkeypatch.setenv("CRUDAUTH_ENV", "production")
    example = load_example("production_sql")
    assert memory_warnings(caplog) == []
    assert example.auth.sessions.store.kind == "database"
    assert example.auth.tokens.kind == "database"
    assert example.auth.rate_limiter.kind == "database"
    sessions = example.store.sessions_table

    async with serve(example, base_url="https://testserver") as new_client:
        client = new_client()
        assert (await register(client, email="a@example.com", username="alice")).is_success
        r = await login(client, "alice")
        assert r.status_code == 200, r.text
        csrf = r.json()["csrf_token"]
        assert (await client.get("/hello")).json() == {"message": "Hello, user 1"}

        session_id = client.cookies["session_id"]
        async with example.SessionLocal() as db:
            rows = (await db.execute(select(sessions))).all()
        assert [(row.key, row.user_id) for row in rows] == [
            (example.auth.sessions.storage_key(session_id), "1")
        ]
        assert session_id not in rows[0].data

        # Single-use values: one winner, then gone.
        assert await example.auth.tokens.set_if_absent("docs-test", "v", 30)
        assert not await example.auth.tokens.set_if_absent("docs-test", "w", 30)
        assert await example.auth.tokens.get_and_delete("docs-test") == "v"
        assert await example.auth.tokens.get_and_delete("docs-test") is None

        assert (await client.post("/logout", headers={"X-CSRF-Token": csrf})).is_success
        async with example.SessionLocal() as db:
            assert (await db.execute(select(sessions))).all() == []
        assert await example.store.purge_expired() == 0
    assert memory_warnings(caplog) == []


def test_store_conformance_example() -> None:
    """The conformance example is a test module of its own: run it as its reader would."""
    example = ROOT / "examples" / "docs" / "store_conformance.py"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout
