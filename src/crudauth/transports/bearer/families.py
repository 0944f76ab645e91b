"""Refresh-token families: rotation on every use, and reuse detection (RFC 9700 §4.14.2).

Every sign-in starts a family; each ``/refresh`` replaces its one live member with a new one.
The store keeps one small record per family, under the SHA-256 of the family id, holding the
SHA-256 of the live member's ``jti`` (never a token). The record is written when the family
starts, before its first token is handed out, and every rotation is a ``compare_and_set``
against the record just read, so of two concurrent refreshes with the same token exactly one
wins.

No record means no family, whatever the generation: a record that expired, was lost with the
store's data (a Redis ``FLUSHALL``, a restart of a memory store) or never existed ends every
member of the family. Nothing but ``start`` ever creates a record, so a lost revocation can
never bring a family back to life.

Presenting a member that is no longer the live one means the token was copied: the whole family
is revoked, the live member included. Revocation overwrites the record with a tombstone that
lives as long as the family could have, so a revoked family can never start again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, Final

from crudauth.clock import Clock
from crudauth.storage.base import KeyValueStore

logger = logging.getLogger("crudauth")

TOMBSTONE: Final = "revoked"
_PREFIX: Final = "bearer:family:"


class Outcome(Enum):
    """What one refresh attempt came to."""

    ROTATED = "rotated"
    #: The token was the live member a moment ago and a concurrent refresh already rotated
    #: it, within the grace window: refused, but the family lives on.
    SUPERSEDED = "superseded"
    #: A spent member was presented: the family is now revoked.
    REUSED = "reused"
    #: The family is revoked, expired or unknown.
    DEAD = "dead"


@dataclass(frozen=True)
class FamilyRecord:
    """What the store keeps about one family."""

    current: str
    previous: str | None
    rotated_at: float
    generation: int

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, raw: str) -> FamilyRecord | None:
        try:
            data: Any = json.loads(raw)
            return cls(
                current=str(data["current"]),
                previous=None if data["previous"] is None else str(data["previous"]),
                rotated_at=float(data["rotated_at"]),
                generation=int(data["generation"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


def _digest(value: str) -> str:
    # Family ids and jtis are 256-bit random values: a plain SHA-256 cannot be inverted, and
    # unlike a keyed hash it survives a rotation of SECRET_KEY.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FamilyStart:
    """A new family and its first member, to be recorded before the member is handed out."""

    family: str
    jti: str
    expires_at: float


@dataclass(frozen=True)
class Presented:
    """The parts of a verified refresh token that rotation needs."""

    family: str
    jti: str
    user_id: str


class RefreshFamilies:
    """Rotate-or-revoke over a shared ``KeyValueStore``."""

    def __init__(
        self, store: KeyValueStore, clock: Clock, *, grace_seconds: float, leeway: float
    ) -> None:
        self.store = store
        self.clock = clock
        self.grace_seconds = grace_seconds
        self.leeway = leeway
        #: Background recordings (``start_soon``), held so the loop cannot drop them.
        self._recording: set[asyncio.Task[None]] = set()

    def key(self, family: str) -> str:
        return _PREFIX + _digest(family)

    def _ttl(self, until: float) -> float:
        return max(1.0, until - self.clock.now() + self.leeway)

    async def start(self, start: FamilyStart) -> None:
        """Record a new family whose live member is ``start.jti`` (generation 0)."""
        record = FamilyRecord(_digest(start.jti), None, self.clock.now(), 0)
        await self.store.set(self.key(start.family), record.dumps(), self._ttl(start.expires_at))

    def start_soon(self, start: FamilyStart) -> asyncio.Task[None] | None:
        """``start`` as a task on the running loop, for synchronous callers; ``None`` (and a
        warning) without a running loop, where the family can never be recorded."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.warning(
                "crudauth: issue_tokens() ran outside an event loop; its refresh token's family "
                "cannot be recorded, so the refresh token will be refused"
            )
            return None
        task = loop.create_task(self.start(start))
        self._recording.add(task)
        task.add_done_callback(self._recorded)
        return task

    def _recorded(self, task: asyncio.Task[None]) -> None:
        self._recording.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "crudauth: a refresh family could not be recorded (%s); its refresh token "
                "will be refused",
                type(task.exception()).__name__,
            )

    async def rotate(
        self, token: Presented, *, new_jti: str, new_expires_at: float, family_ends_at: float
    ) -> Outcome:
        """Make ``new_jti`` the family's live member if ``token`` is the live one now."""
        key = self.key(token.family)
        presented = _digest(token.jti)
        now = self.clock.now()
        if new_expires_at <= now:
            return Outcome.DEAD
        ttl = self._ttl(new_expires_at)
        raw = await self.store.get(key)
        record = self._parse(raw)
        if raw is None or record is None:
            # Expired, revoked, lost with the store's data, or never recorded: dead, and left
            # unwritten (a lost tombstone must not become a live family).
            return Outcome.DEAD
        if record.current == presented:
            following = FamilyRecord(_digest(new_jti), presented, now, record.generation + 1)
            if await self.store.compare_and_set(key, raw, following.dumps(), ttl):
                return Outcome.ROTATED
            record = self._parse(await self.store.get(key))  # someone rotated it just now
            if record is None:
                return Outcome.DEAD
        if (
            self.grace_seconds > 0
            and record.previous == presented
            and now - record.rotated_at <= self.grace_seconds
        ):
            return Outcome.SUPERSEDED
        await self.revoke(token.family, family_ends_at)
        logger.warning(
            "crudauth: refresh token reuse detected for user %s; the token family is revoked",
            token.user_id,
        )
        return Outcome.REUSED

    @staticmethod
    def _parse(raw: str | None) -> FamilyRecord | None:
        if raw is None or raw == TOMBSTONE:
            return None
        return FamilyRecord.loads(raw)

    async def revoke(self, family: str, family_ends_at: float) -> None:
        """End ``family`` for good: its live member and every member still to come.

        One ``set`` replaces the record, so there is no moment at which the key is absent and
        a first-generation token could start the family afresh.
        """
        await self.store.set(self.key(family), TOMBSTONE, self._ttl(family_ends_at))

    async def is_revoked(self, family: str) -> bool:
        return await self.store.get(self.key(family)) == TOMBSTONE
