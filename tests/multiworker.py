"""Several real uvicorn processes sharing one Redis and one PostgreSQL schema.

Each worker is its own OS process, so nothing is shared unless a backend shares it. Requests
are released together through a barrier, the way an attacker's parallel burst would arrive.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Workers:
    """A pool of server processes running one app module."""

    app: str
    env: dict[str, str]
    count: int = 4
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, log_dir: Path, timeout: float = 120) -> None:
        # A bound, not a claim about speed: four interpreters importing the app on a loaded
        # two-core machine have taken more than 30 s.
        # This checkout's crudauth (src/) ahead of any installed copy, and its tests package.
        path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        env = {**os.environ, **self.env, "PYTHONPATH": path}
        if self.env.get("REDIS_URL"):
            # A clean store: sessions left by earlier modules of the run carry FrozenClock
            # times (2027), which outrank these workers' real-time sessions of the same user
            # id under the per-user cap, so a fresh sign-in would be evicted at once.
            redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()
        for index in range(self.count):
            port = free_port()
            log = log_dir / f"worker-{index}.log"
            self.ports.append(port)
            self.logs.append(log)
            with log.open("wb") as sink:  # the child keeps its own copy of the descriptor
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "uvicorn",
                            self.app,
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                            "--log-level",
                            "warning",
                            # Longer than the test clients' 5 s keep-alive expiry: with both at
                            # 5 s, a client could reuse a connection the worker was closing.
                            "--timeout-keep-alive",
                            "30",
                        ],
                        cwd=ROOT,
                        env=env,
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                    )
                )
        deadline = time.monotonic() + timeout
        for port, proc in zip(self.ports, self.procs, strict=True):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited early:\n{self.output()}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/_test/health", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"workers did not start:\n{self.output()}")
                time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs if log.exists())

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]


async def together(calls: Sequence[Callable[[], Awaitable[T]]], timeout: float = 30) -> list[T]:
    """Run every call at the same instant (a start barrier), bounded in time."""
    gate = asyncio.Event()

    async def run(call: Callable[[], Awaitable[T]]) -> T:
        await gate.wait()
        return await call()

    tasks = [asyncio.create_task(run(call)) for call in calls]
    await asyncio.sleep(0.05)  # let every task reach the gate
    gate.set()
    return list(await asyncio.wait_for(asyncio.gather(*tasks), timeout))


def session_cookies(response: httpx.Response) -> dict[str, str]:
    """The session and CSRF cookies a login set (read from Set-Cookie, Secure or not)."""
    jar: dict[str, Any] = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]
    return jar


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL schema holding the test apps' tables, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from tests.apps.common import Base
    from tests.conftest import POSTGRES_URL

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    async def run(statement: str, create: bool = False) -> None:
        engine = create_async_engine(POSTGRES_URL)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
                if create:
                    await conn.execute(text(f"SET search_path TO {name}"))
                    await conn.run_sync(Base.metadata.create_all)
        finally:
            await engine.dispose()

    asyncio.run(run(f"CREATE SCHEMA {name}", create=True))
    try:
        yield name
    finally:
        asyncio.run(run(f"DROP SCHEMA {name} CASCADE"))


#: How many times each multi-worker race runs: once in the default suite, 20 times with
#: ``CRUDAUTH_LONG=1`` (SECURITY.md §3 asks for 20 repetitions; the default suite stays cheap).
ROUNDS = 20 if os.environ.get("CRUDAUTH_LONG") == "1" else 1


_ADDRESSES = itertools.count()


def client_address() -> str:
    """A client address no other call of this test process has used.

    Per-address throttles and registration budgets then start fresh for every request that
    asks for one, however many tests (or ``--count`` repetitions) ran before in this process.
    Only ever a header value, never a network target.
    """
    n = next(_ADDRESSES) % 62500
    return f"198.51.{n // 250 + 1}.{n % 250 + 1}"


def forwarded_for() -> dict[str, str]:
    """A fresh client address for an app behind one trusted proxy.

    Per-address throttles would otherwise see every request of a run as 127.0.0.1.
    """
    return {"X-Forwarded-For": client_address()}


def fresh_counters(prefix: str) -> None:
    """Forget every rate-limit and lockout counter under ``prefix`` (the pool's own).

    A module's workers outlive its tests; without this, a test repeated in one process
    (``--count``) would inherit the budgets that earlier tests spent from 127.0.0.1.
    """
    from tests.conftest import REDIS_TEST_URL

    drop_keys(REDIS_TEST_URL, f"{prefix}*")


def drop_keys(url: str, pattern: str) -> None:
    """Delete the keys matching ``pattern`` (a run's own prefix) from a shared Redis."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    """A SQLite file holding the test apps' tables, for workers on one machine."""
    from sqlalchemy import create_engine

    from tests.apps.common import Base

    path = directory / "app.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        Base.metadata.create_all(engine)
    finally:
        engine.dispose()
    yield f"sqlite+aiosqlite:///{path}"
