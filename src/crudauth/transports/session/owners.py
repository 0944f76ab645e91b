"""Which user each session belongs to, remembered by the worker.

A session request needs two reads: the session record (the store) and the user row (SQL). The
record names the user, so done in turn they cost two waits. A session's owner never changes,
so once a worker has seen a session it knows whose row to read: ``SessionTransport`` then sends
the store read first and reads the row while the store's answer travels, and the request waits
once. The entry is only a hint: the store read still decides whether the session is alive, and
an entry for a session that has since ended costs one user-row read that is thrown away.
"""

from __future__ import annotations

from contextlib import suppress

#: Sessions remembered per transport and worker (a few hundred KiB at most).
OWNERS_SIZE = 4096


class SessionOwners:
    """A bounded map from a session's store key to its user id (oldest entries go first)."""

    __slots__ = ("_owners", "size")

    def __init__(self, size: int = OWNERS_SIZE) -> None:
        self.size = size
        self._owners: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self._owners.get(key)

    def remember(self, key: str, user_id: str) -> None:
        owners = self._owners
        if key not in owners:
            if len(owners) >= self.size:
                with suppress(KeyError, RuntimeError, StopIteration):  # another thread evicted
                    del owners[next(iter(owners))]
            owners[key] = user_id

    def forget(self, key: str) -> None:
        self._owners.pop(key, None)

    def __len__(self) -> int:
        return len(self._owners)
