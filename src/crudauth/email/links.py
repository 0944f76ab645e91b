"""``AccountLinks``: the recovery links of the flows, bound to the account they were sent for.

A link is issued with a snapshot of what it may change (``snapshot``) and handed to the
delivery channels; an unknown or ineligible account gets the same work as a rehearsal that
sends nothing. Redeeming one (``redeem``) checks its signature, that it is the user's live
token of its purpose, that the account is still active, and that the snapshot still holds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.email.delivery import DeliveryIntent, DeliveryKind
from crudauth.email.dispatch import Defer, Dispatcher
from crudauth.email.tokens import LiveRecord, RecoveryClaims, RecoveryTokens, TokenPurpose
from crudauth.errors import InvalidRecoveryToken
from crudauth.http.redirects import safe_redirect_path
from crudauth.identity.identifiers import MAX_EMAIL_LENGTH
from crudauth.runtime import AuthRuntime


class AccountLinks:
    """Issues, sends and redeems the state-bound links of the recovery factor ``factor``."""

    def __init__(
        self, runtime: AuthRuntime, factor: str, tokens: RecoveryTokens, dispatch: Dispatcher
    ) -> None:
        self.runtime = runtime
        self.factor = factor
        self.tokens = tokens
        self.dispatch = dispatch

    def recovery_value(self, user: Any) -> str | None:
        value = self.runtime.repo.value(user, self.factor)
        return str(value) if value else None

    def active(self, user: Any) -> bool:
        return bool(self.runtime.repo.value(user, "is_active", True))

    async def find(self, db: AsyncSession, value: str) -> Any | None:
        """The account whose recovery factor is the typed ``value``, if any."""
        if not value or len(value) > MAX_EMAIL_LENGTH:
            return None
        return await self.runtime.repo.find_by(db, self.factor, value.strip())

    def snapshot(self, purpose: TokenPurpose, user: Any) -> list[Any]:
        """What a token of ``purpose`` is bound to: change any of it and the token dies."""
        repo = self.runtime.repo
        if user is None:
            return ["", "", 0]  # same shape and cost as a real snapshot
        version = repo.value(user, "token_version", 0)
        if purpose == "verify_email":
            return [self.recovery_value(user), version]
        if purpose == "reset_password":
            return [repo.value(user, "hashed_password"), self.recovery_value(user), version]
        return [repo.value(user, "hashed_password"), repo.value(user, "email"), version]

    async def issue_and_send(
        self,
        db: Any,
        purpose: TokenPurpose,
        kind: DeliveryKind,
        user: Any,
        typed: str,
        ttl: float,
        *,
        redirect_to: str | None,
        defer: Defer | None,
    ) -> None:
        """Mint a link for ``user`` and hand it over; with ``user=None``, the same work as a
        rehearsal addressed to the ``typed`` value, which sends nothing."""
        repo = self.runtime.repo
        token = await self.tokens.issue(
            purpose,
            str(repo.user_id(user)) if user is not None else None,
            self.snapshot(purpose, user),
            ttl,
            redirect_to=safe_redirect_path(redirect_to),
        )
        recipient = self.recovery_value(user) if user is not None else None
        intent = DeliveryIntent(
            kind,
            token,
            repo.to_dict(user) if user is not None else {},
            recipient or typed,  # a typed value is only ever rehearsed, never sent to
            int(ttl),
        )
        await self.dispatch.hand_over(
            intent, db, real=user is not None, email_only=False, defer=defer
        )

    async def redeem(
        self, db: AsyncSession, purpose: TokenPurpose, token: str
    ) -> tuple[RecoveryClaims, LiveRecord, Any]:
        """The claims, live record and account of a valid link (nothing is spent yet)."""
        claims = self.tokens.read(purpose, token)
        record = await self.tokens.live_record(claims)
        user = await self.runtime.repo.get(db, claims.user_id)
        if user is None or not self.active(user):
            raise InvalidRecoveryToken("account gone or disabled")
        if not self.tokens.state_matches(claims, self.snapshot(purpose, user)):
            raise InvalidRecoveryToken("the account changed since the token was issued")
        return claims, record, user
