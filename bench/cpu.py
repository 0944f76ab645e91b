"""Server CPU time per request, by Redis client: ``.venv/bin/python bench/cpu.py``.

For when neither wall-clock throughput (a shared, loaded machine) nor valgrind (too slow on
one) can decide: the worker's own CPU time (user + system, every thread, from
``/proc/<pid>/stat``) over a run of requests of one route, divided by the requests. Time the
worker spends waiting for the CPU, the database or Redis does not count; cache and frequency
effects of a busy machine do, so compare within one run. Same app, routes, credentials and
load as ``run.py`` (Redis + PostgreSQL, asyncio + h11, 32 connections); ``--client`` as there
(repeatable), ``--rounds`` alternating the clients, medians printed. ``--before DIR`` adds a
row for the lane of another checkout (its ``src``), measured in the same rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import run as bench

ROUTES = ("open", "floor", "protected", "claims")
HEADERS = {"session": "Cookie", "bearer": "Authorization"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--client", action="append", choices=("lane", "redis-py", "glide", "coredis")
    )
    parser.add_argument("--before", help="another checkout whose lane to measure alongside")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    clients = args.client or ["lane", "redis-py", "glide", "coredis"]
    if args.before:
        clients = [*clients, "before"]
    asyncio.run(bench.create_users(bench.PG_URL, 2))
    bench.clean_redis()
    env = {
        "BENCH_DB_URL": bench.PG_URL,
        "BENCH_REDIS_URL": bench.REDIS_URL,
        "BENCH_PG_SCHEMA": bench.PG_SCHEMA,
        "BENCH_FLOOR_USER_ID": str(bench.FIRST_ID),
    }
    per: dict[tuple[str, str, str], list[float]] = {}
    errors = 0
    lost: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="crudauth-cpu-") as tmp:
            for rnd in range(args.rounds):
                order = clients[rnd % len(clients) :] + clients[: rnd % len(clients)]
                for client in order:
                    extra = {"BENCH_REDIS_CLIENT": client}
                    if client == "before":
                        extra = {"BENCH_REDIS_CLIENT": "lane", "PYTHONPATH": f"{args.before}/src"}
                    server = bench.start_server({**env, **extra}, Path(tmp))
                    try:
                        measured = 0
                        for transport, header in HEADERS.items():
                            value = bench.sign_in(server, transport, 1)
                            for route in ROUTES:
                                url = f"{server.base}/bench/{route}"
                                bench.drive(url, 0.5, header, value, tolerate=True)  # warm
                                before = bench.cpu_seconds(server.proc.pid)
                                result = bench.drive(
                                    url, args.seconds, header, value, tolerate=True
                                )
                                errors += result.errors
                                used = bench.cpu_seconds(server.proc.pid) - before
                                requests = result.requests or result.rps * args.seconds
                                per.setdefault((client, transport, route), []).append(
                                    used / requests * 1e6
                                )
                                measured += 1
                    except Exception as exc:  # reported below; the run goes on
                        # A round whose server failed is left out, and said so.
                        lost.append(f"{client} round {rnd + 1} after {measured} routes: {exc!r}")
                        print(f"  {lost[-1]}\n{server.log.read_text()[-1500:]}", flush=True)
                    finally:
                        server.stop()
                print(f"  round {rnd + 1}/{args.rounds} done", flush=True)
    finally:
        bench.clean_redis()
        asyncio.run(bench.drop_schema())
    print(f"failed requests (counted in the requests): {errors}; rounds lost: {lost or 'none'}")
    print(
        f"server CPU us per request (median of {args.rounds} rounds x {args.seconds:g} s; "
        "claims/open and protected/floor are ratios of CPU per request, lower is cheaper)"
    )
    for transport in HEADERS:
        for client in clients:
            if any((client, transport, r) not in per for r in ROUTES):
                print(f"  {transport:7} {client:8} | no complete round")
                continue
            m = {r: statistics.median(per[client, transport, r]) for r in ROUTES}
            print(
                f"  {transport:7} {client:8} | "
                + " | ".join(f"{r} {m[r]:6.0f}" for r in ROUTES)
                + f" | claims/open {m['claims'] / m['open']:.2f}"
                f" | protected/floor {m['protected'] / m['floor']:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
