"""The MFA columns of the user row, written only by conditional ``UPDATE`` statements.

Every write that spends something is a compare-and-set in SQL, so it holds across any number
of workers without a lock and survives a Redis flush:

- a TOTP step is claimed by ``SET totp_last_step = s WHERE totp_last_step IS NULL OR
  totp_last_step < s``: of several requests carrying the same code, one updates the row;
- a recovery code is spent by ``SET mfa_recovery_codes = <list without it> WHERE
  mfa_recovery_codes = <list read>``: of two requests spending one code, one wins;
- enrolment writes ``WHERE totp_confirmed_at IS NULL``, disabling ``WHERE`` the secret read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.identity.repository import UserRepository

COLUMNS: Final = (
    "totp_secret_encrypted",
    "totp_confirmed_at",
    "totp_last_step",
    "mfa_recovery_codes",
)
_SPEND_TRIES: Final = 5


def stored_codes(raw: str | None) -> list[str]:
    """The keyed hashes in a ``mfa_recovery_codes`` value (an empty list for anything else)."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def dump_codes(hashes: Sequence[str]) -> str:
    return json.dumps(list(hashes), separators=(",", ":"))


class MfaRows:
    """Conditional writes of the MFA columns."""

    def __init__(self, repo: UserRepository) -> None:
        self.repo = repo

    def _where_id(self, user: Any) -> Any:
        return self.repo.column("id") == self.repo.user_id(user)

    def _values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {self.repo.attr_name(k): v for k, v in values.items()}

    async def _write(
        self, db: AsyncSession, user: Any, condition: Any, values: Mapping[str, Any]
    ) -> bool:
        """One ``UPDATE ... WHERE id = ? AND condition``, committed; True if it changed the row."""
        statement = (
            update(self.repo.model)
            .where(self._where_id(user), condition)
            .values(self._values(values))
            .execution_options(synchronize_session=False)
        )
        result = await db.execute(statement)
        await db.commit()
        await db.refresh(user)
        return bool(getattr(result, "rowcount", 0) == 1)

    async def claim_step(
        self, db: AsyncSession, user: Any, step: int, reencrypted: str | None = None
    ) -> bool:
        """Claim TOTP ``step`` for ``user``; False if it (or a later one) was claimed."""
        column = self.repo.column("totp_last_step")
        values: dict[str, Any] = {"totp_last_step": step}
        if reencrypted is not None:
            values["totp_secret_encrypted"] = reencrypted
        return await self._write(db, user, (column.is_(None)) | (column < step), values)

    async def spend_code(self, db: AsyncSession, user: Any, matches: Any) -> int | None:
        """Remove the first stored hash for which ``matches(hash)`` is true; the number of
        codes left, or ``None`` if no stored hash matched (already spent, or never valid)."""
        column = self.repo.column("mfa_recovery_codes")
        for _ in range(_SPEND_TRIES):
            found = await db.execute(select(column).where(self._where_id(user)))
            raw = found.scalar_one_or_none()
            hashes = stored_codes(raw)
            hit = next((h for h in hashes if matches(h)), None)
            if hit is None:
                return None
            left = [h for h in hashes if h != hit]
            if await self._write(db, user, column == raw, {"mfa_recovery_codes": dump_codes(left)}):
                return len(left)
        return None  # kept losing to other writers: refuse rather than guess

    async def enrol(
        self, db: AsyncSession, user: Any, encrypted: str, step: int | None, hashes: Sequence[str]
    ) -> bool:
        """Turn MFA on with ``encrypted`` as the secret; False if it was on already."""
        confirmed = self.repo.column("totp_confirmed_at")
        values = {
            "totp_secret_encrypted": encrypted,
            "totp_confirmed_at": datetime.now(timezone.utc),
            "totp_last_step": step,
            "mfa_recovery_codes": dump_codes(hashes),
        }
        return await self._write(db, user, confirmed.is_(None), values)

    async def set_pending(self, db: AsyncSession, user: Any, encrypted: str) -> bool:
        """Store a secret awaiting confirmation; False if MFA was turned on meanwhile."""
        confirmed = self.repo.column("totp_confirmed_at")
        values = {"totp_secret_encrypted": encrypted, "totp_last_step": None}
        return await self._write(db, user, confirmed.is_(None), values)

    async def replace_codes(self, db: AsyncSession, user: Any, hashes: Sequence[str]) -> bool:
        """A new set of recovery codes (the old set stops working in the same write)."""
        confirmed = self.repo.column("totp_confirmed_at")
        values = {"mfa_recovery_codes": dump_codes(hashes)}
        return await self._write(db, user, confirmed.is_not(None), values)

    async def clear(self, db: AsyncSession, user: Any) -> bool:
        """Turn MFA off: secret, confirmation, last step and recovery codes all go."""
        confirmed = self.repo.column("totp_confirmed_at")
        values = dict.fromkeys(COLUMNS)
        return await self._write(db, user, confirmed.is_not(None), values)

    async def rewrite_secret(self, db: AsyncSession, user_id: Any, old: str, new: str) -> bool:
        """Replace one encrypted secret by its re-encryption (key rotation), unless it changed."""
        column = self.repo.column("totp_secret_encrypted")
        statement = (
            update(self.repo.model)
            .where(self.repo.column("id") == user_id, column == old)
            .values(self._values({"totp_secret_encrypted": new}))
            .execution_options(synchronize_session=False)
        )
        result = await db.execute(statement)
        return bool(getattr(result, "rowcount", 0) == 1)
