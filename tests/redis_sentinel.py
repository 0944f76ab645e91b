"""A Redis master, one replica and three sentinels on free loopback ports, for failover tests.

Every process is a ``redis-server`` of this test's own (the sentinels run with ``--sentinel``),
with failover timings set low so that a failover completes within seconds and the test
stops by itself.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.multiworker import free_port

SERVICE = "crudauth"
#: How long a master must stay silent before a sentinel calls it down, and the bound on one
#: failover attempt (Sentinel's defaults are 30 s and 3 min).
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 2000


@dataclass
class SentinelSet:
    master_port: int
    replica_port: int
    sentinel_ports: list[int]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.sentinel_ports]

    def master_address(self) -> tuple[str, int] | None:
        """The master as the first sentinel that answers sees it."""
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=1) as sentinel:
                    found = sentinel.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
            except redis.RedisError:
                continue
            if found:
                host, master = found
                return (host.decode(), int(master))
        return None

    def replicated(self, timeout_ms: int = 2000) -> int:
        """WAIT on the master: how many replicas acknowledged every write made so far."""
        with redis.Redis(port=self.master_port, socket_timeout=5) as master:
            return int(master.execute_command("WAIT", 1, timeout_ms))

    def kill_master(self) -> None:
        proc = self.procs["master"]
        proc.kill()
        proc.wait(timeout=10)


def _launch(args: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with redis.Redis(port=port, socket_timeout=1) as client:
                client.ping()
            return proc
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"redis-server on port {port} did not start") from None
            time.sleep(0.05)


def _server(port: int, workdir: Path, *extra: str) -> list[str]:
    return [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        *extra,
    ]


def _wait(what: str, ready: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"sentinel set: {what} not ready after {timeout} s")
        time.sleep(0.1)


@contextmanager
def sentinel_set() -> Iterator[SentinelSet]:
    """Start master, replica and sentinels; wait until the sentinels could fail over."""
    workdir = Path(tempfile.mkdtemp(prefix="crudauth-sentinel-"))
    found = SentinelSet(free_port(), free_port(), [free_port() for _ in range(3)])
    try:
        master, replica = found.master_port, found.replica_port
        for name in ("m", "r"):
            (workdir / name).mkdir()
        found.procs["master"] = _launch(_server(master, workdir / "m"), master)
        found.procs["replica"] = _launch(
            _server(replica, workdir / "r", "--replicaof", "127.0.0.1", str(master)), replica
        )
        for port in found.sentinel_ports:
            conf = workdir / f"sentinel-{port}.conf"  # a sentinel rewrites its own file
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            found.procs[f"sentinel-{port}"] = _launch(
                ["redis-server", str(conf), "--sentinel"], port
            )
        _wait("replication", lambda: _link_up(replica))
        _wait("sentinel discovery", lambda: all(_knows_all(p) for p in found.sentinel_ports))
        yield found
    finally:
        for proc in found.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in found.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _link_up(replica_port: int) -> bool:
    with redis.Redis(port=replica_port, socket_timeout=1) as replica:
        return replica.info("replication").get("master_link_status") == "up"


def _knows_all(port: int) -> bool:
    """This sentinel sees the replica and both other sentinels (so a quorum can elect)."""
    with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as sentinel:
        state = sentinel.execute_command("SENTINEL", "MASTER", SERVICE)
    fields = dict(zip(state[::2], state[1::2], strict=True)) if isinstance(state, list) else state
    return int(fields["num-slaves"]) == 1 and int(fields["num-other-sentinels"]) == 2
