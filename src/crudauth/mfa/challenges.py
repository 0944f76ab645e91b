"""Pending sign-ins waiting for their second factor.

A challenge is a 256-bit token handed to the client that passed the first factor, kept as a
browser-bound single-use record (``crudauth.storage.browser_bound``): the store keeps only its
keyed hash, with what the sign-in needs to resume: whose account, at which epoch (a password
reset while it waits kills it), through which transport and with which options, the lockout
slots the first factor holds, and for a cookie transport the keyed hash of a second random
value set as an HttpOnly cookie on that browser. Someone who learns the token alone (from a
log, a URL fragment) cannot answer it from another browser.

A challenge dies after ``challenge_ttl_seconds``, after ``max_code_attempts`` wrong codes, and
when it is answered: ``consume`` is one atomic get-and-delete, so of four workers answering the
same challenge at once, one resumes the sign-in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

from crudauth.keys import Purpose
from crudauth.runtime import AuthRuntime
from crudauth.storage.browser_bound import TOKEN_SHAPE as TOKEN_SHAPE
from crudauth.storage.browser_bound import BrowserBoundRecords, new_secret

_CAS_TRIES: Final = 20


@dataclass(frozen=True)
class ChallengeRecord:
    """What a pending sign-in remembers (stored as JSON under the token's keyed hash)."""

    user_id: str
    epoch: int
    transport: str
    options: dict[str, Any]
    first_factor: str
    expires_at: float
    #: Keyed hash of the binding cookie's value; ``None`` when the token itself is the only
    #: secret (a bearer client received it in its token response and nobody else did).
    binding: str | None = None
    #: The secret being enrolled, encrypted (an account that must use MFA and has none).
    setup: str | None = None
    attempts: int = 0
    #: The lockout subjects the first factor reserved, for the codes to count against.
    ip_key: str | None = None
    identifier_key: str | None = None
    subject: str | None = None
    account_key: str | None = None
    account_device_tag: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, raw: str) -> ChallengeRecord:
        return cls(**json.loads(raw))


class ChallengeStore:
    """Challenges in the shared single-use store (``auth.tokens``)."""

    def __init__(self, runtime: AuthRuntime, ttl: int, max_attempts: int) -> None:
        self.runtime = runtime
        self.ttl = ttl
        self.max_attempts = max_attempts
        self.records = BrowserBoundRecords(
            runtime.tokens,
            runtime.keys,
            prefix="mfa:challenge:",
            token_purpose=Purpose.MFA_CHALLENGE,
            binding_purpose=Purpose.MFA_BINDING,
        )

    new_token = staticmethod(new_secret)

    def binding_digest(self, value: str) -> str:
        return self.records.binding(value)

    def binding_matches(self, record: ChallengeRecord, presented: str | None) -> bool:
        if record.binding is None:
            return True
        return self.records.bound(record.binding, presented)

    async def create(self, token: str, record: ChallengeRecord) -> None:
        await self.records.put(token, record.dumps(), float(self.ttl))

    async def load(self, token: str) -> ChallengeRecord | None:
        """The live record, or ``None`` (unknown, expired, answered or dead)."""
        key = self.records.key(token)
        if key is None:
            return None
        raw = await self.runtime.tokens.get(key)
        if raw is None:
            return None
        record = ChallengeRecord.loads(raw)
        if record.expires_at <= self.runtime.clock.now():
            return None
        return record

    async def count_wrong(self, token: str) -> None:
        """One more wrong code; the challenge dies at ``max_attempts`` (atomically: four
        workers counting at once never leave it alive past the limit)."""
        key = self.records.key(token)
        if key is None:
            return
        store = self.runtime.tokens
        for _ in range(_CAS_TRIES):
            raw = await store.get(key)
            if raw is None:
                return
            record = ChallengeRecord.loads(raw)
            if record.attempts + 1 >= self.max_attempts:
                await store.delete(key)
                return
            left = max(1.0, record.expires_at - self.runtime.clock.now())
            updated = replace(record, attempts=record.attempts + 1).dumps()
            if await store.compare_and_set(key, raw, updated, left):
                return
        await store.delete(key)  # contended beyond reason: fail closed, the challenge dies

    async def consume(self, token: str) -> ChallengeRecord | None:
        """Take the challenge for good; ``None`` for every caller but one."""
        raw = await self.records.take(token)
        return None if raw is None else ChallengeRecord.loads(raw)

    async def discard(self, token: str) -> None:
        key = self.records.key(token)
        if key is not None:
            await self.runtime.tokens.delete(key)
