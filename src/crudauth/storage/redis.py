"""Redis backends: sessions and single-use values, shared by every worker.

Layout (``ns`` defaults to ``crudauth:``):

- ``{ns}session:<digest>``: a HASH, one JSON-encoded field per record attribute, expiring with
  the session. Attributes live in separate fields so that an update rewrites only what it
  changes, and the hot-path script never re-encodes JSON (Redis's cjson rounds numbers). One
  more field, ``activity_us``, is the server's ``TIME`` when the record was created or last
  slid: the per-user cap ranks by it.
- ``{ns}{u:<user id>}:sessions``: a sorted set of the user's record keys. The hash tag keeps
  every per-user key in one Cluster slot.
- ``{ns}kv:<key>``: single-use values.

Every call that validates a session is one script: check, slide and re-arm in one round trip
(EVALSHA plus one HGETALL inside it; the slide adds HSET and EXPIRE at most once a minute).
That script and the token store's GET travel on a pipelined connection shared by the worker's
requests (``redis_lane.py``) when the client is a plain redis-py client and hiredis is
installed; ``pipelined=False`` keeps them on the client. On either path the script's reply
names the key it read, and a reply naming another key fails the request closed (see
``redis_lane.py``).

A sign-in writes the record and its index in one pipeline on a single server (the record
first), and reads the members' ranks only when the user holds more sessions than the cap.
The scripts and the record's encoding are in ``redis_scripts.py``.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from time import perf_counter
from typing import Any

from redis.exceptions import NoScriptError

from crudauth.storage.base import KeyValueStore, SessionRecord, SessionStore, StartedLoad
from crudauth.storage.redis_lane import bulk, lane_for
from crudauth.storage.redis_scripts import (
    _COMPARE_AND_SET,
    _CREATE,
    _FIELDS,
    _GET,
    _INDEX,
    _LOAD,
    _LOAD_HEAD,
    _RANKED_BY,
    _TAKE_OWNER,
    _UPDATE,
    _decode,
    _decode_loaded,
    _encode,
)
from crudauth.storage.redis_support import (
    FAILURES,
    Degradations,
    bound_call,
    check_server,
    client_from_url,
    close_client,
    guarded,
    text,
)


def _is_cluster(client: Any) -> bool:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(client, RedisCluster)


class _StartedLoad:
    """The hot-path script, sent on the lane; decoded when the caller awaits ``record``."""

    __slots__ = ("future", "key", "now", "slide_after", "started", "store")

    def __init__(
        self,
        store: RedisSessionStore,
        future: asyncio.Future[Any],
        key: str,
        now: float,
        slide_after: float,
    ) -> None:
        self.store = store
        self.future = future
        self.key = key
        self.now = now
        self.slide_after = slide_after
        self.started = perf_counter() if store.degradations.sampled() else 0.0

    async def record(self) -> SessionRecord | None:
        try:
            values = await self.future
        except NoScriptError:  # the server restarted or was flushed: the loading path
            return await self.store.load(self.key, now=self.now, slide_after=self.slide_after)
        except FAILURES as exc:
            raise self.store.degradations.unavailable(exc) from None
        if self.started:
            self.store.degradations.timed(self.started)
        return _decode_loaded(values)

    def discard(self) -> None:
        future = self.future
        if not future.done():
            future.cancel()  # the lane still reads its reply, and drops it
        elif not future.cancelled():
            future.exception()  # retrieved: no "exception was never retrieved" at collection


class RedisSessionStore(SessionStore):
    """Sessions in Redis (single node, Sentinel through an injected client, or Cluster)."""

    kind = "redis"

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        namespace: str = "crudauth:",
        prefix: str = "session:",
        pipelined: bool = True,
    ) -> None:
        self._owned = client is None
        self.client = client if client is not None else client_from_url(url)
        self.namespace = namespace
        self.prefix = prefix
        self.degradations = Degradations("session store")
        self.lane = lane_for(self.client, pipelined)
        self._bound: Any = self.lane.bound if self.lane else partial(bound_call, self.client)
        self.starts_loads = self.lane is not None
        #: One server (or a Sentinel-managed primary): independent writes share a pipeline.
        self._one_node = not _is_cluster(self.client)

    def _key(self, key: str) -> str:
        return f"{self.namespace}{self.prefix}{key}"

    def _index(self, user_id: str) -> str:
        return f"{self.namespace}{{u:{user_id}}}:{self.prefix.rstrip(':')}s"

    def _short(self, full: str) -> str:
        return full[len(self.namespace) + len(self.prefix) :]

    async def initialize(self) -> None:
        await check_server(self.client, "sessions")

    async def close(self) -> None:
        if self.lane is not None:
            await self.lane.aclose()
        if self._owned:
            await close_client(self.client)

    async def create(self, key: str, record: SessionRecord, *, max_per_user: int) -> list[str]:
        full = self._key(key)
        ttl = max(1, int(record.deadline() - record.last_activity + 1))
        index = self._index(record.user_id)
        index_ttl = max(ttl, int(record.absolute_expires_at - record.created_at) + 3600)
        create_args = [ttl, *_encode(record)]
        index_args = [full, index_ttl]
        async with guarded(self.degradations):
            if self._one_node:
                # One connection, one round trip: the server runs the two scripts in the order
                # sent, so the record exists before the index names it, as when they are sent
                # one after the other. The source travels (a pipeline cannot retry NOSCRIPT).
                pipe = self.client.pipeline(transaction=False)
                pipe.eval(_CREATE.source, 1, full, *create_args)
                pipe.eval(_INDEX.source, 2, index, index + ":seq", *index_args)
                _, flat = await pipe.execute()
            else:  # Cluster: the record and the index live on different nodes
                await _CREATE(self.client, [full], create_args)
                flat = await _INDEX(self.client, [index, index + ":seq"], index_args)
            pairs = iter(flat)
            members = [(text(m), float(text(score))) for m, score in zip(pairs, pairs, strict=True)]
            if 0 < len(members) <= max_per_user:
                return []  # within the cap whatever their ranks: nothing to read or evict
            return await self._enforce_cap(index, members, max_per_user)

    async def _enforce_cap(
        self, index: str, members: list[tuple[str, float]], max_per_user: int
    ) -> list[str]:
        # Read every member's rank in one pipeline; drop the dead from the index, then evict
        # the least recently active beyond the cap. Every worker ranks by the same stored
        # values (the server's time of the last create or slide, then the login sequence), so
        # concurrent logins together leave exactly the top N, never fewer.
        pipe = self.client.pipeline(transaction=False)
        for member, _ in members:
            pipe.hmget(member, _RANKED_BY, "last_activity")
        ranks = await pipe.execute()
        live: list[tuple[int, float, str]] = []
        dead: list[str] = []
        for (member, seq), (stamp, last) in zip(members, ranks, strict=True):
            if last is None:
                dead.append(member)
            elif stamp is not None:
                live.append((int(text(stamp)), seq, member))
            else:  # written before records carried the stamp: the worker's time stands in
                live.append((int(float(text(last)) * 1_000_000), seq, member))
        evicted: list[str] = []
        if max_per_user > 0 and len(live) > max_per_user:
            live.sort(reverse=True)
            evicted = [member for _, _, member in live[max_per_user:]]
        doomed = dead + evicted
        if doomed:
            pipe = self.client.pipeline(transaction=False)
            for member in evicted:
                pipe.delete(member)
            pipe.zrem(index, *doomed)
            await pipe.execute()
        return [self._short(m) for m in evicted]

    async def load(self, key: str, *, now: float, slide_after: float) -> SessionRecord | None:
        started = perf_counter() if self.degradations.sampled() else 0.0
        try:
            values = await self._bound(_LOAD, self._key(key), [repr(now), slide_after])
        except FAILURES as exc:
            raise self.degradations.unavailable(exc) from None
        if started:
            self.degradations.timed(started)
        return _decode_loaded(values)

    def start_load(self, key: str, *, now: float, slide_after: float) -> StartedLoad | None:
        if self.lane is None:
            return None
        full = self._key(key)
        future = self.lane.send_started(self._load_command(full, now, slide_after), full.encode())
        if future is None:
            return None
        return _StartedLoad(self, future, key, now, slide_after)

    def _load_command(self, full: str, now: float, slide_after: float) -> bytes:
        """``EVALSHA <load> 1 <key> <now> <slide_after>`` in RESP, as ``evalsha`` would send
        it, with the script's head encoded once (``_LOAD_HEAD``)."""
        return b"%b%b%b%b" % (
            _LOAD_HEAD,
            bulk(full),
            bulk(repr(now)),
            bulk(slide_after),
        )

    async def update(self, key: str, changes: dict[str, Any]) -> bool:
        unknown = set(changes) - _FIELDS
        if unknown:
            raise ValueError(f"unknown session fields: {sorted(unknown)}")
        flat: list[str] = []
        for name, value in changes.items():
            flat += [name, json.dumps(value)]
        async with guarded(self.degradations):
            return bool(await _UPDATE(self.client, [self._key(key)], flat))

    async def delete(self, key: str) -> bool:
        full = self._key(key)
        async with guarded(self.degradations):
            deleted, user_id = (await _TAKE_OWNER(self.client, [full], []) + [None])[:2]
            if user_id is not None:
                await self.client.zrem(self._index(json.loads(text(user_id))), full)
        return bool(deleted)

    async def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        index = self._index(user_id)
        kept = self._key(keep) if keep is not None else None
        async with guarded(self.degradations):
            members = [text(m) for m in await self.client.zrange(index, 0, -1)]
            doomed = [m for m in members if m != kept]
            if not doomed:
                return 0
            pipe = self.client.pipeline(transaction=False)
            for member in doomed:
                pipe.delete(member)
            pipe.zrem(index, *doomed)
            results = await pipe.execute()
        return sum(int(r) for r in results[: len(doomed)])

    async def list_for_user(self, user_id: str) -> list[tuple[str, SessionRecord]]:
        index = self._index(user_id)
        async with guarded(self.degradations):
            members = [text(m) for m in await self.client.zrange(index, 0, -1)]
            if not members:
                return []
            pipe = self.client.pipeline(transaction=False)
            for member in members:
                pipe.hgetall(member)
            rows = await pipe.execute()
            out: list[tuple[str, SessionRecord]] = []
            dead: list[str] = []
            for member, row in zip(members, rows, strict=True):
                if row:
                    flat = [x for pair in row.items() for x in pair]
                    out.append((self._short(member), _decode(flat)))
                else:
                    dead.append(member)
            if dead:
                await self.client.zrem(index, *dead)
        return out


class RedisKeyValueStore(KeyValueStore):
    """Single-use values in Redis: ``SET NX EX`` and ``GETDEL`` are atomic on the server."""

    kind = "redis"

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        namespace: str = "crudauth:",
        pipelined: bool = True,
    ) -> None:
        self._owned = client is None
        self.client = client if client is not None else client_from_url(url)
        self.namespace = namespace
        self.degradations = Degradations("token store")
        self.lane = lane_for(self.client, pipelined)
        self._bound: Any = self.lane.bound if self.lane else partial(bound_call, self.client)

    def _key(self, key: str) -> str:
        return f"{self.namespace}kv:{key}"

    async def initialize(self) -> None:
        await check_server(self.client, "single-use tokens")

    async def close(self) -> None:
        if self.lane is not None:
            await self.lane.aclose()
        if self._owned:
            await close_client(self.client)

    async def set(self, key: str, value: str, ttl: float) -> None:
        async with guarded(self.degradations):
            await self.client.set(self._key(key), value, px=max(1, int(ttl * 1000)))

    async def get(self, key: str) -> str | None:
        try:
            value = await self._bound(_GET, self._key(key), ())
        except FAILURES as exc:
            raise self.degradations.unavailable(exc) from None
        return None if value is None else text(value)

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        async with guarded(self.degradations):
            stored = await self.client.set(
                self._key(key), value, px=max(1, int(ttl * 1000)), nx=True
            )
        return bool(stored)

    async def get_and_delete(self, key: str) -> str | None:
        async with guarded(self.degradations):
            value = await self.client.getdel(self._key(key))
        return None if value is None else text(value)

    async def compare_and_set(self, key: str, expected: str, value: str, ttl: float) -> bool:
        ms = max(1, int(ttl * 1000))
        async with guarded(self.degradations):
            return bool(
                await _COMPARE_AND_SET(self.client, [self._key(key)], [expected, value, ms])
            )

    async def delete(self, key: str) -> bool:
        async with guarded(self.degradations):
            return bool(await self.client.delete(self._key(key)))
