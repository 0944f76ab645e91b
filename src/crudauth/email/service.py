"""``EmailFlowService``: verify the recovery factor, reset a password, change the email.

Non-enumeration. The request methods answer nothing (the routes reply with one fixed text)
and do the same work whether or not an account matches: one address throttle, one silent
per-target throttle, one lookup, one token mint, one store write, and one hand-over of the
delivery job, which for an unknown account is a rehearsal that renders but sends nothing. The
silent limits are keyed by a keyed hash of the *typed* value, so they behave the same for
addresses with and without accounts, and they never appear in a response header. A failing
channel is logged and never changes the answer.

Credential changes are transactional: see :mod:`crudauth.email.outcome`. The links themselves
(bound to the account's state, issued, sent and redeemed) are :mod:`crudauth.email.links`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from crudauth.audit.log import Events
from crudauth.credentials import AccountService, Revoker, guarded_write
from crudauth.email.config import (
    DEFAULT_CHANGE_TTL,
    DEFAULT_RESET_TTL,
    DEFAULT_VERIFY_TTL,
    EmailConfig,
)
from crudauth.email.delivery import DeliveryChannel, DeliveryIntent, DeliveryKind, EmailChannel
from crudauth.email.dispatch import Defer, Dispatcher
from crudauth.email.links import AccountLinks
from crudauth.email.outcome import TokenSpend
from crudauth.email.tokens import RecoveryTokens
from crudauth.errors import (
    ConfigurationError,
    DuplicateValue,
    IncorrectPassword,
    InvalidRecoveryToken,
    InvalidRequest,
)
from crudauth.hooks import HookContext
from crudauth.http.redirects import safe_redirect_path
from crudauth.identity.identifiers import MAX_EMAIL_LENGTH, canonical_email, clean_identifier
from crudauth.runtime import AuthRuntime
from crudauth.signin.confirm import confirm_password, detached_request

logger = logging.getLogger("crudauth")

EMAIL_IN_USE = "Email already in use"
WRONG_PASSWORD = "Incorrect password"  # noqa: S105 - a message, not a secret


@dataclass(frozen=True)
class EmailFlowResult:
    """The account a confirm route changed, and the same-origin path to return to, if any."""

    user: Any
    redirect_to: str | None = None


class EmailFlowService:
    """Recovery flows over the configured delivery channels."""

    def __init__(
        self,
        runtime: AuthRuntime,
        *,
        config: EmailConfig | None = None,
        channels: Sequence[DeliveryChannel] = (),
        transports: Sequence[Revoker] = (),
        accounts: AccountService | None = None,
    ) -> None:
        factor = runtime.identity.recovery
        if factor is None:
            raise ConfigurationError("email=/channels= need a recovery factor (recovery=None)")
        repo = runtime.repo
        if config is not None and not repo.has("email"):
            raise ConfigurationError("email= needs an email column on the user model")
        verified = runtime.identity.recovery_verified_field
        if verified is None or not repo.has(verified):
            raise ConfigurationError(f"recovery flows need a {verified!r} column on the model")
        found: list[DeliveryChannel] = [EmailChannel(config)] if config is not None else []
        for channel in channels:
            if not isinstance(channel, DeliveryChannel):
                raise ConfigurationError(f"{channel!r} is not a crudauth DeliveryChannel")
            found.append(channel)
        if not found:
            raise ConfigurationError("recovery flows need email= or at least one channel")
        self.runtime = runtime
        self.config = config
        self.channels: tuple[DeliveryChannel, ...] = tuple(found)
        self.factor = factor
        self.verified_field = verified
        self.tokens = RecoveryTokens(runtime.keys, runtime.clock, runtime.tokens)
        self.verify_ttl = config.verify_ttl_seconds if config else DEFAULT_VERIFY_TTL
        self.reset_ttl = config.reset_ttl_seconds if config else DEFAULT_RESET_TTL
        self.change_ttl = config.change_ttl_seconds if config else DEFAULT_CHANGE_TTL
        self.dispatch = Dispatcher(runtime, self.channels)
        # The state-bound links the flows issue, send and redeem.
        self.links = AccountLinks(runtime, factor, self.tokens, self.dispatch)
        #: Credential changes and their side effects (every transport's sessions end).
        self.accounts = accounts or AccountService(runtime, transports)

    # -- shape --------------------------------------------------------------------------------

    @property
    def verify_kind(self) -> DeliveryKind:
        if self.factor == "email":
            return DeliveryKind.VERIFY_EMAIL
        return DeliveryKind.VERIFY_RECOVERY

    @property
    def can_change_email(self) -> bool:
        """Email change needs an email column and a channel that sends email."""
        return self.runtime.repo.has("email") and any(c.sends_email for c in self.channels)

    # -- verification ------------------------------------------------------------------------

    async def request_recovery_verification(
        self,
        db: AsyncSession,
        value: str,
        *,
        redirect_to: str | None = None,
        client_ip: str | None = None,
        defer: Defer | None = None,
    ) -> None:
        """Send a verification link if ``value`` belongs to an active, unverified account."""
        await self.dispatch.throttle_address("email_verify_request", client_ip)
        allowed = await self.dispatch.target_allowed("email_verify_request", value)
        user = await self.links.find(db, value)
        repo = self.runtime.repo
        eligible = (
            allowed
            and user is not None
            and self.links.active(user)
            and not repo.value(user, self.verified_field, False)
        )
        await self.links.issue_and_send(
            db,
            "verify_email",
            self.verify_kind,
            user if eligible else None,
            value,
            self.verify_ttl,
            redirect_to=redirect_to,
            defer=defer,
        )

    async def send_verification(
        self, db: AsyncSession, user: Any, *, defer: Defer | None = None
    ) -> None:
        """Best-effort verification link for a new account (after ``/register``)."""
        try:
            if self.links.recovery_value(user) and not self.runtime.repo.value(
                user, self.verified_field, False
            ):
                await self.links.issue_and_send(
                    db,
                    "verify_email",
                    self.verify_kind,
                    user,
                    "",
                    self.verify_ttl,
                    redirect_to=None,
                    defer=defer,
                )
        except Exception:
            logger.exception("crudauth: could not send the verification of a new account")

    async def confirm_recovery_verification(
        self, db: AsyncSession, token: str, *, context: HookContext | None = None
    ) -> EmailFlowResult:
        """Mark the recovery factor verified; the hook fires only the first time."""
        claims, record, user = await self.links.redeem(db, "verify_email", token)
        first_time = not self.runtime.repo.value(user, self.verified_field, False)
        await guarded_write(
            db,
            self.runtime.repo,
            user,
            {self.verified_field: True},
            TokenSpend(self.tokens, claims, record),
            bump=False,
        )
        self.runtime.audit.emit(
            Events.EMAIL_VERIFIED,
            context,
            user_id=self.runtime.repo.user_id(user),
            actor="user",
            details={"first_time": first_time},
        )
        if first_time:
            await self._fire("on_after_recovery_verified", user, db, context)
        return EmailFlowResult(user, claims.redirect_to)

    # -- password reset ----------------------------------------------------------------------

    async def request_password_reset(
        self,
        db: AsyncSession,
        value: str,
        *,
        redirect_to: str | None = None,
        client_ip: str | None = None,
        defer: Defer | None = None,
    ) -> None:
        """Send a reset link if ``value`` belongs to an active account."""
        await self.dispatch.throttle_address("password_reset_request", client_ip)
        allowed = await self.dispatch.target_allowed("password_reset_request", value)
        user = await self.links.find(db, value)
        eligible = allowed and user is not None and self.links.active(user)
        await self.links.issue_and_send(
            db,
            "reset_password",
            DeliveryKind.RESET_PASSWORD,
            user if eligible else None,
            value,
            self.reset_ttl,
            redirect_to=redirect_to,
            defer=defer,
        )

    async def reset_password(
        self,
        db: AsyncSession,
        token: str,
        new_password: str,
        *,
        context: HookContext | None = None,
    ) -> EmailFlowResult:
        """Set a new password, end every session and clear the sign-in lockout."""
        claims, record, user = await self.links.redeem(db, "reset_password", token)
        spend = TokenSpend(self.tokens, claims, record)
        await self.accounts.reset_password(db, user, new_password, spend, context=context)
        await self._fire("on_after_password_reset", user, db, context)
        return EmailFlowResult(user, claims.redirect_to)

    # -- email change ------------------------------------------------------------------------

    async def request_email_change(
        self,
        db: AsyncSession,
        user: Any,
        new_email: str,
        password: str,
        *,
        redirect_to: str | None = None,
        client_ip: str | None = None,
        keep_session: str | None = None,
        defer: Defer | None = None,
        request: Request | None = None,
        transport: str = "session",
    ) -> None:
        """Send a confirmation link to ``new_email`` unless the address is taken.

        ``request`` (the route passes it) lets the password check read the browser's device
        cookie; without it the check sees only ``client_ip``.
        """
        repo = self.runtime.repo
        await self.dispatch.throttle_address("email_change_request", client_ip)
        await self._confirm_password(
            db, user, password, request or detached_request(client_ip), transport
        )
        new = self._new_address(user, new_email)
        allowed = await self.dispatch.target_allowed("email_change_request", new)
        taken = await repo.find_by(db, "email", new) is not None
        eligible = allowed and not taken
        token = await self.tokens.issue(
            "change_email",
            str(repo.user_id(user)) if eligible else None,
            self.links.snapshot("change_email", user if eligible else None),
            self.change_ttl,
            redirect_to=safe_redirect_path(redirect_to),
            new_email=new,
            keep_session=keep_session,
        )
        intent = DeliveryIntent(
            DeliveryKind.CHANGE_EMAIL, token, repo.to_dict(user), new, int(self.change_ttl)
        )
        await self.dispatch.hand_over(intent, db, real=eligible, email_only=True, defer=defer)
        self.runtime.audit.emit(
            Events.EMAIL_CHANGE_REQUESTED,
            self.runtime.hook_context(request, transport),
            user_id=repo.user_id(user),
            actor="user",
            details={"sent": eligible},
        )

    async def _confirm_password(
        self, db: AsyncSession, user: Any, password: str, request: Request, transport: str
    ) -> None:
        """The sign-in's throttle and lockout: a stolen session is no password oracle."""
        try:
            await confirm_password(
                self.runtime, request, db, user, password, transport=transport, wrong=WRONG_PASSWORD
            )
        except IncorrectPassword:
            # This route has always answered a wrong password with 400, not 401: a 401 on a
            # signed-in page reads as "signed out" to a client.
            raise InvalidRequest(WRONG_PASSWORD, code="incorrect_password") from None

    def _new_address(self, user: Any, new_email: str) -> str:
        """``new_email`` cleaned and canonical; refused when it is the current address."""
        repo = self.runtime.repo
        limit = min(repo.max_length("email") or MAX_EMAIL_LENGTH, MAX_EMAIL_LENGTH)
        new = canonical_email(clean_identifier(new_email, "new_email", limit))
        current = repo.value(user, "email")
        if current and canonical_email(str(current)) == new:
            raise InvalidRequest("New email matches current email", code="email_unchanged")
        return new

    async def confirm_email_change(
        self, db: AsyncSession, token: str, *, context: HookContext | None = None
    ) -> EmailFlowResult:
        """Switch to the new address (verified), end the other sessions, tell the old one."""
        repo = self.runtime.repo
        claims, record, user = await self.links.redeem(db, "change_email", token)
        new = claims.new_email
        if not new:
            raise InvalidRecoveryToken("no address in an email-change token")
        owner = await repo.find_by(db, "email", new)
        if owner is not None and repo.user_id(owner) != repo.user_id(user):
            raise DuplicateValue("email", EMAIL_IN_USE)  # the token stays unspent
        old = repo.value(user, "email")
        values: dict[str, Any] = {"email": new}
        if repo.has("email_verified"):
            values["email_verified"] = True
        await self.accounts.change_email(
            db,
            user,
            values,
            TokenSpend(self.tokens, claims, record),
            keep=record.keep_session,
            on_conflict=DuplicateValue("email", EMAIL_IN_USE),
            context=context,
        )
        if old:
            notice = DeliveryIntent(DeliveryKind.EMAIL_CHANGED, None, repo.to_dict(user), old)
            await self.dispatch.hand_over(notice, db, real=True, email_only=True, defer=None)
        await self._fire("on_after_email_changed", user, db, context)
        return EmailFlowResult(user, claims.redirect_to)

    # -- notices -----------------------------------------------------------------------------

    async def notify_existing_account(
        self, db: AsyncSession, user: Any, *, field: str | None = None, defer: Defer | None = None
    ) -> None:
        """Tell an account's owner that someone tried to sign up with their address."""
        value = self.runtime.repo.value(user, field or self.factor)
        if not value:
            return
        try:
            if not await self.dispatch.target_allowed("existing_account_notice", str(value)):
                return
            intent = DeliveryIntent(
                DeliveryKind.EXISTING_ACCOUNT, None, self.runtime.repo.to_dict(user), str(value)
            )
            await self.dispatch.hand_over(intent, db, real=True, email_only=False, defer=defer)
        except Exception:
            logger.exception("crudauth: could not send an existing-account notice")

    async def notify_security_event(self, db: AsyncSession, user: Any, kind: str) -> None:
        """Tell an account's owner about a change to its sign-in (``"recovery_code_used"``,
        ``"mfa_disabled"``) at its recovery address, on every channel."""
        recipient = self.links.recovery_value(user)
        if not recipient:
            return
        intent = DeliveryIntent(
            DeliveryKind(kind), None, self.runtime.repo.to_dict(user), recipient
        )
        await self.dispatch.hand_over(intent, db, real=True, email_only=False, defer=None)

    async def send_link_confirmation(
        self, db: AsyncSession, user: Any, token: str, ttl: int
    ) -> None:
        """Mail ``user``'s address the link that confirms linking an OAuth provider."""
        address = self.runtime.repo.value(user, "email")
        if not address:
            return
        intent = DeliveryIntent(
            DeliveryKind.LINK_ACCOUNT, token, self.runtime.repo.to_dict(user), str(address), ttl
        )
        await self.dispatch.hand_over(intent, db, real=True, email_only=True)

    # -- helpers -----------------------------------------------------------------------------

    async def _fire(
        self, name: str, user: Any, db: AsyncSession, context: HookContext | None
    ) -> None:
        await self.runtime.hooks.fire(
            name, self.runtime.repo.to_dict(user), db=db, context=context or HookContext()
        )
