"""``MfaService``: TOTP two-factor sign-in and account management, callable without HTTP.

The routes of ``crudauth.mfa.router`` only parse, call one method and answer; a CLI, an admin
screen or a test calls the same methods. The sign-in half (the challenge and its answer) is
``MfaCore``; this class adds what a signed-in user does with their second factor.

Turning MFA off or replacing the recovery codes needs a fresh second factor: a current TOTP
code or an unspent recovery code (metered by the sign-in lockout like any code), or a session
in sudo mode. While ``required`` holds for the account, it cannot be turned off at all.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from crudauth.errors import AccessDenied, IncorrectPassword, InvalidRequest, SignInNotFresh
from crudauth.mfa import codes, guard
from crudauth.mfa.core import MfaCore, WrongCode
from crudauth.signin.confirm import confirm_password, detached_request, has_usable_password

WRONG_PASSWORD: Final = "Incorrect password"  # noqa: S105 - an error text, not a secret
NOT_FRESH: Final = "Sign in again to continue."
ALREADY_ENABLED: Final = "Two-factor authentication is already enabled."
NOT_ENABLED: Final = "Two-factor authentication is not enabled."
NOTHING_PENDING: Final = "No two-factor setup is pending."
REQUIRED: Final = "Two-factor authentication is required for this account."


class MfaService(MfaCore):
    """Two-factor sign-in (``second_factor``, ``verify``) and its account management."""

    async def status(self, user: Any) -> dict[str, Any]:
        """``GET /mfa``."""
        return {
            "enabled": self.enabled(user),
            "required": await self.config.is_required(user),
            "recovery_codes_remaining": self.recovery_codes_remaining(user),
        }

    async def setup(
        self,
        db: AsyncSession,
        user: Any,
        *,
        password: str | None = None,
        fresh: bool = False,
        request: Request | None = None,
        transport: str = "session",
    ) -> dict[str, str]:
        """Start enrolment: a new secret, stored encrypted and bound to the account's epoch
        until ``confirm``. An account with a password confirms it (through the sign-in
        lockout); one without needs a ``fresh`` sign-in."""
        if self.enabled(user):
            raise InvalidRequest(ALREADY_ENABLED, code="mfa_enabled")
        if has_usable_password(self.runtime, user):
            if password is None:
                raise IncorrectPassword(WRONG_PASSWORD)
            await confirm_password(
                self.runtime,
                request or detached_request(None),
                db,
                user,
                password,
                transport=transport,
                wrong=WRONG_PASSWORD,
            )
        elif not fresh:
            raise SignInNotFresh(NOT_FRESH)
        secret = codes.new_secret()
        epoch = int(self.runtime.repo.value(user, "token_version", 0) or 0)
        if not await self.rows.set_pending(db, user, self.box.encrypt(f"{epoch}:{secret}")):
            raise InvalidRequest(ALREADY_ENABLED, code="mfa_enabled")
        return self.setup_body(user, secret)

    def _pending_secret(self, user: Any) -> str | None:
        """The secret ``setup`` stored, if it is still for the account's current epoch."""
        if self.enabled(user):
            return None
        plain = self._secret(user)
        if plain is None or ":" not in plain:
            return None
        epoch, _, secret = plain.partition(":")
        current = int(self.runtime.repo.value(user, "token_version", 0) or 0)
        return secret if epoch == str(current) else None

    async def confirm(
        self, db: AsyncSession, user: Any, code: str, *, request: Request | None = None
    ) -> list[str]:
        """Finish enrolment with a code from the new secret; the recovery codes, shown once."""
        if self.enabled(user):
            raise InvalidRequest(ALREADY_ENABLED, code="mfa_enabled")
        secret = self._pending_secret(user)
        if secret is None:
            raise InvalidRequest(NOTHING_PENDING, code="mfa_not_pending")
        proof = self._check(user, code, enrolling=secret)
        if proof is None:
            raise WrongCode()
        plain = await self._enrol(db, user, secret, proof.step)
        await self._fire("on_after_mfa_enabled", user, db, request, None)
        return plain

    async def prove(self, db: AsyncSession, user: Any, code: str) -> None:
        """A fresh second factor from a signed-in user: a TOTP code (its step is claimed) or
        a recovery code (spent). Metered by the account's sign-in lockout; raises
        ``WrongCode`` or ``LockedOut``."""
        lockout = self.runtime.lockout
        slots = await guard.reserve(
            lockout, [(guard.account_key(lockout, self.runtime.repo.user_id(user)), False)]
        )
        proof = self._check(user, code)
        if proof is None or not await self._spend(db, user, proof):
            raise WrongCode()  # the slot stays taken: a wrong code counts
        await guard.give_back(lockout, slots, clear=False)

    async def check_code(self, db: AsyncSession, user: Any, code: str) -> bool:
        """Sudo's code verifier: ``prove`` as a yes or no (``LockedOut`` still raises)."""
        if not self.enabled(user):
            return False
        try:
            await self.prove(db, user, code)
        except WrongCode:
            return False
        return True

    async def _fresh_factor(
        self, db: AsyncSession, user: Any, code: str | None, elevated: bool
    ) -> None:
        if not self.enabled(user):
            raise InvalidRequest(NOT_ENABLED, code="mfa_not_enabled")
        if code is not None:
            await self.prove(db, user, code)
        elif not elevated:
            raise WrongCode()

    async def disable(
        self,
        db: AsyncSession,
        user: Any,
        code: str | None = None,
        *,
        elevated: bool = False,
        request: Request | None = None,
    ) -> None:
        """Turn MFA off (a fresh code, or ``elevated``: the caller's session is in sudo)."""
        if await self.config.is_required(user):
            raise AccessDenied(REQUIRED)
        await self._fresh_factor(db, user, code, elevated)
        if not await self.rows.clear(db, user):
            raise InvalidRequest(NOT_ENABLED, code="mfa_not_enabled")
        await self._fire("on_after_mfa_disabled", user, db, request, None)
        await self._notify(db, user, "mfa_disabled")

    async def regenerate_codes(
        self,
        db: AsyncSession,
        user: Any,
        code: str | None = None,
        *,
        elevated: bool = False,
    ) -> list[str]:
        """A new set of recovery codes; the old set stops working in the same write."""
        await self._fresh_factor(db, user, code, elevated)
        plain, hashes = self.new_codes()
        if not await self.rows.replace_codes(db, user, hashes):
            raise InvalidRequest(NOT_ENABLED, code="mfa_not_enabled")
        return plain

    async def reencrypt_all(self, db: AsyncSession, *, batch_size: int = 500) -> int:
        """Re-encrypt every stored secret under the first ``encryption_key``, after a new key
        was put first; returns how many rows changed. Secrets are also re-encrypted one by
        one when used, so this only hurries the retirement of an old key."""
        repo = self.runtime.repo
        column, key = repo.column("totp_secret_encrypted"), repo.column("id")
        changed, after = 0, None
        while True:
            query = select(key, column).where(column.is_not(None)).order_by(key).limit(batch_size)
            if after is not None:
                query = query.where(key > after)
            rows = (await db.execute(query)).all()
            if not rows:
                return changed
            for user_id, token in rows:
                if self.box.decrypt(token) is not None and not self.box.is_current(token):
                    new = self.box.reencrypt(token)
                    changed += int(await self.rows.rewrite_secret(db, user_id, token, new))
            await db.commit()
            after = rows[-1][0]
