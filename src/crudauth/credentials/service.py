"""``AccountService``: credential changes and what must follow them, without HTTP.

A credential change is a transaction on the user row (new hash, new email, and the epoch bump,
``token_version + 1``), committed before anything else happens. Only then do the side effects
run, in one place: the caller's own session (if it is to stay) moves to the new epoch, every
other session ends, and each transport forgets what it caches about the user. If the commit
fails, the old credentials and every session still work.

Routes (account, session management, recovery), ``CRUDAuth.revoke_user`` and code of the
application's own (a CLI, a worker, an admin screen) all call these methods; they raise
crudauth's domain errors and know nothing of requests. A check that needs the request (the
current password, under the sign-in throttle and lockout) is passed in as ``confirm``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.audit.log import Detail, Events
from crudauth.credentials.commit import Spend, guarded_write, rollback
from crudauth.errors import CrudAuthError, InvalidRequest
from crudauth.hooks import HookContext
from crudauth.passwords import is_unusable_password, make_unusable_password
from crudauth.policy import PasswordContext, Source
from crudauth.runtime import AuthRuntime
from crudauth.storage.base import SessionStore

logger = logging.getLogger("crudauth")

#: A check run at the right step of a change: raises to refuse it (a wrong current password,
#: a sign-in that is not fresh). Receives the user.
Confirm = Callable[[Any], Awaitable[None]]


class Revoker(Protocol):
    """What the service needs from a transport: its name and its ``revoke_user``."""

    name: str

    async def revoke_user(self, user_id: Any, *, keep: str | None = None) -> int: ...


class SessionEnder(Protocol):
    """The part of a session manager a credential change uses."""

    store: SessionStore

    async def revoke_all(self, user_id: Any, *, keep_key: str | None = None) -> int: ...


@runtime_checkable
class HoldsSessions(Protocol):
    """A transport whose credentials are server-side sessions (``SessionTransport``)."""

    manager: SessionEnder


@dataclass(frozen=True)
class Settled:
    """What followed a credential change: whether the caller's session stayed, and how many
    credentials each transport ended (by transport name)."""

    kept: bool
    ended: Mapping[str, int] = field(default_factory=dict)


class AccountService:
    """Credential changes for one ``CRUDAuth``'s users, over its transports."""

    def __init__(self, runtime: AuthRuntime, transports: Sequence[Revoker]) -> None:
        self.runtime = runtime
        self.transports = tuple(transports)

    # -- checks --------------------------------------------------------------------------------

    def has_usable_password(self, user: Any) -> bool:
        return not is_unusable_password(self.runtime.repo.value(user, "hashed_password"))

    async def check_policy(
        self, password: str, user: Any, source: Source, *, field: str = "new_password"
    ) -> None:
        """The password policy for a new password of ``user`` (``None``: an account not yet
        created), naming ``field`` in ``PasswordRejected``."""
        repo = self.runtime.repo
        context = PasswordContext(
            source=source,
            username=repo.value(user, "username") if user is not None else None,
            email=repo.value(user, "email") if user is not None else None,
            user=user,
        )
        await self.runtime.password_policy.check(password, context, field)

    # -- changes -------------------------------------------------------------------------------

    async def set_password(
        self, db: AsyncSession, user: Any, new_password: str, *, confirm: Confirm | None = None
    ) -> None:
        """Give a password to an account that has none (one made through OAuth, say).

        No epoch bump: an account without a password has no password-based credential to end.
        """
        if self.has_usable_password(user):
            raise InvalidRequest(
                "A password is already set. Use /change-password.", code="password_set"
            )
        if confirm is not None:
            await confirm(user)
        await self.check_policy(new_password, user, "set")
        new_hash = await self.runtime.hasher.hash_async(new_password)
        await self.runtime.repo.update(db, user, {"hashed_password": new_hash})
        self._audit(Events.PASSWORD_SET, user, None, actor="user" if confirm else "admin")

    async def change_password(
        self,
        db: AsyncSession,
        user: Any,
        new_password: str,
        *,
        confirm: Confirm | None = None,
        keep: str | None = None,
        context: HookContext | None = None,
    ) -> Settled:
        """Replace the password: hash and epoch bump commit together, then every session but
        ``keep`` ends. ``confirm`` proves the current password (skipped for an admin path)."""
        repo = self.runtime.repo
        user_id = repo.user_id(user)
        await self.runtime.throttles.hit("change_password", f"user:{user_id}")
        if not self.has_usable_password(user):
            raise InvalidRequest(
                "This account has no password. Use /set-password.", code="no_password"
            )
        await self.check_policy(new_password, user, "change")
        if confirm is not None:
            await confirm(user)
        new_hash = await self.runtime.hasher.hash_async(new_password)
        try:
            setattr(user, repo.attr_name("hashed_password"), new_hash)
            version = await repo.bump_token_version(db, user, commit=False)
            await db.commit()
        except BaseException:
            await rollback(db)
            raise
        settled = await self.keep_session_end_others(user_id, version, keep=keep)
        actor = "user" if confirm else "admin"
        self._audit(Events.PASSWORD_CHANGED, user, context, actor=actor, ended=settled.ended)
        await self.runtime.hooks.fire(
            "on_after_password_changed",
            repo.to_dict(user),
            db=db,
            context=context or HookContext(),
        )
        return settled

    async def sign_out_everywhere(
        self,
        db: AsyncSession,
        user: Any,
        *,
        keep: str | None = None,
        context: HookContext | None = None,
    ) -> Settled:
        """Bump the epoch (which ends every bearer token and refresh family), then end every
        session but ``keep``."""
        user_id = self.runtime.repo.user_id(user)
        await self.runtime.throttles.hit("logout_all", f"user:{user_id}")
        version = await self.runtime.repo.bump_token_version(db, user)
        settled = await self.keep_session_end_others(user_id, version, keep=keep)
        self._audit(
            Events.SESSION_REVOKED,
            user,
            context,
            actor="user",
            reason="sign_out_everywhere",
            ended=settled.ended,
        )
        return settled

    async def reset_password(
        self,
        db: AsyncSession,
        user: Any,
        new_password: str,
        spend: Spend,
        *,
        context: HookContext | None = None,
    ) -> None:
        """The commit of a password reset: new hash and epoch bump with the token spent, then
        every session ends and the sign-in lockout of the account is cleared."""
        # The policy runs before anything is spent: a weak password costs the user nothing.
        await self.check_policy(new_password, user, "reset")
        new_hash = await self.runtime.hasher.hash_async(new_password)
        repo = self.runtime.repo
        await guarded_write(db, repo, user, {"hashed_password": new_hash}, spend, bump=True)
        await self._after_commit(user, keep=None)
        self._audit(Events.PASSWORD_RESET, user, context, actor="user")
        try:
            await self.unlock(user, context=context, actor="user", reason="password_reset")
        except Exception:
            logger.warning("crudauth: could not clear the lockout after a reset")

    async def unlock(
        self,
        user: Any,
        *,
        identifiers: Sequence[str] = (),
        context: HookContext | None = None,
        actor: str = "admin",
        reason: str = "unlocked",
    ) -> None:
        """Clear the sign-in lockout of ``user``'s account and of each of its login fields
        (its username, its email), and of ``identifiers`` as typed (a spelling the account's
        fields do not hold). The address locks stay: they belong to the addresses."""
        repo = self.runtime.repo
        user_id = repo.user_id(user)
        names = [str(repo.value(user, f)) for f in self.runtime.identity.login]
        for name in dict.fromkeys([*(n for n in names if n and n != "None"), *identifiers]):
            await self.runtime.lockout.clear(name, user_id)
        self._audit(Events.LOCKOUT_CLEARED, user, context, actor=actor, reason=reason)

    async def change_email(
        self,
        db: AsyncSession,
        user: Any,
        values: Mapping[str, Any],
        spend: Spend,
        *,
        keep: str | None,
        on_conflict: CrudAuthError,
        context: HookContext | None = None,
    ) -> None:
        """The commit of an email change (``values``: the address and its verified flag)
        with the token spent and the epoch bumped; then every session but ``keep`` ends."""
        repo = self.runtime.repo
        await guarded_write(db, repo, user, values, spend, bump=True, on_conflict=on_conflict)
        await self._after_commit(user, keep=keep)
        self._audit(Events.EMAIL_CHANGE_CONFIRMED, user, context, actor="user")

    async def secure_claimed_account(self, db: AsyncSession, user: Any, spend: Spend) -> None:
        """The owner of an account's *unverified* address proved they hold the mailbox (they
        confirmed linking an OAuth provider from a mail): the address becomes verified, and
        whoever registered the account with it (perhaps not the owner) loses the password
        and every session. One commit with the epoch bump, then the sessions end."""
        repo = self.runtime.repo
        values: dict[str, Any] = {"hashed_password": make_unusable_password()}
        if repo.has("email_verified"):
            values["email_verified"] = True
        await guarded_write(db, repo, user, values, spend, bump=True)
        await self._after_commit(user, keep=None)

    # -- side effects --------------------------------------------------------------------------

    async def keep_session_end_others(
        self, user_id: Any, epoch: int, *, keep: str | None
    ) -> Settled:
        """After a committed epoch bump: session ``keep`` (a store key) moves to ``epoch`` and
        survives; every other credential of the user ends on every transport.

        The kept session moves first: a request on it in between would otherwise see an old
        epoch and end it. ``update`` never revives a session that is already gone. Every
        transport is asked even if one fails; the first failure is raised afterwards.
        """
        kept = None
        if keep is not None:
            for transport in self.transports:
                if isinstance(transport, HoldsSessions) and await transport.manager.store.update(
                    keep, {"token_version": epoch}
                ):
                    kept = keep
                    break
        ended = await self._revoke_everywhere(user_id, keep=kept)
        return Settled(kept=kept is not None, ended=ended)

    async def revoke_user(
        self, user_id: Any, *, actor: str = "admin", reason: str = "revoke_user"
    ) -> int:
        """End every credential of ``user_id`` on every transport (sessions deleted, bearer
        claims entries overwritten). Call it after committing a deactivation or an epoch
        bump; refresh families and bearer tokens end with that commit itself, because every
        refresh and every full check compares the token's epoch with the row's."""
        ended = await self._revoke_everywhere(user_id, keep=None)
        self.runtime.audit.emit(
            Events.SESSION_REVOKED,
            user_id=user_id,
            actor=actor,
            reason=reason,
            details={f"ended_{name}": count for name, count in ended.items()},
        )
        return sum(ended.values())

    def _audit(
        self,
        event: str,
        user: Any,
        context: HookContext | None,
        *,
        actor: str,
        reason: str | None = None,
        ended: Mapping[str, int] | None = None,
    ) -> None:
        details: dict[str, Detail] = {f"ended_{k}": v for k, v in (ended or {}).items()}
        user_id = self.runtime.repo.user_id(user)
        self.runtime.audit.emit(
            event, context, user_id=user_id, actor=actor, reason=reason, details=details
        )

    async def _revoke_everywhere(self, user_id: Any, *, keep: str | None) -> dict[str, int]:
        ended: dict[str, int] = {}
        failure: BaseException | None = None
        for transport in self.transports:
            try:
                ended[transport.name] = await transport.revoke_user(user_id, keep=keep)
            except Exception as exc:  # the next transport's credentials must still end
                failure = failure or exc
        if failure is not None:
            raise failure
        return ended

    async def _after_commit(self, user: Any, *, keep: str | None) -> None:
        """The side effects of a token-confirmed change. The commit already made every old
        session and bearer token invalid (their epoch is behind), so a failure here is
        logged, not raised: the token is spent and the change is done."""
        repo = self.runtime.repo
        epoch = int(repo.value(user, "token_version", 0) or 0)
        try:
            await self.keep_session_end_others(repo.user_id(user), epoch, keep=keep)
        except Exception:
            logger.exception("crudauth: could not revoke credentials after a credential change")
