"""The pipelined hot-path connection (``crudauth.storage.redis_lane``).

Replies are matched to callers by order, so the properties that matter are: every caller gets
its own reply under concurrency and cancellation; a stalled or lost connection fails every
waiter (never hands one caller another's reply) and the next command reconnects; and a lane
nobody closed does not leak its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from crudauth.errors import StoreUnavailable
from crudauth.storage import redis_lane
from crudauth.storage.base import SessionRecord
from crudauth.storage.redis import RedisKeyValueStore, RedisSessionStore
from crudauth.storage.redis_lane import RedisLane, pack
from tests.conftest import REDIS_TEST_DB, REDIS_TEST_URL

# -- a scripted RESP server on loopback, for the failures a real Redis will not produce -------


class FakeRedis:
    """Answers ``+PONG``-style replies; can stall, hang up, or check AUTH."""

    def __init__(self, password: str | None = None) -> None:
        self.password = password
        self.stall = False
        self.stalled: set[int] = set()  # connection numbers (from 1) that never answer
        self.hang_up = False
        self.commands: list[list[bytes]] = []
        self.connections = 0
        self.closed = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port: int = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.writers.append(writer)
        authed = self.password is None
        try:
            while True:
                command = await _read_command(reader)
                if command is None:
                    break
                self.commands.append(command)
                if self.hang_up:
                    break
                if self.stall or number in self.stalled:
                    continue
                name = command[0].upper()
                if name == b"AUTH":
                    authed = command[-1].decode() == self.password
                    writer.write(b"+OK\r\n" if authed else b"-WRONGPASS invalid password\r\n")
                elif not authed:
                    writer.write(b"-NOAUTH Authentication required.\r\n")
                elif name == b"SELECT":
                    writer.write(b"+OK\r\n")
                elif name == b"PING":
                    writer.write(b"+PONG\r\n")
                elif name == b"ECHO":
                    writer.write(b"$%d\r\n%b\r\n" % (len(command[1]), command[1]))
                else:
                    writer.write(b"-ERR unknown command\r\n")
                await writer.drain()
        finally:
            self.closed += 1
            writer.close()


async def _read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    head = await reader.readline()
    if not head:
        return None
    assert head.startswith(b"*"), head
    parts = []
    for _ in range(int(head[1:])):
        size = int((await reader.readline())[1:])
        parts.append((await reader.readexactly(size + 2))[:-2])
    return parts


@pytest.fixture
async def fake() -> AsyncIterator[FakeRedis]:
    server = FakeRedis()
    await server.start()
    yield server
    await server.stop()


def lane_to(port: int, **options: Any) -> RedisLane:
    return RedisLane(host="127.0.0.1", port=port, **options)


async def eventually(condition: Any, timeout: float = 10.0) -> None:
    """Wait for ``condition()`` to hold. The timeout only bounds a broken test: what is
    awaited always happens, after a number of loop turns that depends on the machine."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


# -- encoding ---------------------------------------------------------------------------------


def test_pack_encodes_bulk_strings_of_every_argument_type() -> None:
    assert pack(("SET", b"k\r\n", 7, 1.5)) == (
        b"*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n7\r\n$3\r\n1.5\r\n"
    )
    assert pack(("ECHO", "é")) == b"*2\r\n$4\r\nECHO\r\n$2\r\n\xc3\xa9\r\n"
    with pytest.raises(redis_errors.DataError):  # a RedisError, like redis-py's
        pack(("SET", None))


# -- against the real server ------------------------------------------------------------------


@pytest.fixture
async def real() -> AsyncIterator[tuple[Redis, RedisLane]]:
    client = Redis.from_url(REDIS_TEST_URL)
    lane = RedisLane.for_client(client, 2.0)
    assert lane is not None
    yield client, lane
    await lane.aclose()
    await client.aclose()


@pytest.mark.redis
async def test_concurrent_callers_each_get_their_own_reply(real: tuple[Redis, RedisLane]) -> None:
    client, lane = real
    prefix = f"lane-test:{uuid.uuid4().hex}:"
    await client.mset({f"{prefix}{i}": f"value-{i}" for i in range(200)})
    replies = await asyncio.gather(*(lane.get(f"{prefix}{i}") for i in range(200)))
    assert replies == [f"value-{i}".encode() for i in range(200)]
    await client.delete(*(f"{prefix}{i}" for i in range(200)))


@pytest.mark.redis
async def test_cancelled_callers_do_not_shift_the_replies_of_others(
    real: tuple[Redis, RedisLane],
) -> None:
    client, lane = real
    prefix = f"lane-test:{uuid.uuid4().hex}:"
    await client.mset({f"{prefix}{i}": str(i) for i in range(100)})
    assert await lane.execute("PING") == b"PONG"  # connected: the commands queue at once
    connection = lane._connections[asyncio.get_running_loop()]
    tasks = [asyncio.ensure_future(lane.get(f"{prefix}{i}")) for i in range(100)]
    await asyncio.sleep(0)
    # Every command is queued and none has left yet (the write happens on the next loop
    # turn), so every cancelled caller's reply is still to come and must be dropped.
    assert len(connection.waiters) == 100 and connection.outbox
    for task in tasks[::2]:
        task.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    for i, result in enumerate(done):
        if i % 2:
            assert result == str(i).encode()
        else:
            assert isinstance(result, asyncio.CancelledError)
    assert await lane.get(f"{prefix}7") == b"7"  # still in step afterwards
    await client.delete(*(f"{prefix}{i}" for i in range(100)))


@pytest.mark.redis
async def test_commands_of_one_loop_turn_leave_in_one_write(
    real: tuple[Redis, RedisLane], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, lane = real
    await lane.execute("PING")
    connection = lane._connections.get(asyncio.get_running_loop())
    assert connection is not None
    writes: list[int] = []
    original = connection._write

    def counting(data: bytes | bytearray) -> None:
        writes.append(len(data))
        original(data)

    monkeypatch.setattr(connection, "_write", counting)
    assert await asyncio.gather(*(lane.execute("PING") for _ in range(50))) == [b"PONG"] * 50
    assert len(writes) == 1


@pytest.mark.redis
async def test_error_replies_raise_and_the_lane_stays_usable(
    real: tuple[Redis, RedisLane],
) -> None:
    _, lane = real
    with pytest.raises(redis_errors.NoScriptError):
        await lane.evalsha("0" * 40, 0)
    with pytest.raises(redis_errors.ResponseError):
        await lane.execute("NO-SUCH-COMMAND")
    assert await lane.execute("PING") == b"PONG"


@pytest.mark.redis
async def test_a_payload_larger_than_the_socket_buffer_is_written_in_full(
    real: tuple[Redis, RedisLane],
) -> None:
    client, lane = real
    key = f"lane-test:{uuid.uuid4().hex}"
    big = b"x" * (8 * 1024 * 1024)
    assert await lane.execute("SET", key, big) == b"OK"
    assert await lane.get(key) == big
    await client.delete(key)


@pytest.mark.redis
async def test_the_lane_selects_the_clients_database() -> None:
    other = (REDIS_TEST_DB % 15) + 1
    url = f"redis://127.0.0.1:6379/{other}"
    client = Redis.from_url(url)
    key = f"lane-test:{uuid.uuid4().hex}"
    await client.set(key, "here")
    lane = RedisLane.for_client(client, 2.0)
    assert lane is not None and lane.db == other
    try:
        assert await lane.get(key) == b"here"
    finally:
        await client.delete(key)
        await lane.aclose()
        await client.aclose()


@pytest.mark.redis
async def test_a_store_reloads_the_session_script_after_script_flush() -> None:
    client = Redis.from_url(REDIS_TEST_URL)
    store = RedisSessionStore(client, namespace=f"lane-test:{uuid.uuid4().hex}:")
    assert store.lane is not None
    now = time.time()
    record = SessionRecord("7", "h" * 32, "c" * 64, now, now, 600.0, now + 3600)
    try:
        await store.create("key", record, max_per_user=5)
        await client.script_flush()
        loaded = await store.load("key", now=now + 1, slide_after=60)
        assert loaded == record
    finally:
        await store.delete_for_user("7")
        await store.close()
        await client.aclose()


# -- failures ---------------------------------------------------------------------------------


async def test_a_stalled_server_fails_every_waiter_after_the_timeout(fake: FakeRedis) -> None:
    lane = lane_to(fake.port, timeout=0.3)
    assert await lane.execute("ECHO", "a") == b"a"
    fake.stall = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.wait_for(
        asyncio.gather(*(lane.execute("ECHO", str(i)) for i in range(10)), return_exceptions=True),
        10,  # only bounds a hang: a busy machine may run the timer late, never early
    )
    waited = loop.time() - started
    assert all(isinstance(r, redis_errors.TimeoutError) for r in results), results
    assert waited >= 0.25  # not before the timeout (the loop may run a timer a tick early)
    # A stalled connection is never reused: the next command gets a fresh one.
    fake.stall = False
    assert await lane.execute("ECHO", "b") == b"b"
    assert fake.connections == 2
    await lane.aclose()


async def test_a_lost_connection_fails_its_waiters_and_the_next_command_reconnects(
    fake: FakeRedis,
) -> None:
    lane = lane_to(fake.port)
    assert await lane.execute("ECHO", "a") == b"a"
    fake.hang_up = True
    with pytest.raises(redis_errors.ConnectionError):
        await lane.execute("ECHO", "b")
    fake.hang_up = False
    assert await lane.execute("ECHO", "c") == b"c"
    assert fake.connections == 2
    await lane.aclose()


async def test_a_connection_quiet_for_long_is_pinged_and_replaced_if_it_went_dead(
    fake: FakeRedis,
) -> None:
    lane = lane_to(fake.port, timeout=0.3)
    assert await lane.execute("ECHO", "a") == b"a"
    assert await lane.execute("ECHO", "b") == b"b"
    assert [c[0] for c in fake.commands] == [b"ECHO", b"ECHO"]  # busy: no pings

    # A NAT dropped the idle connection without a word: it swallows whatever is sent.
    fake.stalled.add(1)
    connection = lane._connections.get(asyncio.get_running_loop())
    assert connection is not None
    connection.last_heard -= redis_lane.IDLE_CHECK_SECONDS + 1
    replies = await asyncio.gather(*(lane.execute("ECHO", str(i)) for i in range(5)))
    assert replies == [str(i).encode() for i in range(5)]  # no 503: one ping, then reconnected
    assert fake.connections == 2
    assert [c[0] for c in fake.commands].count(b"PING") == 1  # one ping for all five
    await lane.aclose()


async def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        lane = lane_to(port)
        with pytest.raises(redis_errors.ConnectionError):
            await lane.execute("PING")


async def test_auth_is_sent_before_any_command_and_a_wrong_password_is_refused() -> None:
    server = FakeRedis(password="s3cret")
    port = await server.start()
    try:
        good = lane_to(port, password="s3cret", db=3)
        assert await good.execute("ECHO", "x") == b"x"
        assert server.commands[:3] == [[b"AUTH", b"s3cret"], [b"SELECT", b"3"], [b"ECHO", b"x"]]
        await good.aclose()
        bad = lane_to(port, username="app", password="wrong")
        with pytest.raises(redis_errors.AuthenticationError):
            await bad.execute("ECHO", "x")
        assert [b"AUTH", b"app", b"wrong"] in server.commands
    finally:
        await server.stop()


async def test_the_store_turns_lane_failures_into_store_unavailable(fake: FakeRedis) -> None:
    client = Redis(host="127.0.0.1", port=fake.port, socket_timeout=0.3)
    store = RedisKeyValueStore(client)
    assert store.lane is not None and store.lane.timeout == 0.3
    fake.stall = True
    with pytest.raises(StoreUnavailable):
        await store.get("anything")
    assert store.degradations.count == 1
    await store.close()
    await client.aclose()


# -- lifetime ---------------------------------------------------------------------------------


def test_a_lane_used_from_two_event_loops_reconnects_without_leaking(fake_port: int) -> None:
    lane = lane_to(fake_port)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        assert asyncio.run(lane.execute("ECHO", "1")) == b"1"
        assert asyncio.run(lane.execute("ECHO", "2")) == b"2"
        asyncio.run(lane.aclose())
        gc.collect()


def test_a_lane_nobody_closed_closes_its_socket_when_collected(fake_port: int) -> None:
    async def use_and_forget() -> None:
        lane = lane_to(fake_port)
        assert await lane.execute("ECHO", "1") == b"1"

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        asyncio.run(use_and_forget())
        gc.collect()


@pytest.fixture
def fake_port() -> Any:
    """A FakeRedis served from a thread of its own, for tests that run their own loops."""
    import threading

    ready = threading.Event()
    state: dict[str, Any] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        server = FakeRedis()
        state["port"] = loop.run_until_complete(server.start())
        state["loop"], state["server"] = loop, server
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(5)
    yield state["port"]
    state["loop"].call_soon_threadsafe(state["loop"].stop)
    thread.join(5)


# -- which clients get a lane -----------------------------------------------------------------


async def test_only_plain_clients_get_a_lane() -> None:
    plain = Redis.from_url("redis://:pw@10.0.0.1:6380/4?socket_timeout=0.5")
    lane = RedisLane.for_client(plain, 2.0)
    assert lane is not None
    assert (lane.host, lane.port, lane.db, lane.password, lane.timeout) == (
        "10.0.0.1",
        6380,
        4,
        "pw",
        0.5,
    )
    assert lane.connect_timeout == 2.0  # no socket_connect_timeout given: the default
    unix = RedisLane.for_client(Redis.from_url("unix:///run/redis/redis.sock?db=2"), 2.0)
    assert unix is not None and (unix.path, unix.db) == ("/run/redis/redis.sock", 2)

    assert RedisLane.for_client(Redis.from_url("rediss://127.0.0.1:6379/0"), 2.0) is None
    cluster = RedisCluster(host="127.0.0.1", port=7000)
    assert RedisLane.for_client(cluster, 2.0) is None
    await cluster.aclose()
    assert RedisLane.for_client(object(), 2.0) is None

    class Provider:
        def get_credentials(self) -> tuple[str]:
            return ("pw",)

    with_provider = Redis(credential_provider=Provider())  # type: ignore[arg-type]
    assert RedisLane.for_client(with_provider, 2.0) is None
    for client in (plain, with_provider):
        await client.aclose()


async def test_pipelined_false_and_a_missing_hiredis_keep_reads_on_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = Redis.from_url(REDIS_TEST_URL)
    assert RedisSessionStore(client, pipelined=False).lane is None
    assert RedisKeyValueStore(client, pipelined=False).lane is None
    monkeypatch.setattr(redis_lane, "hiredis", None)
    assert RedisSessionStore(client).lane is None
    with pytest.raises(RuntimeError, match="hiredis"):
        RedisLane()
    await client.aclose()


@pytest.mark.redis
async def test_sessions_work_without_the_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_lane, "hiredis", None)
    client = Redis.from_url(REDIS_TEST_URL, decode_responses=True)
    store = RedisSessionStore(client, namespace=f"lane-test:{uuid.uuid4().hex}:")
    now = time.time()
    record = SessionRecord("8", "h" * 32, "c" * 64, now, now, 600.0, now + 3600, user_agent=None)
    try:
        await store.create("key", record, max_per_user=5)
        assert await store.load("key", now=now + 1, slide_after=60) == record
    finally:
        await store.delete_for_user("8")
        await store.close()
        await client.aclose()


@pytest.fixture
def unix_redis(tmp_path: Any) -> Any:
    """A private redis-server that listens on a Unix socket only."""
    import shutil
    import subprocess

    binary = shutil.which("redis-server")
    assert binary is not None
    path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(path), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield str(path)
    server.terminate()
    server.wait(10)


@pytest.mark.redis
async def test_a_unix_socket_client_gets_a_lane_over_the_same_socket(unix_redis: str) -> None:
    client = Redis(unix_socket_path=unix_redis, db=2)
    await client.set("k", "over the socket")
    lane = RedisLane.for_client(client, 2.0)
    assert lane is not None and lane.path == unix_redis
    assert await lane.get("k") == b"over the socket"
    await lane.aclose()
    await client.aclose()


@pytest.mark.redis
async def test_throttles_take_the_lane_and_lockouts_stay_on_the_client() -> None:
    from crudauth.ratelimit.policy import LockoutConfig, RateLimit
    from crudauth.ratelimit.redis import RedisBackend

    client = Redis.from_url(REDIS_TEST_URL)
    backend = RedisBackend(client, prefix=f"lane-test:{uuid.uuid4().hex}:")
    assert backend.lane is not None
    await backend.throttle("warm", RateLimit(2, 60), time.time())  # the script is loaded
    sent: list[bytes] = []
    original = backend.lane.send

    async def spy(payload: bytes, tag: bytes | None = None) -> Any:
        sent.append(payload)
        return await original(payload, tag)

    backend.lane.send = spy  # type: ignore[method-assign]
    try:
        now = time.time()
        results = [await backend.throttle("k", RateLimit(2, 60), now) for _ in range(3)]
        assert [r.allowed for r in results] == [True, True, False]
        assert len(sent) == 3 and all(b"EVALSHA" in p for p in sent)
        await backend.lockout_reserve("acct", LockoutConfig(), now, hard_cap=False)
        assert len(sent) == 3  # the login path keeps its own client
    finally:
        await backend.close()
        await client.aclose()
    assert RedisBackend(client, pipelined=False).lane is None


# -- uvloop (what uvicorn runs when it is installed) ------------------------------------------


def run_on_uvloop(coro_factory: Any) -> Any:
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro_factory())
    finally:
        loop.close()


@pytest.mark.redis
def test_the_lane_on_uvloop_answers_in_order_and_fails_closed_on_a_stall() -> None:
    async def scenario() -> None:
        client = Redis.from_url(REDIS_TEST_URL)
        lane = RedisLane.for_client(client, 2.0)
        assert lane is not None
        prefix = f"lane-test:{uuid.uuid4().hex}:"
        await client.mset({f"{prefix}{i}": str(i) for i in range(100)})
        assert await lane.execute("PING") == b"PONG"  # connected: the commands queue at once
        tasks = [asyncio.ensure_future(lane.get(f"{prefix}{i}")) for i in range(100)]
        await asyncio.sleep(0)
        assert len(lane._connections[asyncio.get_running_loop()].waiters) == 100
        tasks[3].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert [d for i, d in enumerate(done) if i != 3] == [
            str(i).encode() for i in range(100) if i != 3
        ]
        await client.delete(*(f"{prefix}{i}" for i in range(100)))
        await lane.aclose()
        await client.aclose()

        fake = FakeRedis()
        await fake.start()
        stalled = lane_to(fake.port, timeout=0.3)
        assert await stalled.execute("ECHO", "a") == b"a"
        fake.stall = True
        with pytest.raises(redis_errors.TimeoutError):
            await stalled.execute("ECHO", "b")
        fake.stall = False
        assert await stalled.execute("ECHO", "c") == b"c"
        await stalled.aclose()
        await fake.stop()

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        run_on_uvloop(scenario)
        gc.collect()


# -- lifetimes across loops, closes and cancellations -----------------------------------------


@pytest.mark.redis
def test_one_lane_shared_by_event_loops_in_several_threads_never_hangs() -> None:
    """Regression: one connection for every loop; a loop in another thread closed it under
    the first loop's waiters, which then waited forever."""
    import threading

    client_url = REDIS_TEST_URL
    lane = RedisLane.for_client(Redis.from_url(client_url), 2.0)
    assert lane is not None
    key = f"lane-test:{uuid.uuid4().hex}"
    import redis as sync_redis

    sync = sync_redis.Redis.from_url(client_url)
    sync.set(key, "shared")
    results: dict[int, int] = {}

    def worker(n: int) -> None:
        async def calls() -> int:
            ok = 0
            for _ in range(150):
                ok += await lane.get(key) == b"shared"
            return ok

        results[n] = asyncio.run(calls())

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a thread's event loop hung"
    assert results == {n: 150 for n in range(4)}
    sync.delete(key)
    sync.close()
    asyncio.run(lane.aclose())


async def test_a_connection_opened_across_aclose_is_not_kept(fake: FakeRedis) -> None:
    """Regression: aclose during a connect left the new connection open and in use."""
    lane = lane_to(fake.port)
    pending = asyncio.ensure_future(lane.execute("ECHO", "a"))
    await asyncio.sleep(0)  # the connect is under way
    await lane.aclose()
    with pytest.raises(redis_errors.ConnectionError):
        await pending
    assert lane._connections == {}
    await eventually(lambda: fake.closed == 1)  # the server sees that socket closed
    assert fake.connections == 1
    assert await lane.execute("ECHO", "b") == b"b"  # usable again, like a redis-py client
    await lane.aclose()


async def test_a_forgotten_lane_closes_its_socket_while_the_loop_runs(fake: FakeRedis) -> None:
    """Regression: the loop's reader callback kept a dropped lane's connection alive."""
    lane = lane_to(fake.port)
    assert await lane.execute("ECHO", "a") == b"a"
    del lane
    gc.collect()
    await eventually(lambda: fake.closed == 1)


async def test_a_ping_nobody_waits_for_any_more_leaves_no_stale_state(fake: FakeRedis) -> None:
    """Regression: a ping (or connect) whose every waiter was cancelled stayed stored."""
    lane = lane_to(fake.port, timeout=0.2)
    assert await lane.execute("ECHO", "a") == b"a"
    connection = lane._connections[asyncio.get_running_loop()]
    fake.stalled.add(1)
    connection.last_heard -= redis_lane.IDLE_CHECK_SECONDS + 1
    waiting = asyncio.ensure_future(lane.execute("ECHO", "b"))
    await asyncio.sleep(0)
    ping = connection.checking
    assert ping is not None  # the request waits for the ping
    waiting.cancel()
    # Nobody waits for the ping now: it still times out and reconnects on its own.
    await asyncio.wait_for(asyncio.wait({ping}), 10)
    assert connection.checking is None
    assert await lane.execute("ECHO", "c") == b"c"
    await lane.aclose()


async def test_a_failed_handshake_logs_nothing_and_names_its_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: SELECT's NOAUTH error after a failed AUTH was never retrieved."""
    server = FakeRedis(password="right")
    port = await server.start()
    try:
        lane = lane_to(port, password="wrong", db=2)
        for _ in range(3):
            with pytest.raises(redis_errors.AuthenticationError):
                await lane.execute("ECHO", "x")
        gc.collect()
        await asyncio.sleep(0)
        assert "never retrieved" not in caplog.text
    finally:
        await server.stop()


@pytest.mark.redis
async def test_a_loop_that_cannot_watch_sockets_falls_back_to_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Windows' proactor loop has no add_reader: the hot path must use redis-py, not 500."""
    client = Redis.from_url(REDIS_TEST_URL)
    key = f"lane-test:{uuid.uuid4().hex}"
    await client.set(key, "via the client")
    lane = RedisLane.for_client(client, 2.0)
    assert lane is not None
    loop = asyncio.get_running_loop()

    def no_add_reader(*args: Any) -> None:
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_reader", no_add_reader)
    try:
        assert await lane.get(key) == b"via the client"
        assert await lane.execute("PING") is True  # redis-py's own reply type: it served it
        assert lane._connections == {}
        bare = lane_to(6379)  # no client to fall back to: a ConnectionError (a 503)
        with pytest.raises(redis_errors.ConnectionError):
            await bare.execute("PING")
    finally:
        monkeypatch.undo()
        await client.delete(key)
        await lane.aclose()
        await client.aclose()
