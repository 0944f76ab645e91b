"""Linking a provider to an existing account by mail: the owner confirms with a link.

An OAuth sign-in whose verified address belongs to an account the provider may not simply
join (it has a password, or an unverified address) links nothing; its owner gets a mail with
a single-use link (``offer_link``). Opening it (``redeem_link``) names the identity to link,
unless the account's address or epoch (a password change) moved since the mail.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import RateLimited
from crudauth.keys import Purpose
from crudauth.oauth.types import INVALID_STATE, OAuthFailure, OAuthUserInfo
from crudauth.runtime import AuthRuntime

LINK_TTL_SECONDS: Final = 3600
MAX_LINK_TOKEN: Final = 128
_PREFIX: Final = "oauth_link:"


class LinkMailer(Protocol):
    """Sends the owner of an account the link that confirms linking a provider."""

    async def send_link_confirmation(
        self, db: AsyncSession, user: Any, token: str, ttl: int
    ) -> None: ...


class SpentLink:
    """The link token, already taken from the store: given back if the commit fails."""

    def __init__(self, runtime: AuthRuntime, key: str, raw: str, ttl: int) -> None:
        self.runtime, self.key, self.raw, self.ttl = runtime, key, raw, ttl

    async def consume(self) -> None:
        return None

    async def restore(self) -> None:
        await self.runtime.tokens.set(self.key, self.raw, self.ttl)


async def offer_link(
    runtime: AuthRuntime,
    db: AsyncSession,
    owner: Any,
    info: OAuthUserInfo,
    mailer: LinkMailer,
    ttl: int,
) -> None:
    """Mail the owner a single-use link that links ``info`` once they open it."""
    repo = runtime.repo
    try:
        await runtime.throttles.hit("existing_account_notice", f"oauth-link:{repo.user_id(owner)}")
    except RateLimited:
        return  # silent: the owner has been asked enough this hour
    token = secrets.token_urlsafe(32)
    record = {
        "user_id": str(repo.user_id(owner)),
        "email": repo.value(owner, "email"),
        "epoch": int(repo.value(owner, "token_version", 0) or 0),
        "provider": info.provider,
        "subject": info.provider_id,
        "provider_email": info.email,
    }
    key = _PREFIX + runtime.keys.digest(Purpose.OAUTH_LINK, token)
    await runtime.tokens.set(key, json.dumps(record), ttl)
    await mailer.send_link_confirmation(db, owner, token, ttl)


async def redeem_link(
    runtime: AuthRuntime, db: AsyncSession, token: str, ttl: int
) -> tuple[Any, OAuthUserInfo, SpentLink]:
    """The account and identity a link names, and the spent token; ``OAuthFailure`` for an
    unknown, used or expired link, or one the account outgrew."""
    repo = runtime.repo
    raw, key = None, ""
    if token and len(token) <= MAX_LINK_TOKEN:
        for digest in runtime.keys.digests(Purpose.OAUTH_LINK, token):
            key = _PREFIX + digest
            raw = await runtime.tokens.get_and_delete(key)
            if raw is not None:
                break
    if raw is None:
        raise OAuthFailure(INVALID_STATE, "unknown, used or expired link token")
    record = json.loads(raw)
    user = await repo.get(db, record["user_id"])
    if user is None or repo.value(user, "email") != record["email"]:
        raise OAuthFailure(INVALID_STATE, "the account changed since the mail")
    if int(repo.value(user, "token_version", 0) or 0) != record["epoch"]:
        raise OAuthFailure(INVALID_STATE, "the account changed since the mail")
    info = OAuthUserInfo(
        provider=record["provider"],
        provider_id=record["subject"],
        email=record["provider_email"],
        email_verified=True,
    )
    return user, info, SpentLink(runtime, key, raw, ttl)
