"""The Redis client the per-request reads take in the bench (``run.py --client``).

crudauth's stores send their per-request reads (the session script, the single-use-value read)
through ``store._bound(script, key, args)``: on the pipelined lane by default, on the app's
redis-py client with ``pipelined=False``. To compare maintained clients that multiplex
requests over one connection, the bench swaps that one callable for one on another client:

- ``lane``: crudauth's pipelined connection (the default);
- ``redis-py``: the app's redis-py asyncio client (its connection pool);
- ``glide``: valkey-glide's ``GlideClient`` (Rust core, one multiplexed connection);
- ``coredis``: coredis's ``Redis`` client.

Every client runs the same scripts and the same check of the key in the reply, so the routes
do the same work apart from the client. Everything else (sign-in, revocation) stays on redis-py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from crudauth.storage.redis_support import ReplyMismatch, Script, bound_call, text

CLIENTS = ("lane", "redis-py", "glide", "coredis")


def _checked(reply: Any, key: str) -> Any:
    if isinstance(reply, list) and len(reply) == 2 and text(reply[0]) == key:
        return reply[1]
    raise ReplyMismatch("a Redis reply named another request's key")


def _glide(url: str) -> Callable[..., Any]:
    from glide import GlideClient, GlideClientConfiguration, NodeAddress, ProtocolVersion
    from glide import Script as GlideScript

    parts = urlsplit(url)
    config = GlideClientConfiguration(
        [NodeAddress(parts.hostname or "localhost", parts.port or 6379)],
        database_id=int(parts.path.strip("/") or 0),
        protocol=ProtocolVersion.RESP2,
        request_timeout=2000,
    )
    client: list[Any] = []
    lock = asyncio.Lock()
    scripts: dict[str, Any] = {}

    async def bound(script: Script, key: str, args: Any) -> Any:
        if not client:
            async with lock:
                if not client:
                    client.append(await GlideClient.create(config))
        glide_script = scripts.get(script.sha)
        if glide_script is None:
            glide_script = scripts[script.sha] = GlideScript(script.source)
        reply = await client[0].invoke_script(glide_script, keys=[key], args=[str(a) for a in args])
        return _checked(reply, key)

    return bound


def _coredis(url: str) -> Callable[..., Any]:
    import coredis

    parts = urlsplit(url)
    client = coredis.Redis(
        host=parts.hostname or "localhost",
        port=parts.port or 6379,
        db=int(parts.path.strip("/") or 0),
        stream_timeout=2.0,
        connect_timeout=2.0,
    )

    ready: list[asyncio.Event] = []
    holders: list[asyncio.Task[None]] = []

    async def hold(event: asyncio.Event) -> None:
        # coredis 5+ serves commands only inside the client's context, whose task group must
        # be entered and left by one task: a task of its own that lives as long as the loop.
        async with client:
            event.set()
            await asyncio.Event().wait()

    async def bound(script: Script, key: str, args: Any) -> Any:
        if not ready:
            ready.append(asyncio.Event())
            holders.append(asyncio.get_running_loop().create_task(hold(ready[0])))
        if not ready[0].is_set():
            await ready[0].wait()
        try:
            reply = await client.evalsha(script.sha, keys=[key], args=[str(a) for a in args])
        except coredis.exceptions.NoScriptError:
            reply = await client.eval(script.source, keys=[key], args=[str(a) for a in args])
        return _checked(reply, key)

    return bound


def install(stores: list[Any], kind: str, url: str) -> None:
    """Send ``stores``' per-request reads through the client ``kind`` (see ``CLIENTS``)."""
    if kind == "lane":
        return
    shared = {"glide": _glide, "coredis": _coredis}.get(kind)
    bound = shared(url) if shared is not None else None
    for store in stores:
        if getattr(store, "lane", None) is None:
            continue
        store.lane = None
        store.starts_loads = False  # the session transport then awaits ``load``
        store._bound = bound or partial(bound_call, store.client)
