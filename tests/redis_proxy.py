"""A loopback TCP proxy in front of the test Redis that can hold back the server's replies.

A test that must see what happens *before* a reply arrives (a request cancelled while its
store read is in flight) cannot rely on Redis being slow: a fast server answers before the
test gets to act. Behind this proxy the test decides when replies arrive: ``hold()`` keeps
every byte the server sends, ``release()`` delivers them in order. Commands always reach the
server at once, so what is held is a reply that has really been produced.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class HoldingProxy:
    """Forwards every connection to ``upstream``; replies can be held and released."""

    def __init__(self, host: str = "127.0.0.1", port: int = 6379) -> None:
        self.upstream = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._holding = False
        self._held: list[tuple[asyncio.StreamWriter, bytes]] = []
        self._held_changed = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        await self._server.wait_closed()

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    # -- control ------------------------------------------------------------------------------

    def hold(self) -> None:
        """From now on, keep what the server sends instead of delivering it."""
        self._holding = True

    async def release(self) -> None:
        """Deliver everything held, in order, and forward freely again."""
        self._holding = False
        held, self._held = self._held, []
        for writer, data in held:  # all written before any new reply can be forwarded
            writer.write(data)
        for writer in {writer for writer, _ in held}:
            await writer.drain()

    async def until_held(self, replies: int = 1, timeout: float = 10.0) -> None:
        """Wait until the server has sent ``replies`` answers that are being held (one read
        each: the small replies of the hot path). The timeout only bounds a broken test."""

        async def wait() -> None:
            while len(self._held) < replies:
                self._held_changed.clear()
                await self._held_changed.wait()

        await asyncio.wait_for(wait(), timeout)

    # -- forwarding ---------------------------------------------------------------------------

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.upstream)
        self._writers += [client_w, server_w]
        for pump in (self._pump(client_r, server_w, False), self._pump(server_r, client_w, True)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, replies: bool
    ) -> None:
        try:
            while data := await source.read(65536):
                if replies and self._holding:
                    self._held.append((sink, data))
                    self._held_changed.set()
                    continue
                sink.write(data)
                await sink.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            sink.close()


@asynccontextmanager
async def holding_proxy() -> AsyncIterator[HoldingProxy]:
    proxy = HoldingProxy()
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
