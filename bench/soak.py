"""crudauth's soak run: ``.venv/bin/python bench/soak.py --minutes 20``.

Two uvicorn workers of ``bench/soak_app.py`` (one process each, on two ports, as behind a
load balancer) share a private ``redis-server`` started for the run and a PostgreSQL schema
(``crudauth_soak``). A load generator plays the trusted proxy (``X-Forwarded-For``) for:

    browsers   sign in, authenticated GETs, sign out, and check the cookie is dead (401)
    api        /token, bearer GETs, a refresh every few GETs (the family rotates)
    attackers  wrong passwords for real and unknown accounts, a new address every few tries,
               so the lockout trips (429) and per-address keys pile up unless they expire

Every interval it records: requests, failures (any 5xx, connection error or timeout), p50/p99
of the authenticated GETs, RSS of each worker, Redis ``used_memory`` and key count. At the end,
with the load stopped, it measures bytes per session and per attacker address (MEMORY USAGE of
the keys one sign-in or one address adds).

Exit status 1 on any failure, or on growth judged unbounded: a worker's RSS up more than
``--rss-limit`` percent from the end of warm-up, or keys without an expiry that grow with
traffic (every key an attacker's address creates must expire). Loopback only, bounded in time,
cleans up its schema; the Redis server is its own and is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
PG_URL = os.environ.get("BENCH_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SCHEMA = "crudauth_soak"
PASSWORD = "soak password that is long enough"  # noqa: S105 - soak users only
USERS = 64  # browsers and API clients sign in as these
#: A request that takes longer than this counts as a failure (the box may be loaded).
TIMEOUT = 60.0
VICTIMS = 32  # accounts only attackers try
ADDRESSES = itertools.count()


def address() -> str:
    """A client address of RFC 2544's benchmarking range (198.18.0.0/15), never reused.

    Only ever a header value: every connection goes to 127.0.0.1."""
    n = next(ADDRESSES) % 131072
    return f"198.{18 + n // 65536}.{n // 256 % 256}.{n % 256}"


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, redis.RedisError, httpx.HTTPError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


def start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    # The server on PATH, as the tests start theirs; fixed arguments.
    proc = subprocess.Popen(  # noqa: S603
        [*args, "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
    )
    wait_for(lambda: redis.Redis(port=port).ping(), "redis-server")
    return proc, port


async def create_users() -> None:
    """A fresh schema with the soak's users, sharing one production-strength hash."""
    sys.path.insert(0, str(HERE))
    import soak_app
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from crudauth import PasswordHasher

    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.execute(text(f"SET search_path TO {SCHEMA}"))
        await conn.run_sync(soak_app.Base.metadata.create_all)
        hashed = PasswordHasher().hash(PASSWORD)
        rows = [
            {
                "username": name,
                "username_key": name,
                "email": f"{name}@example.com",
                "hashed_password": hashed,
                "is_active": True,
                "is_superuser": False,
                "email_verified": True,
                "token_version": 0,
            }
            for name in [f"user{i}" for i in range(USERS)] + [f"victim{i}" for i in range(VICTIMS)]
        ]
        await conn.execute(soak_app.User.__table__.insert(), rows)
    await admin.dispose()
    await soak_app.engine.dispose()


async def drop_schema() -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    await admin.dispose()


def start_worker(env: dict[str, str], tmp: Path, index: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = (tmp / f"worker-{index}.log").open("wb")
    cmd = [PYTHON, "-m", "uvicorn", "soak_app:app", "--app-dir", str(HERE), "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    # Longer than the client's 5 s idle expiry, as a backend behind a proxy is configured: an
    # equal timeout races a reused connection against the server closing it (a ReadError).
    cmd += ["--timeout-keep-alive", "30"]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=tmp
    )
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/soak/health").is_success, "worker")
    return proc, port


def print_logs(tmp: Path) -> None:
    """The end of each worker's log: what a failure left there."""
    for log in sorted(tmp.glob("worker-*.log")):
        print(f"--- {log.name} (last 150 lines)")
        print("\n".join(log.read_text(errors="replace").splitlines()[-150:]))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- load ------------------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    failures: int = 0
    unexpected: dict[str, int] = field(default_factory=dict)
    get_ms: list[float] = field(default_factory=list)
    other_ms: list[float] = field(default_factory=list)

    def take(self) -> Tally:
        """This interval's figures; the tally starts over."""
        snapshot = Tally(
            self.requests, self.failures, dict(self.unexpected), self.get_ms, self.other_ms
        )
        self.requests, self.failures, self.get_ms, self.other_ms = 0, 0, [], []
        self.unexpected = {}
        return snapshot


def cookieless(port: int) -> httpx.AsyncClient:
    """A client that keeps no cookies: each caller sends its own credentials."""
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT)
    client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # stores none
    return client


class Load:
    def __init__(self, ports: list[int], stop_at: float) -> None:
        # Each actor carries its own credentials in its headers: the shared clients keep no
        # cookies (a jar would send one actor's session with another's requests).
        self.clients = [cookieless(port) for port in ports]
        self.stop_at = stop_at
        self.tally = Tally()
        self.totals = Tally()
        self.turn = itertools.count()
        self.examples: list[str] = []

    def running(self) -> bool:
        return time.monotonic() < self.stop_at

    async def call(
        self, method: str, path: str, expect: tuple[int, ...], ip: str, **kw: Any
    ) -> httpx.Response | None:
        client = self.clients[next(self.turn) % len(self.clients)]  # round robin, as a proxy
        headers = {"X-Forwarded-For": ip, **kw.pop("headers", {})}
        started = time.perf_counter()
        try:
            r = await client.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            for tally in (self.tally, self.totals):
                tally.requests += 1
                tally.failures += 1
                tally.unexpected[type(exc).__name__] = (
                    tally.unexpected.get(type(exc).__name__, 0) + 1
                )
            return None
        ms = (time.perf_counter() - started) * 1000
        for tally in (self.tally, self.totals):
            tally.requests += 1
            (tally.get_ms if method == "GET" and 200 in expect else tally.other_ms).append(ms)
            if r.status_code >= 500:
                tally.failures += 1
            if r.status_code not in expect:
                label = f"{method} {path} {r.status_code}"
                tally.unexpected[label] = tally.unexpected.get(label, 0) + 1
        if r.status_code not in expect and len(self.examples) < 5:
            self.examples.append(f"{method} {path} {headers} -> {r.status_code} {r.text[:200]}")
        return r

    async def browser(self, name: str, delay: float) -> None:
        await asyncio.sleep(delay)  # actors start in turn, not as one stampede
        ip = address()
        while self.running():
            r = await self.call("POST", "/login", (200,), ip, data=_form(name, PASSWORD))
            if r is None or r.status_code != 200:
                await asyncio.sleep(1)
                continue
            jar = {c.name: c.value for c in r.cookies.jar}
            cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
            for _ in range(30):
                if not self.running():
                    break
                await self.call("GET", "/me", (200,), ip, headers=cookie)
                await asyncio.sleep(0.2)
            csrf = {**cookie, "X-CSRF-Token": jar.get("csrf_token", "")}
            await self.call("POST", "/logout", (200,), ip, headers=csrf)
            await self.call("GET", "/me", (401,), ip, headers=cookie)  # the session is dead

    async def api(self, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        ip = address()
        r = await self.call("POST", "/token", (200,), ip, data=_form(name, PASSWORD))
        while self.running() and (r is None or r.status_code != 200):
            await asyncio.sleep(1)
            r = await self.call("POST", "/token", (200,), ip, data=_form(name, PASSWORD))
        tokens = r.json() if r is not None and r.status_code == 200 else {}
        while self.running() and tokens:
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            for _ in range(15):
                if not self.running():
                    break
                await self.call("GET", "/me", (200,), ip, headers=bearer)
                await asyncio.sleep(0.2)
            body = {"refresh_token": tokens["refresh_token"]}
            r = await self.call("POST", "/refresh", (200,), ip, json=body)
            if r is not None and r.status_code == 200:
                tokens = r.json()

    async def attacker(self, delay: float) -> None:
        await asyncio.sleep(delay)
        while self.running():
            ip = address()
            # A real account (locked after a few tries) or an unknown name, half and half.
            target = secrets.choice([f"victim{secrets.randbelow(VICTIMS)}", f"ghost{ip}"])
            for i in range(6):
                await self.call("POST", "/login", (401, 429), ip, data=_form(target, f"wrong{i}"))
                await asyncio.sleep(0.25)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


def _form(name: str, password: str) -> dict[str, str]:
    return {"username": name, "password": password}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# -- what one session and one attacker address cost in Redis --------------------------------


def sizes(store: redis.Redis) -> dict[bytes, int]:
    return {k: store.memory_usage(k) or 0 for k in store.scan_iter(count=1000)}


def added_bytes(before: dict[bytes, int], after: dict[bytes, int]) -> int:
    return sum(size - before.get(key, 0) for key, size in after.items())


async def unit_costs(port: int, store: redis.Redis, samples: int = 10) -> tuple[float, float]:
    """Bytes per session and per attacker address, measured on the quiet store."""
    async with cookieless(port) as client:
        before = sizes(store)
        for i in range(samples):  # distinct users, each at its first session of this phase
            await client.post("/login", data=_form(f"user{i}", PASSWORD), headers=_ip())
        per_session = added_bytes(before, sizes(store)) / samples
        before = sizes(store)
        for i in range(samples):  # an unknown name: the lockout and throttles of one address
            ip = _ip()
            for j in range(6):
                await client.post("/login", data=_form(f"probe{i}", f"x{j}"), headers=ip)
        per_address = added_bytes(before, sizes(store)) / samples
    return per_session, per_address


def _ip() -> dict[str, str]:
    return {"X-Forwarded-For": address()}


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    tally: Tally
    rss: list[float]
    used_memory: int
    keys: int
    persistent: int


def key_kinds(store: redis.Redis) -> dict[str, tuple[int, int]]:
    """Per kind of key (its name without the last segment): how many, and the longest TTL."""
    kinds: dict[str, tuple[int, int]] = {}
    for key in store.scan_iter(count=1000):
        name = key.decode()
        kind = name.rsplit(":", 1)[0] if name.count(":") > 1 else name
        kind = kind.split("{", 1)[0] + "{u}" + kind.split("}", 1)[1] if "{u:" in kind else kind
        count, longest = kinds.get(kind, (0, -2))
        kinds[kind] = (count + 1, max(longest, int(store.ttl(key))))
    return kinds


def persistent_keys(store: redis.Redis) -> int:
    """Keys with no expiry (they must not grow with traffic)."""
    return sum(store.ttl(k) == -1 for k in store.scan_iter(count=1000))


async def run(args: argparse.Namespace, tmp: Path) -> int:
    redis_proc, redis_port = start_redis(tmp)
    workers: list[subprocess.Popen[bytes]] = []
    store = redis.Redis(port=redis_port)
    try:
        env = {
            "SOAK_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "SOAK_SECRET_KEY": secrets.token_urlsafe(48),
            "SOAK_DB_URL": PG_URL,
            "SOAK_PG_SCHEMA": SCHEMA,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        os.environ.update(env)  # soak_app reads them when create_users imports its model
        await create_users()
        ports = []
        for index in range(2):
            proc, port = start_worker(env, tmp, index)
            workers.append(proc)
            ports.append(port)
        seconds = args.minutes * 60
        interval = max(5.0, seconds / 20)
        load = Load(ports, time.monotonic() + seconds)
        names = iter(f"user{i}" for i in range(USERS))
        starts = itertools.count(0, 0.5)
        actors = [load.browser(next(names), next(starts)) for _ in range(args.browsers)]
        actors += [load.api(next(names), next(starts)) for _ in range(args.api)]
        actors += [load.attacker(next(starts)) for _ in range(args.attackers)]
        tasks = [asyncio.create_task(actor) for actor in actors]
        samples: list[Sample] = []
        started = time.monotonic()
        while load.running():
            await asyncio.sleep(min(interval, max(0.0, load.stop_at - time.monotonic())))
            samples.append(
                Sample(
                    time.monotonic() - started,
                    load.tally.take(),
                    [rss_mib(w.pid) for w in workers],
                    int(store.info("memory")["used_memory"]),
                    int(store.dbsize()),
                    persistent_keys(store),
                )
            )
            print(_row(samples[-1]), flush=True)
        await asyncio.wait_for(asyncio.gather(*tasks), 2 * TIMEOUT)  # the last requests
        await load.aclose()
        kinds = key_kinds(store)
        per_session, per_address = await unit_costs(ports[0], store)
        for example in load.examples:
            print(f"unexpected: {example}")
        print("keys at the end of the load (kind: count, longest TTL in s):")
        for kind, (count, longest) in sorted(kinds.items()):
            print(f"  {kind}: {count}, {longest}")
        status = report(args, samples, load.totals, per_session, per_address)
        if status:
            print_logs(tmp)
        return status
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(10)
        store.close()
        redis_proc.terminate()
        redis_proc.wait(10)
        await drop_schema()


HEADER = "  t (s)  requests  fail  GET p50  GET p99  RSS w0 / w1 (MiB)  redis used  keys  no-TTL"


def _row(s: Sample) -> str:
    t = s.tally
    return (
        f"{s.at:7.0f}  {t.requests:8d}  {t.failures:4d}  {percentile(t.get_ms, 50):5.1f} ms"
        f"  {percentile(t.get_ms, 99):5.1f} ms  {s.rss[0]:7.1f} / {s.rss[1]:7.1f}"
        f"  {s.used_memory / 2**20:7.2f} MiB  {s.keys:5d}  {s.persistent:5d}"
    )


def report(
    args: argparse.Namespace,
    samples: list[Sample],
    totals: Tally,
    per_session: float,
    per_address: float,
) -> int:
    warm = next((s for s in samples if s.at >= args.warmup * 60), samples[0])
    last = samples[-1]
    growth = [100 * (b - a) / a for a, b in zip(warm.rss, last.rss, strict=True)]
    after_warm = [s.persistent for s in samples if s.at >= warm.at]
    problems = []
    if totals.failures:
        problems.append(f"{totals.failures} failures (5xx, connection errors, timeouts)")
    if max(growth) > args.rss_limit:
        problems.append(f"RSS grew {max(growth):.1f}% after warm-up (limit {args.rss_limit}%)")
    if max(after_warm) > min(after_warm) + args.persistent_slack:
        problems.append(f"keys without expiry grew after warm-up: {after_warm}")
    print()
    print(
        f"minutes {args.minutes}: {args.browsers} browsers, {args.api} API clients,"
        f" {args.attackers} attackers; load average at the end {os.getloadavg()}"
    )
    print(f"requests {totals.requests}, failures {totals.failures}")
    print(f"unexpected answers: {totals.unexpected or 'none'}")
    for label, values in (("authenticated GET", totals.get_ms), ("other", totals.other_ms)):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"{label} requests p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"RSS after warm-up {warm.rss} -> end {last.rss} MiB: {[f'{g:+.1f}%' for g in growth]}")
    print(
        f"Redis keys {warm.keys} -> {last.keys}, no expiry {warm.persistent} -> {last.persistent}"
    )
    print(f"bytes per session {per_session:.0f}, per attacker address {per_address:.0f}")
    for problem in problems:
        print(f"FAIL: {problem}")
    print("soak: ok" if not problems else "soak: failed")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=None, help="minutes (default: a fifth)")
    parser.add_argument("--browsers", type=int, default=12, help="session sign-in loops")
    parser.add_argument("--api", type=int, default=6, help="bearer token loops")
    parser.add_argument("--attackers", type=int, default=2, help="wrong-password loops")
    parser.add_argument("--rss-limit", type=float, default=10.0, help="percent after warm-up")
    parser.add_argument("--persistent-slack", type=int, default=USERS, help="keys")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = args.minutes / 5
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="crudauth-soak-") as tmp:
        return asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
