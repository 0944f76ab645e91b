"""A real three-node Redis Cluster on loopback ports, started for the tests that need it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports() -> tuple[int, int, int]:
    # Each test process gets its own cluster (nodes also use port + 10000 for their bus), so
    # parallel runs on one machine never stop each other's nodes.
    base = 21000 + (os.getpid() % 900) * 3
    for start in range(base, base + 3000, 3):
        ports = (start, start + 1, start + 2)
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports
    raise RuntimeError("no free ports for a redis cluster")


PORTS = _pick_ports()


def _ping(port: int) -> bool:
    result = subprocess.run(
        ["redis-cli", "-p", str(port), "cluster", "info"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return "cluster_state:ok" in result.stdout


def start() -> tuple[list[subprocess.Popen[bytes]], Path | None]:
    """Start this process's cluster; return what to stop afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="crudauth-cluster-"))
    procs = []
    for port in PORTS:
        node = workdir / str(port)
        node.mkdir()
        procs.append(
            subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(node / "nodes.conf"),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(node),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    deadline = time.monotonic() + 20
    for port in PORTS:
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster nodes did not start")
            time.sleep(0.1)
    subprocess.run(
        [
            "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in PORTS),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )
    while not all(_ping(p) for p in PORTS):
        if time.monotonic() > deadline:
            raise RuntimeError("redis cluster did not become ready")
        time.sleep(0.2)
    return procs, workdir


def stop(procs: list[subprocess.Popen[bytes]], workdir: Path | None) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if workdir is not None and os.path.isdir(workdir):
        shutil.rmtree(workdir, ignore_errors=True)
