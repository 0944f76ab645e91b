"""The proofs of a second factor, shared by the sign-in and account-management halves of
``MfaService``.

``MfaProofs`` reads the MFA columns of a row and checks a code against them without spending
it (``_check``); a code that checked out is then spent in one atomic SQL step (``_spend``): a
TOTP step is claimed, or a recovery code removed. Enrolment stores the secret and a fresh set
of recovery codes in one write.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from crudauth.audit import Events
from crudauth.errors import ConfigurationError, IncorrectPassword, InvalidRequest
from crudauth.mfa import codes
from crudauth.mfa.config import MfaConfig
from crudauth.mfa.rows import COLUMNS, MfaRows, stored_codes
from crudauth.runtime import AuthRuntime

logger = logging.getLogger("crudauth")

INVALID_CODE: Final = "Invalid code"

Notify = Callable[[AsyncSession, Any, str], Awaitable[None]]
"""``(db, user, kind)``: tell the owner, through the delivery channels, that ``kind``
(``"recovery_code_used"`` or ``"mfa_disabled"``) happened on the account."""


#: The audit event of each hook the second factor fires (the hook and the event are one moment).
_AUDITED = {
    "on_after_mfa_enabled": Events.MFA_ENABLED,
    "on_after_mfa_disabled": Events.MFA_DISABLED,
    "on_after_recovery_code_used": Events.MFA_RECOVERY_CODE_USED,
}


class WrongCode(IncorrectPassword):
    """The code is not a valid, unspent TOTP or recovery code of the account (HTTP 401)."""

    code = "invalid_code"

    def __init__(self) -> None:
        super().__init__(INVALID_CODE)


@dataclass(frozen=True)
class Proof:
    """A code that checked out: a TOTP ``step``, or a recovery code's stored hash."""

    kind: str  # "totp" | "recovery"
    step: int | None = None
    matches: Callable[[str], bool] | None = None


class MfaProofs:
    """The MFA columns of a row, and what a code proves about them."""

    def __init__(
        self, runtime: AuthRuntime, config: MfaConfig, *, notify: Notify | None = None
    ) -> None:
        codes.require_libraries()
        if not isinstance(config, MfaConfig):
            raise ConfigurationError("mfa must be a crudauth.mfa.MfaConfig")
        missing = [c for c in COLUMNS if not runtime.repo.has(c)]
        if missing:
            raise ConfigurationError(
                f"mfa needs the columns {missing} on the user model "
                "(make_auth_identity(mfa=True), or column_map entries)"
            )
        self.runtime = runtime
        self.config = config
        self.box = codes.SecretBox(config.keys, runtime.keys)
        self.rows = MfaRows(runtime.repo)
        self.notify = notify

    # -- reading the row ----------------------------------------------------------------------

    def enabled(self, user: Any) -> bool:
        repo = self.runtime.repo
        return bool(
            repo.value(user, "totp_confirmed_at") and repo.value(user, "totp_secret_encrypted")
        )

    def recovery_codes_remaining(self, user: Any) -> int:
        if not self.enabled(user):
            return 0
        return len(stored_codes(self.runtime.repo.value(user, "mfa_recovery_codes")))

    def account_label(self, user: Any) -> str:
        repo = self.runtime.repo
        for field in ("email", "username"):
            value = repo.value(user, field)
            if isinstance(value, str) and value:
                return value
        return str(repo.user_id(user))

    def setup_body(self, user: Any, secret: str) -> dict[str, str]:
        uri = codes.provisioning_uri(secret, self.account_label(user), self.config.issuer)
        return {"secret": secret, "otpauth_uri": uri}

    # -- proofs -------------------------------------------------------------------------------

    def _check(self, user: Any, code: str, *, enrolling: str | None = None) -> Proof | None:
        """What ``code`` proves for ``user`` (pure: nothing is spent yet)."""
        code = code.strip().replace(" ", "") if isinstance(code, str) else ""
        now = self.runtime.clock.now()
        if enrolling is not None:
            step = codes.matching_step(enrolling, code, now)
            return Proof("totp", step) if step is not None else None
        if not self.enabled(user):
            return None
        repo = self.runtime.repo
        secret = self._secret(user)
        if secret is not None and codes.looks_like_totp(code):
            step = codes.matching_step(secret, code, now)
            last = repo.value(user, "totp_last_step")
            if step is not None and (last is None or step > int(last)):
                return Proof("totp", step)
            return None
        normalised = codes.normalise_recovery_code(code)
        if normalised is None:
            return None
        ring = self.runtime.keys
        hashes = stored_codes(repo.value(user, "mfa_recovery_codes"))
        if not any(codes.recovery_matches(ring, normalised, h) for h in hashes):
            return None
        return Proof("recovery", matches=lambda h: codes.recovery_matches(ring, normalised, h))

    def _secret(self, user: Any) -> str | None:
        token = self.runtime.repo.value(user, "totp_secret_encrypted")
        return self.box.decrypt(token) if isinstance(token, str) else None

    async def _spend(
        self,
        db: AsyncSession,
        user: Any,
        proof: Proof,
        request: Request | None = None,
        transport: str | None = None,
    ) -> bool:
        """Claim the TOTP step or spend the recovery code, atomically in SQL."""
        if proof.kind == "totp":
            assert proof.step is not None
            token = self.runtime.repo.value(user, "totp_secret_encrypted")
            rotated = None if self.box.is_current(token) else self.box.reencrypt(token)
            return await self.rows.claim_step(db, user, proof.step, rotated)
        assert proof.matches is not None
        left = await self.rows.spend_code(db, user, proof.matches)
        if left is None:
            return False
        await self._fire("on_after_recovery_code_used", user, db, request, transport)
        await self._notify(db, user, "recovery_code_used")
        return True

    async def _enrol(self, db: AsyncSession, user: Any, secret: str, step: int | None) -> list[str]:
        plain, hashes = self.new_codes()
        if not await self.rows.enrol(db, user, self.box.encrypt(secret), step, hashes):
            raise InvalidRequest(
                "Two-factor authentication is already enabled.", code="mfa_enabled"
            )
        return plain

    def new_codes(self) -> tuple[list[str], list[str]]:
        """Fresh recovery codes and their keyed hashes."""
        plain = [codes.new_recovery_code() for _ in range(self.config.recovery_code_count)]
        ring = self.runtime.keys
        return plain, [
            codes.recovery_digest(ring, codes.normalise_recovery_code(c) or "") for c in plain
        ]

    async def _fire(
        self, name: str, user: Any, db: AsyncSession, request: Request | None, transport: str | None
    ) -> None:
        context = self.runtime.hook_context(request, transport)
        self.runtime.audit.emit(
            _AUDITED[name], context, user_id=self.runtime.repo.user_id(user), actor="user"
        )
        await self.runtime.hooks.fire(name, self.runtime.repo.to_dict(user), db=db, context=context)

    async def _notify(self, db: AsyncSession, user: Any, kind: str) -> None:
        if self.notify is None:
            return
        try:
            await self.notify(db, user, kind)
        except Exception:
            logger.exception("crudauth: could not send the %s notice", kind)
