"""One pipelined Redis connection for the per-request hot path.

redis-py's asyncio client sends every command on a pooled connection of its own and wakes the
event loop once per reply: about 100 us of CPU per command with 32 requests in flight on one
core (docs/performance.md). Authentication pays that on every request, so the per-request
commands (the session script, the bearer claims read and the throttle, all scripts) take a
lane instead:

- one connection per event loop, shared by every request of the worker;
- commands issued in one turn of the loop leave in one write;
- replies are parsed by hiredis as they arrive and handed to their callers in order.

That costs about 10 us per command. Everything else (logins, revocation, lockout, the session
index) stays on the application's redis-py client with its pools and retries; a client that
only redis-py can reach (Cluster, Sentinel, TLS, a credential provider) gets no lane at all.

Every per-request reply is bound to its request: the scripts sent through ``bound`` return
``[key, value]``, and the connection checks the key against the one the request named before
it hands the value to anyone (a cancelled request's reply is checked too). A reply that names
another key, or is not shaped so, means the connection is out of step: it is dropped at once,
every request waiting on it fails with ``ReplyMismatch`` (a ``ConnectionError``, so the store
answers 503), and the next command opens a fresh connection. Matching by order alone would
hand request B the session request A read.

Failure model, as strict as the client's: a reply that does not arrive within the socket
timeout fails every command waiting on the connection and drops it (replies are matched by
order, so a stalled connection cannot be trusted again); a lost connection fails its waiters;
the next command reconnects. Errors are redis-py's exception classes, so callers handle both
paths alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis import exceptions as redis_errors

from crudauth.storage.redis_support import SOCKET_TIMEOUT, ReplyMismatch, Script, bound_call

hiredis: Any
try:  # the ``redis`` extra installs it; without it the hot path stays on redis-py
    import hiredis
except ImportError:  # pragma: no cover - exercised by tests that hide the module
    hiredis = None


def bulk(arg: Any) -> bytes:
    """One argument of a command in RESP (a bulk string)."""
    if isinstance(arg, bytes):
        data = arg
    elif isinstance(arg, str):
        data = arg.encode("utf-8")
    elif isinstance(arg, float):
        data = repr(arg).encode("ascii")
    elif isinstance(arg, int):
        data = b"%d" % arg
    else:
        raise redis_errors.DataError(f"cannot send {type(arg).__name__} to Redis")
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack(args: Sequence[Any]) -> bytes:
    """A command in RESP: an array of bulk strings."""
    return b"*%d\r\n%b" % (len(args), b"".join([bulk(arg) for arg in args]))


_PING = pack(("PING",))
#: A connection quiet for this long is pinged before its next command (redis-py's
#: ``health_check_interval`` does the same for the client's pooled connections).
IDLE_CHECK_SECONDS = 30.0


def _error(reply: redis_errors.ResponseError) -> redis_errors.ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return redis_errors.NoScriptError(message)
    return redis_errors.ResponseError(message)


class _Connection:
    """One socket: an outbox flushed once per loop turn, waiters answered in order.

    Driven by ``add_reader`` on the socket rather than an asyncio transport, so that a lane
    nobody closed (its application never called ``shutdown``) closes its socket quietly when
    it is collected, on a running or an already closed loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, timeout: float):
        self.loop = loop
        self.timeout = timeout
        self.reader = hiredis.Reader(
            protocolError=redis_errors.InvalidResponse, replyError=redis_errors.ResponseError
        )
        #: (future, deadline, the key its reply must name or ``None`` for an unbound command)
        self.waiters: deque[tuple[asyncio.Future[Any], float, bytes | None]] = deque()
        self.outbox: list[bytes] = []
        self.unsent = bytearray()
        #: Why the connection is unusable; ``None`` while it is healthy.
        self.broken: BaseException | None = None
        self._sock = sock
        self._flush_due = False
        self._watchdog: asyncio.TimerHandle | None = None
        #: When the server last sent anything (see ``RedisLane._checked``).
        self.last_heard = loop.time()
        self.checking: asyncio.Task[_Connection] | None = None
        self._release = weakref.finalize(self, _release, loop, sock)
        # The loop holds the connection only weakly: a lane nobody closed is collected, and
        # its finalizer closes the socket, while the loop runs on.
        self._ref = weakref.ref(self)
        loop.add_reader(sock.fileno(), _call, self._ref, "_readable")

    # -- socket events ------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(redis_errors.ConnectionError(f"connection to Redis lost: {exc}"))
            return
        if not data:
            self.fail(redis_errors.ConnectionError("Redis closed the connection"))
            return
        self.last_heard = self.loop.time()
        self.reader.feed(data)
        waiters = self.waiters
        while True:
            try:
                reply = self.reader.gets()
            except redis_errors.InvalidResponse as exc:
                self.fail(exc)
                return
            if reply is False:
                return
            if not waiters:
                self.fail(redis_errors.InvalidResponse("Redis sent a reply nobody asked for"))
                return
            future, _, tag = waiters.popleft()
            if tag is not None and not isinstance(reply, redis_errors.ResponseError):
                if type(reply) is not list or len(reply) != 2 or reply[0] != tag:
                    mismatch = ReplyMismatch("a Redis reply named another request's key")
                    if not future.done():
                        future.set_exception(ReplyMismatch(*mismatch.args))
                    self.fail(mismatch)
                    return
                reply = reply[1]
            if future.done():  # the caller went away; its reply still had to be consumed
                continue
            if isinstance(reply, redis_errors.ResponseError):
                future.set_exception(_error(reply))
            else:
                future.set_result(reply)

    def _write(self, data: bytes | bytearray) -> None:
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.fail(redis_errors.ConnectionError(f"connection to Redis lost: {exc}"))
            return
        if sent < len(data):
            first = not self.unsent
            self.unsent += data[sent:]
            if first:
                self.loop.add_writer(self._sock.fileno(), _call, self._ref, "_writable")

    def _writable(self) -> None:
        data, self.unsent = bytes(self.unsent), bytearray()
        self.loop.remove_writer(self._sock.fileno())
        self._write(data)

    # -- commands -----------------------------------------------------------------------------

    def send(self, payload: bytes, tag: bytes | None = None) -> asyncio.Future[Any]:
        if self.broken is not None:
            raise type(self.broken)(*self.broken.args)
        loop = self.loop
        future = loop.create_future()
        deadline = loop.time() + self.timeout
        self.waiters.append((future, deadline, tag))
        self.outbox.append(payload)
        if not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = loop.call_at(deadline, _call, self._ref, "_watch")
        return future

    def _flush(self) -> None:
        self._flush_due = False
        if self.broken is not None or not self.outbox:
            return
        data = b"".join(self.outbox)
        self.outbox.clear()
        if self.unsent:  # a partial write is still waiting for the socket: queue behind it
            self.unsent += data
        else:
            self._write(data)

    def _watch(self) -> None:
        # One timer per connection, not one per command: it follows the oldest waiter.
        self._watchdog = None
        if self.broken is not None or not self.waiters:
            return
        deadline = self.waiters[0][1]
        if deadline <= self.loop.time():
            self.fail(redis_errors.TimeoutError(f"Redis did not answer within {self.timeout:g} s"))
        else:
            self._watchdog = self.loop.call_at(deadline, _call, self._ref, "_watch")

    def fail(self, exc: BaseException) -> None:
        """Mark the connection unusable, fail every waiter and close the socket."""
        if self.broken is None:
            self.broken = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self.waiters:
            future, _, _ = self.waiters.popleft()
            if not future.done():
                future.set_exception(type(exc)(*exc.args))
        self.outbox.clear()
        self.unsent.clear()
        self._release()

    def close(self) -> None:
        self.fail(self.broken or redis_errors.ConnectionError("connection closed"))


def lane_for(client: Any, pipelined: bool) -> RedisLane | None:
    """The lane a Redis-backed store uses for its per-request commands, if any.

    A client with no ``socket_timeout`` of its own gets ``SOCKET_TIMEOUT`` on the lane: a hung
    Redis must fail a request, not hold it."""
    return RedisLane.for_client(client, SOCKET_TIMEOUT) if pipelined else None


def _call(ref: weakref.ref[_Connection], method: str) -> None:
    connection = ref()
    if connection is not None:
        getattr(connection, method)()


def _release(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Unregister and close a lane's socket (also run when a forgotten lane is collected)."""
    fd = sock.fileno()
    if fd >= 0 and not loop.is_closed():
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            loop.remove_reader(fd)
            loop.remove_writer(fd)
    sock.close()


class _NoSocketWatch(redis_errors.ConnectionError):
    """This event loop cannot watch sockets (Windows' proactor loop): use the client."""


class RedisLane:
    """A pipelined connection per event loop for hot-path commands; see the module docstring.

    ``fallback`` (the redis-py client the lane was made for) serves the commands on an event
    loop that cannot watch sockets.
    """

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 2.0,
        connect_timeout: float = 2.0,
        fallback: Any = None,
    ) -> None:
        if hiredis is None:
            raise RuntimeError("RedisLane needs hiredis (pip install 'crudauth[redis]')")
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("RedisLane timeouts must be positive")
        self.host, self.port, self.path, self.db = host, port, path, db
        self.username, self.password = username, password
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.fallback = fallback
        #: One connection per event loop (a loop's sockets belong to that loop's thread).
        self._connections: dict[asyncio.AbstractEventLoop, _Connection] = {}
        self._connecting: dict[asyncio.AbstractEventLoop, asyncio.Task[_Connection]] = {}
        #: Moves at every ``aclose``: a connection opened across it is not kept.
        self._generation = 0
        self._no_socket_watch = False
        self._script_heads: dict[tuple[str, int], bytes] = {}

    @classmethod
    def for_client(cls, client: Any, default_timeout: float) -> RedisLane | None:
        """A lane to the server behind a plain redis-py asyncio client, else ``None``."""
        if hiredis is None:
            return None
        from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
        from redis.asyncio.connection import Connection, UnixDomainSocketConnection

        pool: Any = getattr(client, "connection_pool", None)
        if not isinstance(client, Redis) or type(pool) not in (
            ConnectionPool,
            BlockingConnectionPool,
        ):
            return None
        kwargs = pool.connection_kwargs
        kind = pool.connection_class
        if kind not in (Connection, UnixDomainSocketConnection):
            return None  # TLS, Sentinel-managed or custom connections: redis-py only
        if kwargs.get("credential_provider") is not None:
            return None
        return cls(
            host=str(kwargs.get("host", "localhost")),
            port=int(kwargs.get("port", 6379)),
            path=kwargs.get("path") if kind is UnixDomainSocketConnection else None,
            db=int(kwargs.get("db") or 0),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            timeout=kwargs.get("socket_timeout") or default_timeout,
            connect_timeout=kwargs.get("socket_connect_timeout") or default_timeout,
            fallback=client,
        )

    # -- the redis-py subset the hot path uses -------------------------------------------------

    async def execute(self, *args: Any) -> Any:
        try:
            return await self.send(pack(args))
        except _NoSocketWatch:
            return await self._fallback().execute_command(*args)

    async def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        try:
            return await self.send(self._evalsha_payload(sha, numkeys, args))
        except _NoSocketWatch:
            return await self._fallback().evalsha(sha, numkeys, *args)

    async def bound(self, script: Script, key: str, args: Sequence[Any]) -> Any:
        """Run ``script`` (one key; it returns ``[key, value]``) and return ``value`` once the
        reply is checked to name ``key``; see the module docstring."""
        tag = key.encode("utf-8")
        try:
            try:
                return await self.send(self._evalsha_payload(script.sha, 1, (key, *args)), tag)
            except redis_errors.NoScriptError:
                return await self.send(pack(("EVAL", script.source, 1, key, *args)), tag)
        except _NoSocketWatch:
            return await bound_call(self._fallback(), script, key, args)

    def send_started(self, payload: bytes, tag: bytes) -> asyncio.Future[Any] | None:
        """Queue a bound command already in RESP (see ``bulk``) on this loop's connection now
        and return its reply's future, so the caller can do other work while it travels;
        ``None`` when the connection is not ready without waiting (none yet, broken, or due
        for its idle ping): then use ``bound``. ``tag`` is the key the reply must name.

        Must be called from a coroutine on the loop. The caller owns the future: await it, or
        cancel it (a cancelled future's reply is still read, checked and dropped)."""
        connection = self._connections.get(asyncio.get_running_loop())
        if (
            connection is None
            or connection.broken is not None
            or connection.checking is not None
            or connection.loop.time() - connection.last_heard > IDLE_CHECK_SECONDS
        ):
            return None
        return connection.send(payload, tag)

    def _evalsha_payload(self, sha: str, numkeys: int, args: Sequence[Any]) -> bytes:
        head = self._script_heads.get((sha, numkeys))
        if head is None:
            head = self._script_heads[sha, numkeys] = b"".join(
                [bulk("EVALSHA"), bulk(sha), bulk(numkeys)]
            )
        return b"*%d\r\n%b%b" % (3 + len(args), head, b"".join([bulk(a) for a in args]))

    async def eval(self, script: str, numkeys: int, *args: Any) -> Any:
        return await self.execute("EVAL", script, numkeys, *args)

    async def get(self, key: str) -> Any:
        return await self.execute("GET", key)

    def _fallback(self) -> Any:
        if self.fallback is None:
            raise redis_errors.ConnectionError("this event loop cannot watch sockets")
        return self.fallback

    async def send(self, payload: bytes, tag: bytes | None = None) -> Any:
        """Send one packed command and return its reply (bound to ``tag`` if given)."""
        loop = asyncio.get_running_loop()
        connection = self._connections.get(loop)
        if connection is None or connection.broken is not None:
            connection = await self._connect(loop)
        elif connection.checking is not None or (
            loop.time() - connection.last_heard > IDLE_CHECK_SECONDS
        ):
            connection = await self._checked(connection)
        return await connection.send(payload, tag)

    async def aclose(self) -> None:
        """Close every connection (a later command opens a new one, as redis-py's does)."""
        self._generation += 1
        connections, self._connections = self._connections, {}
        # Connections still being opened are not kept: ``_open`` sees the new generation.
        for connection in connections.values():
            _drop(connection)

    # -- connecting ----------------------------------------------------------------------------

    async def _checked(self, connection: _Connection) -> _Connection:
        """A connection that has been quiet for a while, pinged first (a server's idle timeout
        or a NAT may have dropped it without a word); a fresh one if the ping fails. Requests
        arriving meanwhile wait for the same ping."""
        task = connection.checking
        if task is None:
            task = connection.checking = connection.loop.create_task(self._ping(connection))
            # Cleared when it ends, even if every request waiting for it was cancelled.
            task.add_done_callback(lambda _: setattr(connection, "checking", None))
        return await asyncio.shield(task)

    async def _ping(self, connection: _Connection) -> _Connection:
        try:
            pong = await connection.send(_PING)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            return await self._connect(connection.loop)
        if pong != b"PONG":  # out of step: this reply was some other command's
            connection.fail(ReplyMismatch("the lane's PING was answered by another reply"))
            return await self._connect(connection.loop)
        return connection

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        if self._no_socket_watch:
            raise _NoSocketWatch("this event loop cannot watch sockets")
        current = self._connections.get(loop)
        if current is not None:
            if current.broken is None:
                return current  # another request reconnected first
            del self._connections[loop]
            _drop(current)
        for other in [other for other in self._connections if other.is_closed()]:
            _drop(self._connections.pop(other))  # loops that are gone (tests, asyncio.run)
        task = self._connecting.get(loop)
        if task is None:
            task = self._connecting[loop] = loop.create_task(self._open(loop, self._generation))
            task.add_done_callback(lambda done: self._connecting.pop(loop, None))
        return await asyncio.shield(task)

    async def _open(self, loop: asyncio.AbstractEventLoop, generation: int) -> _Connection:
        try:
            sock = await asyncio.wait_for(self._socket(loop), self.connect_timeout)
        except asyncio.TimeoutError:
            raise redis_errors.TimeoutError("timed out connecting to Redis") from None
        except OSError as exc:
            raise redis_errors.ConnectionError(f"cannot connect to Redis: {exc}") from None
        try:
            connection = _Connection(loop, sock, self.timeout)
        except NotImplementedError:
            sock.close()
            self._no_socket_watch = True
            raise _NoSocketWatch("this event loop cannot watch sockets") from None
        auth = None
        if self.password is not None:
            credentials = (self.username, self.password) if self.username else (self.password,)
            auth = connection.send(pack(("AUTH", *credentials)))
        select = connection.send(pack(("SELECT", self.db))) if self.db else None
        try:
            replies = await asyncio.gather(
                *(f for f in (auth, select) if f is not None), return_exceptions=True
            )
        except BaseException:
            connection.close()
            raise
        errors = [r for r in replies if isinstance(r, BaseException)]
        if errors:
            connection.close()
            if auth is not None and isinstance(replies[0], redis_errors.ResponseError):
                raise redis_errors.AuthenticationError(f"Redis refused the lane: {replies[0]}")
            raise redis_errors.ConnectionError(f"Redis refused the lane's setup: {errors[0]}")
        if generation != self._generation:  # closed while this connection was being opened
            connection.close()
            raise redis_errors.ConnectionError("the lane was closed")
        self._connections[loop] = connection
        return connection

    async def _socket(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        targets: list[tuple[int, Any]]
        if self.path is not None:
            targets = [(socket.AF_UNIX, self.path)]
        else:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            targets = [(family, address) for family, _, _, _, address in infos]
        error: OSError = OSError(f"no address for {self.host}")
        for family, address in targets:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                if family != socket.AF_UNIX:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        raise error


def _drop(connection: _Connection) -> None:
    """Close a connection from whichever thread: its loop's own work runs on its loop."""
    loop = connection.loop
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running or loop.is_closed():
        connection.close()
        return
    with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
        loop.call_soon_threadsafe(connection.close)
