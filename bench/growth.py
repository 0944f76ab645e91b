"""What growth costs in Redis: ``.venv/bin/python bench/growth.py [--sessions 1000000]``.

1. Memory per live session: users sign in over HTTP (a browser's User-Agent), then
   ``MEMORY USAGE`` of each session record plus its share of the user's index (the sorted set
   and its sequence counter, divided by the sessions in it).
2. Memory per locked-out attacker address: wrong passwords from one address until the lockout
   answers 429, then ``MEMORY USAGE`` and ``PTTL`` of the address's lockout key (it must
   expire by itself).
3. Redis commands per password sign-in (MONITOR around one sign-in; the round trips are held
   by ``tests/test_redis_round_trips.py``).
4. Protected ÷ floor and the protected route's p99 (session transport, 64 users) with about
   1,000 live sessions in Redis, then with ``--sessions`` (default 1,000,000): the extra
   sessions are copies of a real record under their own keys and users, written with
   pipelined ``HSET``s (not HTTP), each with a one-hour expiry, and deleted at the end.

Like ``run.py``: loopback only, one uvicorn worker on CPU 0 and the load on CPU 1, Redis +
PostgreSQL (``BENCH_PG_SCHEMA``, ``BENCH_REDIS_DB``), its own key namespace
(``crudauth-growth:``), which it deletes at the end. Refuses to fill more than a quarter of
the machine's available memory.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import redis
import run as bench

NAMESPACE = "crudauth-growth:"
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
USERS = 64
PER_FILLER_USER = 5  # the default per-user cap
BATCH = 2000


def login(base: str, username: str, password: str) -> tuple[int, list[str]]:
    body = urllib.parse.urlencode({"username": username, "password": password}).encode()
    request = urllib.request.Request(f"{base}/login", data=body, method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header("User-Agent", BROWSER)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.headers.get_all("set-cookie") or []
    except urllib.error.HTTPError as exc:
        return exc.code, []


def cookie_header(cookies: list[str]) -> str:
    jar = [c.split(";", 1)[0] for c in cookies]
    return "; ".join(c for c in jar if c.startswith(("session_id=", "csrf_token=")))


def memory(client: redis.Redis, key: str) -> int:
    return int(client.memory_usage(key, samples=0) or 0)


def session_memory(client: redis.Redis, report: list[str]) -> tuple[dict[bytes, bytes], str]:
    records = list(client.scan_iter(f"{NAMESPACE}session:*", count=1000))
    indexes = list(client.scan_iter(f"{NAMESPACE}{{u:*}}:sessions", count=1000))
    per_record = [memory(client, k) for k in records]
    index_share = []
    for index in indexes:
        members = client.zcard(index)
        index_share.append((memory(client, index) + memory(client, index + b":seq")) / members)
    record = statistics.median(per_record)
    share = statistics.median(index_share)
    encoding = client.object("encoding", records[0])
    report.append(
        f"memory per live session: record {record:.0f} B ({encoding!r}) + index share "
        f"{share:.0f} B = {record + share:.0f} B (median of {len(records)} records, "
        f"{len(indexes)} users, User-Agent of {len(BROWSER)} characters)"
    )
    # What the layout would cost with Redis's compact encodings (every hash value within
    # hash-max-listpack-value, every index member within zset-max-listpack-value: 64 bytes by
    # default): the same record with a 58-character User-Agent and the CSRF digest in
    # base64url (43 characters, not 64 in hex), an index of bare digests.
    probe = f"{NAMESPACE}probe"
    fields = client.hgetall(records[0])
    fields[b"user_agent"] = json.dumps(BROWSER[:58]).encode()
    fields[b"csrf_digest"] = json.dumps("x" * 43).encode()  # base64url of 32 bytes, not hex
    client.hset(probe, mapping=fields)
    compact_record = memory(client, probe)
    encoding_probe = client.object("encoding", probe)
    client.delete(probe)
    digest = records[0].decode().rsplit(":", 1)[1]
    client.zadd(probe, {digest: 1})
    client.set(probe + ":seq", 1)
    compact_index = memory(client, probe) + memory(client, probe + ":seq")
    client.delete(probe, probe + ":seq")
    long = ", ".join(
        f"{k.decode()} ({len(v)} B)" for k, v in client.hgetall(records[0]).items() if len(v) > 64
    )
    report.append(
        f"  values over 64 bytes: {long}; key names {len(records[0])} B; with compact encodings: "
        f"record {compact_record} B ({encoding_probe!r}) + index share "
        f"{compact_index} B (one member, a bare digest) = {compact_record + compact_index} B"
    )
    return client.hgetall(records[0]), records[0].decode()


def lockout_memory(base: str, client: redis.Redis, report: list[str]) -> None:
    tried = 0
    status = 200
    while status != 429 and tried < 100:
        status, _ = login(base, f"nobody{tried}", "wrong password")
        tried += 1
    keys = list(client.scan_iter(f"{NAMESPACE}rl:login:ip:*"))
    if status != 429 or len(keys) != 1:
        raise RuntimeError(f"no lockout after {tried} attempts ({status}, {keys})")
    key = keys[0]
    identifiers = list(client.scan_iter(f"{NAMESPACE}rl:login:user:*"))
    each = statistics.median(memory(client, k) for k in identifiers)
    expiring = min(client.pttl(k) for k in identifiers) > 0
    report.append(
        f"memory per locked-out address: {memory(client, key)} B "
        f"({client.object('encoding', key)!r}), expires by itself in "
        f"{client.pttl(key) / 1000:.0f} s; locked after {tried} wrong passwords, each on another "
        f"identifier: {len(identifiers)} identifier keys of {each:.0f} B each (expiring too: "
        f"{expiring})"
    )


def commands_per_sign_in(base: str, report: list[str]) -> None:
    """Commands one password sign-in sends to Redis (MONITOR, filtered to the bench's
    database: other databases of a shared server do not count; nothing else may use this one
    meanwhile)."""
    login(base, "bench1", bench.PASSWORD)  # warm: every script loaded
    monitor = redis.Redis.from_url(bench.REDIS_URL)
    marker = f"growth-marker-{time.monotonic_ns()}"
    seen = {"all": 0, "client": 0}
    ready = threading.Event()

    def listen() -> None:
        with monitor.monitor() as m:
            ready.set()
            for cmd in m.listen():
                if cmd.get("db") != bench.REDIS_DB:
                    continue
                if marker in cmd.get("command", ""):
                    return
                seen["all"] += 1
                seen["client"] += cmd.get("client_type") != "lua"

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.2)
    status, _ = login(base, "bench1", bench.PASSWORD)
    time.sleep(0.2)
    signal = redis.Redis.from_url(bench.REDIS_URL)
    signal.echo(marker)
    thread.join(10)
    signal.close()
    monitor.close()
    if status != 200:
        raise RuntimeError(f"sign-in answered {status}")
    report.append(
        f"Redis commands per fresh password sign-in (MONITOR): {seen['all']}, "
        f"of which {seen['client']} sent by the client (the rest run inside scripts)"
    )


class Raw:
    """One socket to Redis for bulk writes: a batch of packed commands, then its replies."""

    def __init__(self) -> None:
        import hiredis

        from crudauth.storage.redis_lane import pack

        self.pack = pack
        self.sock = socket.create_connection(("127.0.0.1", 6379))
        self.reader = hiredis.Reader()
        self.run([pack(("SELECT", bench.REDIS_DB))])

    def run(self, commands: list[bytes]) -> None:
        self.sock.sendall(b"".join(commands))
        replies = 0
        while replies < len(commands):
            self.reader.feed(self.sock.recv(1 << 20))
            while (reply := self.reader.gets()) is not False:
                if isinstance(reply, Exception):
                    raise reply
                replies += 1

    def close(self) -> None:
        self.sock.close()


def _filler(i: int, digest_length: int) -> tuple[str, str]:
    key = f"{NAMESPACE}session:" + hashlib.sha256(b"%d" % i).hexdigest()[:digest_length]
    return key, f"fill{i // PER_FILLER_USER}"


def fill(raw: Raw, template: dict[bytes, bytes], sample_key: str, start: int, end: int) -> None:
    """Sessions ``start``..``end`` as pipelined ``HSET``s (and their index entries), each
    expiring within the hour should the clean-up not run."""
    digest_length = len(sample_key) - len(f"{NAMESPACE}session:")
    fields = [x for k, v in template.items() if k != b"user_id" for x in (k, v)]
    for first in range(start, end, BATCH):
        commands = []
        for i in range(first, min(end, first + BATCH)):
            key, user = _filler(i, digest_length)
            index = f"{NAMESPACE}{{u:{user}}}:sessions"
            commands += [
                raw.pack(("HSET", key, "user_id", json.dumps(user), *fields)),
                raw.pack(("EXPIRE", key, 3600)),
                raw.pack(("ZADD", index, i % PER_FILLER_USER + 1, key)),
                raw.pack(("EXPIRE", index, 3600)),
            ]
        raw.run(commands)


def unfill(raw: Raw, sample_key: str, end: int) -> None:
    digest_length = len(sample_key) - len(f"{NAMESPACE}session:")
    for first in range(0, end, BATCH):
        pairs = [_filler(i, digest_length) for i in range(first, min(end, first + BATCH))]
        keys = [key for key, _ in pairs]
        indexes = {f"{NAMESPACE}{{u:{user}}}:sessions" for _, user in pairs}
        raw.run([raw.pack(("UNLINK", *keys, *indexes))])


def measure(server: bench.Server, cookies: list[str], args: argparse.Namespace) -> dict[str, Any]:
    rounds: dict[str, list[bench.Result]] = {"floor": [], "protected": []}
    for rnd in range(args.rounds):
        for route in ("floor", "protected") if rnd % 2 == 0 else ("protected", "floor"):
            url = f"{server.base}/bench/{route}"
            rounds[route].append(bench.drive(url, args.seconds, "Cookie", cookies, tolerate=True))
    return {
        "errors": sum(r.errors for results in rounds.values() for r in results),
        "ratio": bench.paired(rounds["protected"], rounds["floor"]),
        "p99": statistics.median(r.p99_ms for r in rounds["protected"]),
        "floor_p99": statistics.median(r.p99_ms for r in rounds["floor"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    client = redis.Redis.from_url(bench.REDIS_URL)
    asyncio.run(bench.create_users(bench.PG_URL, USERS + 2))
    env = {
        "BENCH_DB_URL": bench.PG_URL,
        "BENCH_REDIS_URL": bench.REDIS_URL,
        "BENCH_PG_SCHEMA": bench.PG_SCHEMA,
        "BENCH_FLOOR_USER_ID": str(bench.FIRST_ID),
        "BENCH_NAMESPACE": NAMESPACE,
    }
    report: list[str] = []
    raw = Raw()
    filled = 0
    sample_key = ""
    try:
        with tempfile.TemporaryDirectory(prefix="crudauth-growth-") as tmp:
            server = bench.start_server(env, Path(tmp))
            try:
                cookies = []
                for i in range(USERS):
                    status, set_cookies = login(server.base, f"bench{i}", bench.PASSWORD)
                    if status != 200:
                        raise RuntimeError(f"sign-in of bench{i} answered {status}")
                    cookies.append(cookie_header(set_cookies))
                template, sample_key = session_memory(client, report)
                commands_per_sign_in(server.base, report)
                live = len(list(client.scan_iter(f"{NAMESPACE}session:*", count=1000)))
                small = max(0, 1000 - live)
                fill(raw, template, sample_key, 0, small)
                filled = small
                base = measure(server, cookies, args)
                need = (args.sessions - small) * 2500  # bytes, generously (about 1.9 kB each)
                available = _available_bytes()
                if need > available / 4:
                    raise SystemExit(f"{args.sessions} sessions need ~{need >> 20} MiB: too much")
                used_before = int(client.info("memory")["used_memory"])
                started = time.monotonic()
                fill(raw, template, sample_key, small, args.sessions)
                filled = args.sessions
                took = time.monotonic() - started
                used_after = int(client.info("memory")["used_memory"])
                big = measure(server, cookies, args)
                per = (used_after - used_before) / (args.sessions - small)
                report.append(
                    f"{args.sessions:,} sessions written in {took:.0f} s (pipelined HSETs); Redis "
                    f"used_memory grew {per:.0f} B per session"
                )
                report.append(
                    f"protected / floor, session, {USERS} users, ~1,000 sessions: {base['ratio']}, "
                    f"p99 {base['p99']:.1f} ms (floor p99 {base['floor_p99']:.1f} ms), "
                    f"{base['errors']} failed requests"
                )
                report.append(
                    f"protected / floor, session, {USERS} users, {args.sessions:,} sessions: "
                    f"{big['ratio']}, p99 {big['p99']:.1f} ms "
                    f"(floor p99 {big['floor_p99']:.1f} ms), "
                    f"{big['errors']} failed requests"
                )
                lockout_memory(server.base, client, report)
            finally:
                server.stop()
    finally:
        if sample_key:
            unfill(raw, sample_key, filled)
        raw.close()
        for key in client.scan_iter(f"{NAMESPACE}*", count=5000):
            client.unlink(key)
        asyncio.run(bench.drop_schema())
        client.close()
    print(
        f"crudauth growth bench ({args.rounds} rounds x {args.seconds:g} s, "
        f"{bench.CONNECTIONS} connections)"
    )
    for line in report:
        print(line)
    return 0


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    sys.exit(main())
