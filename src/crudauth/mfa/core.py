"""Two-factor sign-in with TOTP and recovery codes: the sign-in half of ``MfaService``.

Sign-in. The service is the second-factor step of the sign-in pipeline (``second_factor``):
an account with MFA on (or one that must use it and will enrol now) gets a challenge instead
of a credential. ``verify`` answers it: the code is metered by the sign-in lockout, checked,
the challenge is consumed and the TOTP step or recovery code is spent (each an atomic step),
and the pipeline resumes at step 4 (``SignInPipeline.resume``), so the sign-in ends exactly
as a password-only one does.

Account management (``setup``, ``confirm``, ``disable``, ``regenerate_codes``) is the other
half, in ``crudauth.mfa.service``; both use the proofs below.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from crudauth.audit import Events
from crudauth.errors import ConfigurationError, IncorrectPassword, InvalidRequest
from crudauth.http.origins import refuse_cross_site
from crudauth.http.request import request_cookie
from crudauth.mfa import codes, guard
from crudauth.mfa.challenges import ChallengeRecord, ChallengeStore
from crudauth.mfa.config import MfaConfig
from crudauth.mfa.rows import COLUMNS, MfaRows, stored_codes
from crudauth.ratelimit.lockout import Attempt, address_subject
from crudauth.runtime import AuthRuntime
from crudauth.signin.pipeline import (
    AccountState,
    Challenge,
    Pending,
    SignInPipeline,
    account_state,
)
from crudauth.transports.base import Transport

logger = logging.getLogger("crudauth")

INVALID_CHALLENGE: Final = "Invalid or expired MFA challenge"
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


class InvalidChallenge(InvalidRequest):
    """The challenge is unknown, expired, answered, dead, or not this client's (HTTP 400)."""

    def __init__(self) -> None:
        super().__init__(INVALID_CHALLENGE, code="invalid_mfa_challenge")


@dataclass(frozen=True)
class Proof:
    """A code that checked out: a TOTP ``step``, or a recovery code's stored hash."""

    kind: str  # "totp" | "recovery"
    step: int | None = None
    matches: Callable[[str], bool] | None = None


class MfaCore:
    """TOTP two-factor sign-in: the challenge, its answer, and the proofs of a code."""

    def __init__(
        self,
        runtime: AuthRuntime,
        config: MfaConfig,
        transports: list[Transport],
        *,
        notify: Notify | None = None,
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
        self.transports = {t.name: t for t in transports}
        self.box = codes.SecretBox(config.keys, runtime.keys)
        self.rows = MfaRows(runtime.repo)
        self.challenges = ChallengeStore(
            runtime, config.challenge_ttl_seconds, config.max_code_attempts
        )
        self.notify = notify
        #: The sign-in pipeline with this service as its second factor.
        self.pipeline = SignInPipeline(runtime, second_factor=self.second_factor)

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

    def binding_cookie(self) -> str:
        cookies = self.runtime.cookies
        secure_root = cookies.secure and cookies.path == "/"
        return "__Host-crudauth_mfa" if secure_root else "crudauth_mfa"

    # -- the second-factor step ---------------------------------------------------------------

    async def second_factor(self, pending: Pending) -> Challenge | None:
        """Step 3 of the sign-in pipeline: a challenge for an account with MFA on, or one
        that must use it (it enrols now); ``None`` for everyone else."""
        if pending.first_factor != "password" and not self.config.oauth:
            return None
        user = pending.user
        enrolled = self.enabled(user)
        if not enrolled and not await self.config.is_required(user):
            return None
        secret = None if enrolled else codes.new_secret()
        token = ChallengeStore.new_token()
        body: dict[str, Any] = {
            "mfa_required": True,
            "challenge": token,
            "expires_in": self.config.challenge_ttl_seconds,
        }
        if secret is not None:
            body["setup"] = self.setup_body(user, secret)
        record = ChallengeRecord(
            user_id=str(pending.state.user_id),
            epoch=pending.state.epoch,
            transport=pending.transport.name,
            options=dict(pending.options),
            first_factor=pending.first_factor,
            expires_at=self.runtime.clock.now() + self.config.challenge_ttl_seconds,
            setup=self.box.encrypt(secret) if secret is not None else None,
            extra={"uri": body["setup"]["otpauth_uri"]} if secret is not None else {},
        )
        bind = pending.transport.sets_cookies

        async def hold(response: Response, attempt: Attempt | None) -> None:
            await self._hold(pending.request, response, token, record, attempt, bind)

        return Challenge(body, hold)

    async def _hold(
        self,
        request: Request,
        response: Response,
        token: str,
        record: ChallengeRecord,
        attempt: Attempt | None,
        bind: bool,
    ) -> None:
        """Store the challenge with the first factor's lockout slots; bind it to a cookie."""
        lockout = self.runtime.lockout
        if attempt is not None:
            held = {
                "ip_key": attempt.ip_key,
                "identifier_key": attempt.identifier_key,
                "subject": attempt.subject,
                "account_key": attempt.account_key,
                "account_device_tag": attempt.account_device_tag,
            }
        else:  # a first factor the lockout does not meter (OAuth): its codes still count
            ip = self.runtime.client_ip(request)
            held = {
                "ip_key": f"login:ip:{address_subject(ip)}" if ip else None,
                "account_key": guard.account_key(lockout, record.user_id),
            }
        binder = ChallengeStore.new_token() if bind else None
        if binder is not None:
            held["binding"] = self.challenges.binding_digest(binder)
        await self.challenges.create(token, _with(record, held))
        if binder is not None:
            response.set_cookie(
                self.binding_cookie(),
                binder,
                max_age=self.config.challenge_ttl_seconds,
                path=self.runtime.cookies.path,
                secure=self.runtime.cookies.secure,
                httponly=True,
                samesite=self.runtime.cookies.samesite,
            )

    # -- answering the challenge --------------------------------------------------------------

    async def challenge_setup(self, request: Request, token: str) -> dict[str, Any]:
        """``POST /mfa/challenge``: the enrolment secret of a pending sign-in, if it has one.
        Not an attempt: nothing is counted."""
        record = await self._bound(request, token)
        if record.setup is None:
            return {"setup": None}
        secret = self.box.decrypt(record.setup)
        if secret is None:
            raise InvalidChallenge()
        return {"setup": {"secret": secret, "otpauth_uri": record.extra.get("uri", "")}}

    async def _bound(self, request: Request, token: str) -> ChallengeRecord:
        record = await self.challenges.load(token)
        if record is None:
            raise InvalidChallenge()
        presented = request_cookie(request.scope, self.binding_cookie())
        if not self.challenges.binding_matches(record, presented):
            raise InvalidChallenge()
        return record

    async def verify(
        self, request: Request, response: Response, db: AsyncSession, token: str, code: str
    ) -> dict[str, Any]:
        """``POST /mfa/verify``: answer a challenge; the transport's sign-in body on success."""
        refuse_cross_site(request, self.runtime.origins)
        record = await self._bound(request, token)
        transport = self.transports.get(record.transport)
        user = await self.runtime.repo.get(db, record.user_id)
        if transport is None or user is None:
            raise InvalidChallenge()
        state = account_state(self.runtime, user)
        if state.epoch != record.epoch:  # a reset or password change while it waited
            await self.challenges.discard(token)
            raise InvalidChallenge()
        slots = await guard.reserve(self.runtime.lockout, _slots(record))
        secret = self.box.decrypt(record.setup) if record.setup else None
        proof = self._check(user, code, enrolling=secret)
        if proof is None:
            await self.challenges.count_wrong(token)
            raise WrongCode()
        if await self.challenges.consume(token) is None:
            raise InvalidChallenge()  # answered by a concurrent request
        new_codes: list[str] = []
        if secret is not None:
            new_codes = await self._enrol(db, user, secret, proof.step)
        elif not await self._spend(db, user, proof, request, transport.name):
            raise WrongCode()  # the same code won on another worker a moment ago
        self._forget_binding(response)
        body = await self._resume(request, response, db, transport, user, record, state, slots)
        if secret is not None:
            body = {**body, "recovery_codes": new_codes}
            await self._fire("on_after_mfa_enabled", user, db, request, transport.name)
        if "redirect_to" in record.options:
            body = {**body, "redirect_to": record.options["redirect_to"]}
        return body

    async def _resume(
        self,
        request: Request,
        response: Response,
        db: AsyncSession,
        transport: Transport,
        user: Any,
        record: ChallengeRecord,
        state: AccountState,
        slots: list[str],
    ) -> dict[str, Any]:
        attempt = None
        if record.identifier_key is not None and record.subject is not None:
            attempt = Attempt(
                record.ip_key,
                record.identifier_key,
                record.subject,
                account_key=record.account_key,
                account_device_tag=record.account_device_tag,
                shows_account_lock=True,
            )
        options = {k: v for k, v in record.options.items() if k != "redirect_to"}
        body = await self.pipeline.resume(
            request, response, db, transport, user, options, state=state, attempt=attempt
        )
        if attempt is None:  # steps 7 did not run: the codes' slots are this one's to clear
            await guard.give_back(self.runtime.lockout, slots, clear=True)
        return body

    def _forget_binding(self, response: Response) -> None:
        cookies = self.runtime.cookies
        response.delete_cookie(
            self.binding_cookie(),
            path=cookies.path,
            secure=cookies.secure,
            httponly=True,
            samesite=cookies.samesite,
        )

    # -- proofs shared with account management ------------------------------------------------

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


def _with(record: ChallengeRecord, values: Mapping[str, Any]) -> ChallengeRecord:
    return replace(record, **values)


def _slots(record: ChallengeRecord) -> list[tuple[str, bool]]:
    """The lockout subjects a code counts against: those of the first factor, the account's
    first. Whichever subject refuses an attempt is the one whose lock escalates; the challenge
    keeps one address for all its codes, so with the address first its 60 s lock would end
    every burst and the account's lock would never grow past its first round."""
    keys = [(record.account_key, False), (record.identifier_key, True), (record.ip_key, False)]
    return [(k, hard) for k, hard in keys if k is not None]
