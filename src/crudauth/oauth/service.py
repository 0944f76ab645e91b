"""``OAuthAccountService``: which account an OAuth identity signs in to, and linking.

Resolution, in order (stricter than the reference's §3.7, never a silent takeover):

1. The identity (provider, subject) is linked already (the identities table, or the
   reference's ``{provider}_id`` column): that account, if it is active.
2. A signed-in user asked to link this provider (link-while-signed-in): link it to them.
3. Otherwise only an address the provider *verified* is used. An account with that address:
   - created by another provider (no usable password, email verified): linked, since the
     same verified mailbox already signs in to it;
   - anything else (a password, an unverified address): nothing is linked. Its owner gets a
     mail with a confirmation link (``confirm_link``) and the sign-in is refused with
     ``link_confirmation_required``; signing in and linking from the account also works.
4. No account has that address: a new user (unusable password, email verified).

A CLI or a worker can call every method here; none of them knows about HTTP. The mailed link
of step 3 is :mod:`crudauth.oauth.confirmation`'s, the new user of step 4
:mod:`crudauth.oauth.newuser`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.audit import Events
from crudauth.errors import NotFound
from crudauth.identity.identifiers import MAX_EMAIL_LENGTH, canonical_email
from crudauth.oauth.confirmation import LINK_TTL_SECONDS as LINK_TTL_SECONDS
from crudauth.oauth.confirmation import LinkMailer as LinkMailer
from crudauth.oauth.confirmation import offer_link, redeem_link
from crudauth.oauth.identities import Identity, IdentityRepository
from crudauth.oauth.newuser import Provision as Provision
from crudauth.oauth.newuser import create_user
from crudauth.oauth.types import (
    ACCOUNT_INACTIVE,
    EMAIL_MISSING,
    EMAIL_TOO_LONG,
    EMAIL_UNVERIFIED,
    INVALID_STATE,
    LAST_SIGN_IN_METHOD,
    LINK_CONFIRMATION_REQUIRED,
    PROVIDER_ALREADY_LINKED,
    OAuthFailure,
    OAuthUserInfo,
)
from crudauth.passwords import is_unusable_password
from crudauth.runtime import AuthRuntime


class ClaimSecurer(Protocol):
    """Ends what a stranger may hold on an account whose unverified address its owner just
    proved (``AccountService.secure_claimed_account``)."""

    async def secure_claimed_account(self, db: AsyncSession, user: Any, spend: Any) -> None: ...


@dataclass(frozen=True)
class Resolved:
    user: Any
    created: bool


class OAuthAccountService:
    """Resolves, links and unlinks OAuth identities of the application's users."""

    def __init__(
        self,
        runtime: AuthRuntime,
        *,
        identities: IdentityRepository | None = None,
        provision: Provision | None = None,
        mailer: LinkMailer | None = None,
        claims: ClaimSecurer | None = None,
        link_ttl: int = LINK_TTL_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.identities = identities or IdentityRepository()
        self.provision = provision
        self.mailer = mailer
        self.claims = claims
        self.link_ttl = link_ttl

    # -- resolution -------------------------------------------------------------------------

    async def resolve(
        self, db: AsyncSession, info: OAuthUserInfo, *, link_user_id: str | None = None
    ) -> Resolved:
        """The user ``info`` signs in as (created if new); ``OAuthFailure`` otherwise."""
        linked = await self.linked_user(db, info)
        if link_user_id is not None:
            return Resolved(await self._link_signed_in(db, info, link_user_id, linked), False)
        if linked is not None:
            self._require_active(linked)
            return Resolved(linked, False)
        email = self._verified_email(info)
        owner = await self.runtime.repo.find_by(db, "email", email)
        if owner is None:
            return Resolved(await self._create(db, info, email), True)
        self._require_active(owner)
        if self._made_by_a_provider(owner):
            await self.link(db, owner, info)
            return Resolved(owner, False)
        await self._ask_owner(db, owner, info)
        raise OAuthFailure(LINK_CONFIRMATION_REQUIRED, "existing account: owner must confirm")

    async def linked_user(self, db: AsyncSession, info: OAuthUserInfo) -> Any | None:
        """The user this identity is linked to, if any."""
        repo = self.runtime.repo
        found = await self.identities.find(db, info.provider, info.provider_id)
        if found is not None:
            user = await repo.get(db, found.user_id)
            if user is not None:
                return user
            # The account was deleted: its links go with it, and the identity is free again.
            await self.identities.remove(db, found.id, found.user_id)
        column = self._legacy_column(info.provider)
        if column is None:
            return None
        result = await db.execute(
            select(repo.model).where(getattr(repo.model, column) == info.provider_id).limit(1)
        )
        user = result.scalars().first()
        if user is not None:  # a reference-era link: recorded in the table from now on
            await self.identities.add(
                db,
                provider=info.provider,
                subject=info.provider_id,
                user_id=repo.user_id(user),
                email=info.email,
            )
        return user

    def _require_active(self, user: Any) -> None:
        if not self.runtime.repo.auth_row(user).is_active:
            raise OAuthFailure(ACCOUNT_INACTIVE)

    def _verified_email(self, info: OAuthUserInfo) -> str:
        if not info.email:
            raise OAuthFailure(EMAIL_MISSING)
        if info.email_verified is not True:
            raise OAuthFailure(EMAIL_UNVERIFIED)
        limit = min(self.runtime.repo.max_length("email") or MAX_EMAIL_LENGTH, MAX_EMAIL_LENGTH)
        if len(info.email) > limit:
            raise OAuthFailure(EMAIL_TOO_LONG)
        return canonical_email(info.email)

    def _made_by_a_provider(self, user: Any) -> bool:
        """No password and a verified address: only providers have ever signed in to it."""
        repo = self.runtime.repo
        hashed = repo.value(user, "hashed_password")
        return is_unusable_password(hashed) and bool(repo.value(user, "email_verified", False))

    def _legacy_column(self, provider: str) -> str | None:
        repo, field = self.runtime.repo, f"{provider}_id"
        if repo.has(field):
            return repo.attr_name(field)
        return field if repo.has_column(field) else None

    # -- linking ----------------------------------------------------------------------------

    async def link(self, db: AsyncSession, user: Any, info: OAuthUserInfo) -> None:
        """Link ``info`` to ``user``; ``provider_already_linked`` when either side is taken."""
        repo = self.runtime.repo
        added = await self.identities.add(
            db,
            provider=info.provider,
            subject=info.provider_id,
            user_id=repo.user_id(user),
            email=info.email,
        )
        if not added:
            raise OAuthFailure(PROVIDER_ALREADY_LINKED)
        self.runtime.audit.emit(
            Events.OAUTH_LINKED,
            user_id=repo.user_id(user),
            transport="oauth",
            details={"provider": info.provider},
        )
        now = datetime.now(timezone.utc)
        values: dict[str, Any] = {}
        column = self._legacy_column(info.provider)
        if column is not None and getattr(user, column) in (None, ""):
            values[column] = info.provider_id
        if repo.has("oauth_provider"):
            values["oauth_provider"] = info.provider
        if repo.has("oauth_updated_at"):
            values["oauth_updated_at"] = now
        if repo.has("oauth_created_at") and repo.value(user, "oauth_created_at") is None:
            values["oauth_created_at"] = now
        if values:
            await repo.update(db, user, values)

    async def _link_signed_in(
        self, db: AsyncSession, info: OAuthUserInfo, user_id: str, linked: Any | None
    ) -> Any:
        repo = self.runtime.repo
        user = await repo.get(db, user_id)
        if user is None:
            raise OAuthFailure(INVALID_STATE, "the user who asked to link is gone")
        self._require_active(user)
        if linked is not None:
            if repo.user_id(linked) == repo.user_id(user):
                return user
            raise OAuthFailure(PROVIDER_ALREADY_LINKED)
        await self.link(db, user, info)
        return user

    async def _ask_owner(self, db: AsyncSession, owner: Any, info: OAuthUserInfo) -> None:
        """Mail the owner a single-use link that links ``info`` once they open it."""
        if self.mailer is not None:
            await offer_link(self.runtime, db, owner, info, self.mailer, self.link_ttl)

    async def confirm_link(self, db: AsyncSession, token: str) -> Any:
        """Link the identity a confirmation mail was about; its user. Single use; void once
        the account's address or epoch (a password change) moved."""
        user, info, spent = await redeem_link(self.runtime, db, token, self.link_ttl)
        self._require_active(user)
        if await self.linked_user(db, info) is not None:
            raise OAuthFailure(PROVIDER_ALREADY_LINKED)
        if not self.runtime.repo.value(user, "email_verified", False) and self.claims is not None:
            # Pre-account hijacking: someone registered this address without proving it.
            # The mailbox's owner just did; the registrant's password and sessions end.
            await self.claims.secure_claimed_account(db, user, spent)
        await self.link(db, user, info)
        return user

    # -- provider tokens (``store_tokens=True``) -------------------------------------------

    async def keep_tokens(
        self, db: AsyncSession, info: OAuthUserInfo, tokens: Mapping[str, Any]
    ) -> None:
        """Store the provider's token response with the identity, encrypted."""
        from crudauth.oauth.tokens import TokenCipher

        sealed = TokenCipher(self.runtime.keys).encrypt(tokens)
        await self.identities.store_tokens(db, info.provider, info.provider_id, sealed)

    async def stored_tokens(
        self, db: AsyncSession, user: Any, provider: str
    ) -> dict[str, Any] | None:
        """The last token response of ``user``'s ``provider`` identity, if it was kept."""
        from crudauth.oauth.tokens import TokenCipher

        mine = [i for i in await self.list_identities(db, user) if i.provider == provider]
        if not mine:
            return None
        sealed = await self.identities.tokens_of(db, provider, mine[0].subject)
        return TokenCipher(self.runtime.keys).decrypt(sealed) if sealed else None

    # -- the identities of a user -----------------------------------------------------------

    async def list_identities(self, db: AsyncSession, user: Any) -> list[Identity]:
        return await self.identities.for_user(db, self.runtime.repo.user_id(user))

    async def unlink(self, db: AsyncSession, user: Any, identity_id: str) -> Identity:
        """Remove one of ``user``'s identities, unless it is their last way to sign in."""
        repo = self.runtime.repo
        mine = await self.list_identities(db, user)
        target = next((i for i in mine if i.id == identity_id), None)
        if target is None:
            raise NotFound("Identity not found.")
        has_password = not is_unusable_password(repo.value(user, "hashed_password"))
        if len(mine) == 1 and not has_password:
            raise OAuthFailure(LAST_SIGN_IN_METHOD, "no password and no other provider")
        if not await self.identities.remove(db, target.id, repo.user_id(user)):
            raise NotFound("Identity not found.")
        column = self._legacy_column(target.provider)
        if column is not None and getattr(user, column) == target.subject:
            await repo.update(db, user, {column: None})
        self.runtime.audit.emit(
            Events.OAUTH_UNLINKED,
            user_id=repo.user_id(user),
            actor="user",
            details={"provider": target.provider},
        )
        return target

    # -- a new user -------------------------------------------------------------------------

    async def _create(self, db: AsyncSession, info: OAuthUserInfo, email: str) -> Any:
        user = await create_user(
            self.runtime,
            db,
            info,
            email,
            legacy_column=self._legacy_column(info.provider),
            provision=self.provision,
        )
        await self.link(db, user, info)
        return user
