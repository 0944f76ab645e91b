"""The per-user index of ``AbstractSessionStorage`` (``compat.py``): which values a user holds.

One JSON object ``{session id: bound}`` under ``{prefix without ':'}_users:{user id}``, where
each bound is a time after which that value is certainly gone. It is only ever changed by
compare-and-set, and a value is indexed before it is written, so the index lists every live
value of the user (and maybe some dead ones, which readers filter out).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from crudauth.clock import Clock
from crudauth.errors import StoreUnavailable
from crudauth.storage.base import KeyValueStore

#: How often a compare-and-set loop re-reads after losing a race before giving up.
MAX_ATTEMPTS = 100


def index_key(prefix: str, user_id: str) -> str:
    """Where the index of ``user_id``'s values kept under ``prefix`` lives."""
    return f"{prefix.rstrip(':')}_users:{user_id}"


async def indexed(store: KeyValueStore, key: str, clock: Clock) -> list[str]:
    """The ids the index under ``key`` lists with a bound still ahead (each may be dead)."""
    raw = await store.get(key)
    now = clock.now()
    return [sid for sid, bound in (json.loads(raw) if raw else {}).items() if bound > now]


async def change_index(
    store: KeyValueStore, key: str, clock: Clock, change: Callable[[dict[str, float]], object]
) -> None:
    """Apply ``change`` to the index's live entries by compare-and-set, retrying on conflict."""
    for _ in range(MAX_ATTEMPTS):
        raw = await store.get(key)
        before: dict[str, float] = json.loads(raw) if raw else {}
        now = clock.now()
        entries = {sid: bound for sid, bound in before.items() if bound > now}
        change(entries)
        # The index lives as long as its longest bound, even once emptied: it is cheaper
        # to let an empty object expire than to add a compare-and-delete to the port.
        ttl = max([*before.values(), *entries.values(), now]) - now
        if ttl <= 0:
            return  # nothing live to list, and nothing stored worth keeping
        new = json.dumps(entries, sort_keys=True)
        if raw is None:
            if await store.set_if_absent(key, new, ttl):
                return
        elif await store.compare_and_set(key, raw, new, ttl):
            return
    raise StoreUnavailable(f"{key!r} kept changing under a compare-and-set")
