"""Two-factor sign-in with TOTP and recovery codes: the sign-in half of ``MfaService``.

Sign-in. The service is the second-factor step of the sign-in pipeline (``second_factor``):
an account with MFA on (or one that must use it and will enrol now) gets a challenge instead
of a credential. ``verify`` answers it: the code is metered by the sign-in lockout, checked,
the challenge is consumed and the TOTP step or recovery code is spent (each an atomic step),
and the pipeline resumes at step 4 (``SignInPipeline.resume``), so the sign-in ends exactly
as a password-only one does.

Account management (``setup``, ``confirm``, ``disable``, ``regenerate_codes``) is the other
half, in ``crudauth.mfa.service``; both use the proofs of ``crudauth.mfa.proofs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from crudauth.errors import InvalidRequest
from crudauth.http.origins import refuse_cross_site
from crudauth.http.request import request_cookie
from crudauth.mfa import codes, guard
from crudauth.mfa.challenges import ChallengeRecord, ChallengeStore
from crudauth.mfa.config import MfaConfig
from crudauth.mfa.proofs import INVALID_CODE as INVALID_CODE
from crudauth.mfa.proofs import MfaProofs
from crudauth.mfa.proofs import Notify as Notify
from crudauth.mfa.proofs import Proof as Proof
from crudauth.mfa.proofs import WrongCode as WrongCode
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

INVALID_CHALLENGE: Final = "Invalid or expired MFA challenge"


class InvalidChallenge(InvalidRequest):
    """The challenge is unknown, expired, answered, dead, or not this client's (HTTP 400)."""

    def __init__(self) -> None:
        super().__init__(INVALID_CHALLENGE, code="invalid_mfa_challenge")


class MfaCore(MfaProofs):
    """TOTP two-factor sign-in: the challenge and its answer."""

    def __init__(
        self,
        runtime: AuthRuntime,
        config: MfaConfig,
        transports: list[Transport],
        *,
        notify: Notify | None = None,
    ) -> None:
        super().__init__(runtime, config, notify=notify)
        self.transports = {t.name: t for t in transports}
        self.challenges = ChallengeStore(
            runtime, config.challenge_ttl_seconds, config.max_code_attempts
        )
        #: The sign-in pipeline with this service as its second factor.
        self.pipeline = SignInPipeline(runtime, second_factor=self.second_factor)

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


def _with(record: ChallengeRecord, values: Mapping[str, Any]) -> ChallengeRecord:
    return replace(record, **values)


def _slots(record: ChallengeRecord) -> list[tuple[str, bool]]:
    """The lockout subjects a code counts against: those of the first factor, the account's
    first. Whichever subject refuses an attempt is the one whose lock escalates; the challenge
    keeps one address for all its codes, so with the address first its 60 s lock would end
    every burst and the account's lock would never grow past its first round."""
    keys = [(record.account_key, False), (record.identifier_key, True), (record.ip_key, False)]
    return [(k, hard) for k, hard in keys if k is not None]
