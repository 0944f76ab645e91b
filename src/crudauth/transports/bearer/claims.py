"""The per-user claims entries behind ``current_user(load_user=False)`` for bearer tokens.

A JWT alone cannot be revoked before it expires, and it does not carry the user's flags. So the
claims path keeps, per user, a small entry in the token store: the user's token_version,
is_active and flags, read from the database on a miss and kept for at most one access-token
lifetime. ``revoke`` overwrites it with a tombstone, so a revocation through the library bites
on the next request; fills use SET NX / compare-and-set against the value they read, so a fill
racing a revocation never wins.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from crudauth.errors import InvalidToken
from crudauth.runtime import AuthRuntime
from crudauth.transports.base import own_session
from crudauth.transports.shared import build_principal, claims_snapshot

#: What revocation writes in place of an entry (``revoked:<nonce>``).
REVOKED = "revoked:"


class ClaimsEntries:
    """Read, fill and revoke the per-user entries in the shared token store."""

    def __init__(self, runtime: AuthRuntime, transport: str, ttl: float) -> None:
        self.runtime = runtime
        self.transport = transport
        self.ttl = ttl

    @staticmethod
    def key(subject: str) -> str:
        return f"{{u:{subject}}}:bearer-claims"

    async def get(self, subject: str, *, stale: bool) -> dict[str, Any]:
        """The entry of user ``subject`` (one GET); read from the database and stored on a miss.

        ``stale=True`` skips the stored entry (it is older than the token in hand)."""
        tokens = self.runtime.tokens
        key = self.key(subject)
        current = None if stale else await tokens.get(key)
        entry = parse_entry(current)
        if entry is not None:
            return entry
        if stale:
            current = await tokens.get(key)
        repo = self.runtime.repo
        async with own_session(self.runtime.session_dependency) as db:
            user = await repo.get(db, subject)
            if user is None:
                raise InvalidToken("account gone")
            row = repo.auth_row(user)
            principal = build_principal(self.runtime, user, self.transport, {}, row=row)
            entry = {
                "ver": row.token_version,
                "active": row.is_active,
                **claims_snapshot(principal),
            }
        value = json.dumps(entry, separators=(",", ":"))
        if current is None:
            await tokens.set_if_absent(key, value, self.ttl)
        else:
            await tokens.compare_and_set(key, current, value, self.ttl)
        return entry

    async def revoke(self, user_id: Any) -> None:
        """Tombstone ``user_id``'s entry for one access-token lifetime."""
        value = REVOKED + secrets.token_urlsafe(16)
        await self.runtime.tokens.set(self.key(str(user_id)), value, self.ttl)


def parse_entry(value: str | None) -> dict[str, Any] | None:
    """A stored claims entry, or ``None`` for a miss, a tombstone or anything malformed."""
    if value is None or value.startswith(REVOKED):
        return None
    try:
        entry = json.loads(value)
    except ValueError:
        return None
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("ver"), int)
        or not isinstance(entry.get("active"), bool)
    ):
        return None
    return entry
