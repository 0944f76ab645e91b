"""Instructions per request, counted by valgrind: ``.venv/bin/python bench/instructions.py``.

Throughput on a shared machine moves by 20-40% within seconds, so a difference of a few percent
between two routes takes many rounds to see (``run.py``). Counted instructions hardly move: the
same program, inputs and hash seed give the same count whatever else the machine does, up to
about 10k per request when a collection of the old generation lands in one run and not in
another. This runs ``bench_app`` under uvicorn inside ``valgrind --tool=callgrind`` once per
route and transport (Redis + PostgreSQL, asyncio + h11; as in ``run.py``, the transport's
credential header goes to every route), sends the same warm-up to every run, then
``--requests`` GETs of one route over one keep-alive connection, and subtracts a run that stops
after the warm-up.

What it cannot see: time in the kernel (socket calls: the database's and Redis's round trips),
cache misses, and waiting. It counts what the worker's own code executes, which is where an
auth library's cost is; it is a complement to ``run.py``'s ratios, not the contract. 12 to 16
minutes on two cores for every route (valgrind makes Python ~50x slower; two runs at a time);
``--routes`` runs fewer.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import run as bench

ROUTES = ("open", "floor", "read", "shape", "protected", "claims")
TRANSPORTS = {"session": "Cookie", "bearer": "Authorization"}
# As in run.py, every route of a transport gets that transport's credential header.
VARIANTS = {
    f"{transport} {route}": (f"/bench/{route}", header)
    for transport, header in TRANSPORTS.items()
    for route in ROUTES
}


def count(
    variant: str | None,
    requests: int,
    credentials: dict[str, str],
    tmp: Path,
    client: str = "lane",
    variants: dict[str, tuple[str, str]] = VARIANTS,
) -> int:
    """Instructions of one server run: the common warm-up, then ``requests`` of ``variant``."""
    port = bench.free_port()
    out = tmp / f"callgrind.{port}.out"
    env = {
        **os.environ,
        "BENCH_DB_URL": bench.PG_URL,
        "BENCH_REDIS_URL": bench.REDIS_URL,
        "BENCH_PG_SCHEMA": bench.PG_SCHEMA,
        "BENCH_FLOOR_USER_ID": str(bench.FIRST_ID),
        "BENCH_REDIS_CLIENT": client,
        "PYTHONHASHSEED": "0",
    }
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "uvicorn",
        "bench_app:app",
        "--app-dir",
        str(bench.HERE),
        "--port",
        str(port),
        "--loop",
        "asyncio",
        "--http",
        "h11",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    log = tmp / f"valgrind.{port}.log"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))  # noqa: S603
    try:
        deadline = time.monotonic() + 600
        while True:  # connect only: no request before the warm-up, so every run sees the same
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

        def get(name: str) -> None:
            path, header = variants[name]
            headers = {header: credentials[header]}
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{name}: HTTP {response.status}")

        for name in variants:  # the same warm-up in every run, the baseline's included
            for _ in range(3):
                get(name)
        for _ in range(requests if variant else 0):
            get(variant or "")
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(600)
    found = re.search(r"Collected : (\d+)", log.read_text())
    if found is None:
        raise RuntimeError(f"no instruction count:\n{log.read_text()[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per route (default 200)")
    parser.add_argument(
        "--client",
        choices=("lane", "redis-py", "glide", "coredis"),
        default="lane",
        help="the Redis client of the per-request reads (bench/clients.py)",
    )
    parser.add_argument(
        "--routes", default=",".join(ROUTES), help=f"comma-separated subset of {','.join(ROUTES)}"
    )
    args = parser.parse_args()
    routes = [r for r in ROUTES if r in args.routes.split(",")]
    if "floor" not in routes:
        raise SystemExit("--routes must include floor (the ratios are taken against it)")
    variants = {name: value for name, value in VARIANTS.items() if name.split()[1] in routes}
    if not shutil.which("valgrind"):
        raise SystemExit("needs valgrind (Debian: apt-get install valgrind)")
    asyncio.run(bench.create_users(bench.PG_URL, 2))
    bench.clean_redis()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="crudauth-instr-") as tmp:
            env = {
                "BENCH_DB_URL": bench.PG_URL,
                "BENCH_REDIS_URL": bench.REDIS_URL,
                "BENCH_PG_SCHEMA": bench.PG_SCHEMA,
                "BENCH_FLOOR_USER_ID": str(bench.FIRST_ID),
            }
            server = bench.start_server(env, Path(tmp))
            try:  # a session in Redis and a token: both outlive this server
                credentials = {
                    "Cookie": bench.sign_in(server, "session", 1)[0],
                    "Authorization": bench.sign_in(server, "bearer", 1)[0],
                }
            finally:
                server.stop()
            jobs: list[str | None] = [None, *variants]
            with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
                counts = dict(
                    zip(
                        jobs,
                        pool.map(
                            lambda v: count(
                                v, args.requests, credentials, Path(tmp), args.client, variants
                            ),
                            jobs,
                        ),
                        strict=True,
                    )
                )
    finally:
        asyncio.run(bench.drop_schema())
        bench.clean_redis()
    base = counts[None]
    per = {v: (counts[v] - base) / args.requests for v in variants}
    print(
        f"instructions per request ({args.requests} requests per route, uvicorn asyncio + h11, "
        f"Redis client: {args.client})"
    )
    for transport in TRANSPORTS:
        floor = per[f"{transport} floor"]
        for route in routes:
            n = per[f"{transport} {route}"]
            print(
                f"  {transport:7} {route:9} {n / 1e6:6.3f} M | vs floor {(n - floor) / 1e3:+8.1f} k"
                f" | floor / route {floor / n:.3f}"
            )
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
