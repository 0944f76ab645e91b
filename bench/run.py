"""crudauth's request-path benchmark: ``.venv/bin/python bench/run.py [--quick]``.

Starts ``bench_app`` under uvicorn (one worker, pinned to CPU 0 when ``taskset`` exists),
creates users, signs in, and drives five routes of the same app from another process (wrk if
installed, else a small asyncio HTTP/1.1 client), pinned to CPU 1:

    open       no auth, no database
    floor      the user row by primary key through the app's get_session, no auth
    shape      the same read inside a dependency shaped like current_user, no auth
    protected  current_user()                (session cookie or bearer token)
    claims     current_user(load_user=False)

Every route of a configuration gets the same requests apart from the path: the credential
header goes to open, floor and shape too (they ignore it), as a browser sends its cookies and an
API client its token on every request, so that parsing the header counts the same on every
route and the ratios isolate what crudauth adds. Routes alternate over several rounds; medians
and ratios are printed. It also counts Redis
commands per request (MONITOR, filtered to the bench's database), SQL statements per request
(a counter inside the app), the server's peak RSS, and a protected GET's throughput and
p50/p99 while two clients sign in continuously.

Configurations: memory + SQLite and Redis + PostgreSQL; session and bearer; one credential
shared by every connection and many (one per user). With Redis, ``--client`` chooses the client
of the per-request reads (``bench/clients.py``: crudauth's lane, redis-py, valkey-glide,
coredis); given several times, the Redis + PostgreSQL store runs once per client in the same
run, each with its own ``open`` and ``floor`` to take ratios against.

Loopback only; bounded in time; cleans up its PostgreSQL schema (``crudauth_bench``, or
``BENCH_PG_SCHEMA``) and its Redis keys (database 15, or ``BENCH_REDIS_DB``; keys under
``crudauth-bench:`` plus the claims entries of its own user ids, which start at 10**9).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
PG_URL = os.environ.get("BENCH_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
#: Overridable so that two benches on one machine do not share a schema or a Redis database.
PG_SCHEMA = os.environ.get("BENCH_PG_SCHEMA", "crudauth_bench")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "15"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
FIRST_ID = 10**9  # bench user ids: far from any test's
PASSWORD = "bench password that is long enough"  # noqa: S105 - bench users only
CONNECTIONS = 32
ROUTES = ("open", "floor", "shape", "protected", "claims")


# -- setup ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


async def create_users(db_url: str, count: int) -> None:
    """A fresh table with ``count`` users sharing one production-strength hash."""
    sys.path.insert(0, str(HERE))
    os.environ["BENCH_DB_URL"] = db_url
    import bench_app
    from sqlalchemy import text

    from crudauth import PasswordHasher

    engine = bench_app.make_engine(db_url)
    if db_url.startswith("postgresql"):
        from sqlalchemy.ext.asyncio import create_async_engine

        admin = create_async_engine(PG_URL)
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
            await conn.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
        await admin.dispose()
    hashed = PasswordHasher().hash(PASSWORD)
    async with engine.begin() as conn:
        await conn.run_sync(bench_app.Base.metadata.drop_all)
        await conn.run_sync(bench_app.Base.metadata.create_all)
        table = bench_app.User.__table__
        await conn.execute(
            table.insert(),
            [
                {
                    "id": FIRST_ID + i,
                    "username": f"bench{i}",
                    "username_key": f"bench{i}",
                    "email": f"bench{i}@example.com",
                    "hashed_password": hashed,
                    "is_active": True,
                    "is_superuser": False,
                    "email_verified": True,
                    "token_version": 0,
                }
                for i in range(count)
            ],
        )
    await bench_app.engine.dispose()
    await engine.dispose()


async def drop_schema() -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
    await admin.dispose()


def clean_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for pattern in ("crudauth-bench:*", f"crudauth:*{{u:{str(FIRST_ID)[:4]}*"):
        keys = list(client.scan_iter(pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.close()


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_mb(self) -> float:
        # ``taskset`` execs the interpreter: the server is this very process id.
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(env: dict[str, str], tmp: Path, loop: str = "asyncio") -> Server:
    port = free_port()
    log = tmp / f"server-{port}.log"
    cmd = [
        *pin(0),
        PYTHON,
        "-m",
        "uvicorn",
        "bench_app:app",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        # Explicit, so that installing uvloop or httptools does not change what is measured:
        # the reference numbers were taken on asyncio with h11.
        "--loop",
        loop,
        "--http",
        "h11",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        cmd, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=tmp
    )
    server = Server(proc, port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.base}/bench/open", timeout=1):  # noqa: S310
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


def post_form(url: str, data: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    body = urllib.parse.urlencode(data).encode()
    req = urllib.request.Request(url, data=body, method="POST")  # noqa: S310
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        return json.loads(resp.read()), resp.headers.get_all("set-cookie") or []


def sign_in(server: Server, transport: str, users: int) -> list[str]:
    """One ``Cookie:`` or ``Authorization:`` header value per user."""
    out = []
    for i in range(users):
        form = {"username": f"bench{i}", "password": PASSWORD}
        if transport == "session":
            _, cookies = post_form(f"{server.base}/login", form)
            jar = [c.split(";", 1)[0] for c in cookies]
            out.append("; ".join(c for c in jar if c.startswith(("session_id=", "csrf_token="))))
        else:
            body, _ = post_form(f"{server.base}/token", form)
            out.append(f"Bearer {body['access_token']}")
    return out


# -- load -------------------------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    #: Requests answered (0 when the load tool does not say; then ``rps`` times the seconds).
    requests: int = 0


def _ms(value: str) -> float:
    found = re.match(r"([\d.]+)([a-z]+)", value)
    if found is None:
        raise RuntimeError(f"cannot read a latency from {value!r}")
    number, unit = found.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, seconds: float, header: str | None, values: list[str]) -> Result:
    script = ""
    if values:
        quoted = ",".join(json.dumps(v) for v in values)
        script = (
            f"local v = {{{quoted}}}\nlocal i = 0\n"
            "request = function()\n  i = i % #v + 1\n"
            f'  return wrk.format("GET", nil, {{["{header}"] = v[i]}})\nend\n'
        )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(  # noqa: S603
            [
                *pin(1),
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                f.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"(?m)^\s+50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"(?m)^\s+99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Result(rps, p50, p99, errors)


async def _py_load(url: str, seconds: float, header: str | None, values: list[str]) -> Result:
    """A minimal keep-alive HTTP/1.1 client: the fallback when wrk is not installed."""
    parts = urllib.parse.urlsplit(url)
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def connection(n: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        i = n
        while time.monotonic() < stop:
            extra = f"{header}: {values[i % len(values)]}\r\n" if values else ""
            i += 1
            request = f"GET {parts.path} HTTP/1.1\r\nHost: bench\r\n{extra}\r\n"
            started = time.perf_counter()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 2"):
                errors += 1
        writer.close()

    began = time.monotonic()
    await asyncio.gather(*(connection(n) for n in range(CONNECTIONS)))
    elapsed = time.monotonic() - began
    latencies.sort()
    return Result(
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
        errors,
        len(latencies),
    )


def _py_load_entry(args: tuple[str, float, str | None, list[str]], out: Any) -> None:
    out.put(asyncio.run(_py_load(*args)))


def drive(
    url: str,
    seconds: float,
    header: str | None = None,
    values: list[str] = (),  # type: ignore[assignment]
    tolerate: bool = False,
) -> Result:
    values = list(values)
    if shutil.which("wrk"):
        result = wrk(url, seconds, header, values)
    else:
        queue: Any = multiprocessing.Queue()
        proc = multiprocessing.Process(
            target=_py_load_entry, args=((url, seconds, header, values), queue)
        )
        proc.start()
        if pin(1):
            os.sched_setaffinity(proc.pid, {1})
        result = queue.get(timeout=seconds + 60)
        proc.join()
    # A rare client-side timeout (wrk gives up after 2 s) is reported, not fatal; anything
    # more is a broken run.
    if result.errors > max(1, result.rps * seconds / 1000) and not tolerate:
        raise RuntimeError(f"{result.errors} failed requests on {url}")
    if result.errors:
        print(f"  note: {result.errors} failed request(s) on {url}", flush=True)
    return result


def _login_loop(base: str, index: int, stop_at: float, counter: Any) -> None:
    if pin(1):
        os.sched_setaffinity(0, {1})
    form = {"username": f"bench{index}", "password": PASSWORD}
    while time.monotonic() < stop_at:
        post_form(f"{base}/login", form)
        with counter.get_lock():
            counter.value += 1


@contextmanager
def logging_in(base: str, seconds: float, clients: int = 2) -> Iterator[Any]:
    counter = multiprocessing.Value("i", 0)
    stop_at = time.monotonic() + seconds + 1
    procs = [
        multiprocessing.Process(target=_login_loop, args=(base, 100 + n, stop_at, counter))
        for n in range(clients)
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)  # both clients are hashing before the measurement starts
    try:
        yield counter
    finally:
        for p in procs:
            p.join(seconds + 30)


# -- counting ---------------------------------------------------------------------------------


def get(url: str, header: str | None = None, value: str | None = None) -> bytes:
    req = urllib.request.Request(url)  # noqa: S310
    if header and value:
        req.add_header(header, value)
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return bytes(resp.read())


def sql_per_request(server: Server, path: str, header: str | None, value: str | None) -> float:
    n = 50
    get(f"{server.base}{path}", header, value)  # warm: fills caches, first connections
    before = json.loads(get(f"{server.base}/bench/sql"))["statements"]
    for _ in range(n):
        get(f"{server.base}{path}", header, value)
    after = json.loads(get(f"{server.base}/bench/sql"))["statements"]
    return (after - before) / n


def redis_per_request(
    server: Server, path: str, header: str | None, value: str | None
) -> tuple[float, float]:
    """(commands, client round trips) per request, from MONITOR on the bench database."""
    import redis

    n = 50
    get(f"{server.base}{path}", header, value)
    client = redis.Redis.from_url(REDIS_URL)
    signal_client = redis.Redis.from_url(REDIS_URL)
    signal_client.ping()  # connected (and SELECTed) before MONITOR starts
    marker = f"bench-marker-{os.getpid()}-{time.monotonic_ns()}"
    seen = {"all": 0, "client": 0}
    ready = threading.Event()

    def listen() -> None:
        with client.monitor() as m:
            ready.set()
            for cmd in m.listen():
                if cmd.get("db") != REDIS_DB:
                    continue
                if marker in cmd.get("command", ""):
                    return
                seen["all"] += 1
                if cmd.get("client_type") != "lua":
                    seen["client"] += 1

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.2)
    for _ in range(n):
        get(f"{server.base}{path}", header, value)
    time.sleep(0.2)
    signal_client.echo(marker)
    thread.join(10)
    client.close()
    signal_client.close()
    return seen["all"] / n, seen["client"] / n


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Config:
    store: str  # "memory+sqlite" | "redis+postgres"
    transport: str  # "session" | "bearer"
    credentials: int  # 1 = one shared credential; more = one per user
    rounds: dict[str, list[Result]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        many = "one" if self.credentials == 1 else f"{self.credentials} users"
        return f"{self.store:15} {self.transport:8} {many:9}"


def median(results: list[Result]) -> float:
    return statistics.median(r.rps for r in results)


def paired(top: list[Result], bottom: list[Result]) -> str:
    """The median of per-round ratios, with their range.

    Each round measures both routes within seconds of each other, so a per-round ratio cancels
    the machine's slow drift (another process waking up, the database's own housekeeping),
    which a ratio of medians taken from different rounds does not.
    """
    ratios = sorted(t.rps / b.rps for t, b in zip(top, bottom, strict=True))
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}"
    return f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"


SERVICES = ("postgres", "redis-server")


def _threads(name: str) -> list[int]:
    """Every thread of every process called ``name`` (pgrep's exact-name match)."""
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, check=False)  # noqa: S603, S607
    threads = []
    for pid in found.stdout.split():
        with suppress(FileNotFoundError):
            threads += [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    return threads


@contextmanager
def services_on_cpu1(enabled: bool) -> Iterator[str]:
    """Move PostgreSQL's and Redis's processes to the load core for the run, and back.

    The issue's setup gives the server one core and the load the other. Left unpinned, the
    database and Redis processes are woken on the server's core part of the time (the
    scheduler favours the waker's core) and take CPU from the very worker being measured:
    more for the routes that use them more, so ratios move with it. In production they run on
    other hosts. Measured on the development machine with 20 alternating pairs of 2 s each,
    session protected / floor was 0.86 unpinned and 0.93 pinned, the floor against itself 0.99
    and 1.01. ``--unpinned-services`` keeps the scheduler's placement. Each thread's previous
    affinity is restored afterwards. Yields how the run was set up, for the report.
    """
    if not enabled:
        yield "PostgreSQL and Redis unpinned"
        return
    if not (shutil.which("pgrep") and pin(1)):
        yield "PostgreSQL and Redis unpinned (no pgrep, taskset or second CPU)"
        return
    moved: dict[int, set[int]] = {}
    for name in SERVICES:
        for tid in _threads(name):
            try:
                before = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, {1})
            except (PermissionError, ProcessLookupError):
                continue
            moved[tid] = before
    try:
        yield (
            "PostgreSQL and Redis on CPU 1"
            if moved
            else "PostgreSQL and Redis unpinned (not permitted)"
        )
    finally:
        for tid, before in moved.items():
            with suppress(ProcessLookupError):
                os.sched_setaffinity(tid, before)


def run_store(
    store: str, args: argparse.Namespace, tmp: Path, report: list[str], client: str = "lane"
) -> None:
    many = 16 if args.quick else 64
    users = 100 + 2  # 0..many-1 for load, 100 and 101 for the login clients
    label = store
    if store == "redis+postgres":
        db_url, env = PG_URL, {"BENCH_DB_URL": PG_URL, "BENCH_REDIS_URL": REDIS_URL}
        env["BENCH_REDIS_CLIENT"] = client
        label = f"{store} {client}"
        clean_redis()
    else:
        db_url = f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
        env = {"BENCH_DB_URL": db_url, "BENCH_REDIS_URL": ""}
    env |= {"BENCH_PG_SCHEMA": PG_SCHEMA, "BENCH_FLOOR_USER_ID": str(FIRST_ID)}
    asyncio.run(create_users(db_url, users))
    server = start_server(env, tmp, args.loop)
    try:
        configs = [Config(store, t, n) for t in ("session", "bearer") for n in (1, many)]
        creds = {
            (c.transport, c.credentials): sign_in(server, c.transport, c.credentials)
            for c in configs
        }
        header = {"session": "Cookie", "bearer": "Authorization"}
        seconds = args.seconds
        # Warm-up: connections, JIT-free Python caches, the bearer claims entries.
        for c in configs:
            drive(
                f"{server.base}/bench/claims",
                1,
                header[c.transport],
                creds[c.transport, c.credentials],
            )
        for rnd in range(args.rounds):
            for c in configs:
                values = creds[c.transport, c.credentials]
                # Each round starts on another route, so that drift over a round (the machine
                # is shared) does not always land on the same one.
                for route in ROUTES[rnd % len(ROUTES) :] + ROUTES[: rnd % len(ROUTES)]:
                    result = drive(
                        f"{server.base}/bench/{route}", seconds, header[c.transport], values
                    )
                    c.rounds.setdefault(route, []).append(result)
            print(f"  {label}: round {rnd + 1}/{args.rounds} done", flush=True)
        for c in configs:
            m = {r: median(c.rounds[r]) for r in ROUTES}
            r = c.rounds
            report.append(
                f"{c.name} {label[len(store) + 1 :]:8} | open {m['open']:5.0f} | "
                f"floor {m['floor']:4.0f} | "
                f"protected {m['protected']:4.0f} | claims {m['claims']:5.0f} | "
                f"floor/open {paired(r['floor'], r['open'])} | "
                f"protected/floor {paired(r['protected'], r['floor'])} | "
                f"protected/shape {paired(r['protected'], r['shape'])} | "
                f"claims/open {paired(r['claims'], r['open'])}"
            )
        # Statements and commands per request, one credential each.
        for transport in ("session", "bearer"):
            value = creds[transport, 1][0]
            for path in ("/bench/protected", "/bench/claims"):
                sql = sql_per_request(server, path, header[transport], value)
                line = f"{store:15} {transport:8} {path:17} SQL/request {sql:.2f}"
                if store == "redis+postgres":
                    total, trips = redis_per_request(server, path, header[transport], value)
                    line += f" | Redis commands/request {total:.2f} (client commands {trips:.2f})"
                report.append(line)
        if args.no_login_load:
            pass
        elif store == "redis+postgres" or args.login_load_everywhere:
            for transport in ("session", "bearer"):
                values = creds[transport, 1]
                login_load(server, transport, header[transport], values, args, report, store)
            sign_in_rate(server, args, report, store)
        report.append(f"{label:15} server peak RSS {server.peak_rss_mb():.0f} MiB")
    except BaseException:
        print(f"server log ({label}):\n{server.log.read_text()[-3000:]}", flush=True)
        raise
    finally:
        server.stop()
        if store == "redis+postgres":
            clean_redis()
            asyncio.run(drop_schema())


def login_load(
    server: Server,
    transport: str,
    header: str,
    values: list[str],
    args: argparse.Namespace,
    report: list[str],
    store: str,
) -> None:
    """A protected GET's throughput while two clients sign in, against the same GET alone."""
    url = f"{server.base}/bench/protected"
    seconds = args.seconds * 2
    quiet: list[Result] = []
    busy: list[Result] = []
    logins = []
    for _ in range(args.rounds):
        quiet.append(drive(url, seconds, header, values))
        with logging_in(server.base, seconds) as counter:
            start = counter.value
            busy.append(drive(url, seconds, header, values))
            logins.append((counter.value - start) / seconds)
    q = statistics.median(r.rps for r in quiet)
    b = statistics.median(r.rps for r in busy)
    kept = [x.rps / y.rps for x, y in zip(busy, quiet, strict=True)]
    label = f"{store:15} {transport:7} protected GET"
    report.append(
        f"{label} without logins: {q:.0f} req/s, "
        f"p50 {statistics.median(r.p50_ms for r in quiet):.1f} ms, "
        f"p99 {statistics.median(r.p99_ms for r in quiet):.1f} ms"
    )
    report.append(
        f"{label} with 2 clients logging in ({statistics.median(logins):.1f} logins/s): "
        f"{b:.0f} req/s, p50 {statistics.median(r.p50_ms for r in busy):.1f} ms, "
        f"p99 {statistics.median(r.p99_ms for r in busy):.1f} ms; kept "
        f"{statistics.median(kept):.2f} ({min(kept):.2f}-{max(kept):.2f}) of throughput"
    )


_RAW_HASHING = """
import asyncio, sys, time
from crudauth import PasswordHasher

async def main(seconds: float, password: str) -> None:
    hasher = PasswordHasher()
    encoded = hasher.hash(password)
    await hasher.verify_async("warm up", encoded)
    done = 0
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            await hasher.verify_async(password, encoded)
            done += 1

    start = time.monotonic()
    await asyncio.gather(client(), client())
    print(done / (time.monotonic() - start))
    hasher.close()

asyncio.run(main(float(sys.argv[1]), sys.argv[2]))
"""


def raw_hash_rate(seconds: float) -> float:
    """Verifications per second of the default ``PasswordHasher``'s pool, alone, on the
    server's CPU: two callers keep the pool busy, as the two sign-in clients do."""
    out = subprocess.run(  # noqa: S603 - this interpreter and the script above
        [*pin(0), PYTHON, "-c", _RAW_HASHING, str(seconds), PASSWORD],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def cpu_seconds(pid: int) -> float:
    """User + system time of every thread of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sign_in_rate(server: Server, args: argparse.Namespace, report: list[str], store: str) -> None:
    """Sign-ins per second (two clients posting ``/login``, nothing else running) against the
    raw rate of the hashing pool measured beside it in each round."""
    seconds = args.seconds * 2
    ratios, rates, raws, cpu = [], [], [], []
    for _ in range(args.rounds):
        raw = raw_hash_rate(seconds)
        with logging_in(server.base, seconds) as counter:
            start, used = counter.value, cpu_seconds(server.proc.pid)
            time.sleep(seconds)
            done = counter.value - start
            used = cpu_seconds(server.proc.pid) - used
        raws.append(raw)
        rates.append(done / seconds)
        ratios.append(done / seconds / raw)
        cpu.append(used / max(done, 1))
    report.append(
        f"{store:15} sign-ins {statistics.median(rates):.1f}/s against the hashing pool's "
        f"{statistics.median(raws):.1f} verifications/s: "
        f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}); server CPU "
        f"{statistics.median(cpu) * 1000:.1f} ms per sign-in, "
        f"{1000 / statistics.median(raws):.1f} ms per verification alone"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run (about a minute)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="per route and round")
    parser.add_argument("--store", choices=("memory+sqlite", "redis+postgres"), action="append")
    parser.add_argument("--login-load-everywhere", action="store_true")
    parser.add_argument("--no-login-load", action="store_true", help="skip the sign-in load phase")
    parser.add_argument(
        "--client",
        choices=("lane", "redis-py", "glide", "coredis"),
        action="append",
        help="the Redis client of the per-request reads (repeatable; default: lane)",
    )
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="uvicorn's event loop"
    )
    parser.add_argument(
        "--unpinned-services",
        action="store_true",
        help="leave PostgreSQL and Redis where the scheduler puts them (default: on CPU 1)",
    )
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.seconds = args.seconds or (1.0 if args.quick else 3.0)
    stores = args.store or ["memory+sqlite", "redis+postgres"]
    client = "wrk" if shutil.which("wrk") else "python asyncio client (wrk not installed)"
    print(
        f"crudauth bench: {len(stores)} store(s), {args.rounds} round(s) x {args.seconds:g} s "
        f"per route, {CONNECTIONS} connections, {args.loop} + h11, load from {client}, "
        f"pinning {'on' if pin(0) else 'off'}",
        flush=True,
    )
    report: list[str] = []
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="crudauth-bench-") as tmp,
        services_on_cpu1(not args.unpinned_services) as placement,
    ):
        print(f"  {placement}", flush=True)
        for store in stores:
            clients = (args.client or ["lane"]) if store == "redis+postgres" else ["lane"]
            for client in clients:
                run_store(store, args, Path(tmp), report, client)
    print(
        "\nreq/s are medians over rounds; a ratio is the median of per-round ratios "
        "(range in brackets)"
    )
    for line in report:
        print(line)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
