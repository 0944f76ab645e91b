"""Password authentication, shared by every route that checks a password.

Timing defence: unknown users, disabled users, users without a usable password, accounts
whose password may not be evaluated now (``before_verify``) and wrong passwords all cost
exactly one password verification, and all fail with the same error, so neither the answer nor
its timing tells an attacker whether an account exists or is locked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import InvalidCredentials
from crudauth.identity.identifiers import MAX_EMAIL_LENGTH
from crudauth.identity.repository import UserRepository
from crudauth.passwords import PasswordHasher

logger = logging.getLogger("crudauth")


class PasswordAuthenticator:
    """Finds a user by any login field and checks the password in constant work."""

    def __init__(self, repo: UserRepository, hasher: PasswordHasher) -> None:
        self.repo = repo
        self.hasher = hasher

    async def authenticate(
        self,
        db: AsyncSession,
        identifier: str,
        password: str,
        *,
        before_verify: Callable[[Any], Awaitable[bool]] | None = None,
    ) -> Any:
        """Return the active user whose password matches, or raise ``InvalidCredentials``.

        ``before_verify(user)`` runs after the lookup and before any hashing, for an account
        found by ``identifier`` (the per-account lockout slot). It may raise to refuse
        outright; ``False`` means the password must not be evaluated: it is checked against no
        hash (the same cost) and the attempt fails as a wrong password, with reason
        ``account_locked``.
        """
        user = None
        if 0 < len(identifier) <= MAX_EMAIL_LENGTH:
            user = await self.repo.find_by_login(db, identifier)
        evaluate = user is not None and (before_verify is None or await before_verify(user))
        stored = self.repo.value(user, "hashed_password") if evaluate else None
        result = await self.hasher.verify_async(password, stored)
        if user is not None and not evaluate:
            raise InvalidCredentials("account_locked", user)
        if user is None or not result.ok:
            raise InvalidCredentials("invalid_credentials", user)
        if not self.repo.value(user, "is_active", True):
            raise InvalidCredentials("inactive", user)
        if result.needs_rehash:
            await self._rehash(db, user, password)
        return user

    async def _rehash(self, db: AsyncSession, user: Any, password: str) -> None:
        try:
            new_hash = await self.hasher.hash_async(password)
            await self.repo.update(db, user, {"hashed_password": new_hash})
        except Exception:  # an upgrade is an optimisation; never fail a good login over it
            await db.rollback()
            logger.warning("crudauth: could not upgrade a password hash", exc_info=True)
