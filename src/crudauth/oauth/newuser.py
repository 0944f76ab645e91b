"""A new account for a provider identity that no account has yet.

The account has the provider's verified address, no usable password, and a username made
from what the provider says (its username, given name, name, or the address's local part),
made unique; ``new_user_defaults`` and ``new_user_fields`` add their columns (``Provision``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.identity.identifiers import MAX_USERNAME_LENGTH
from crudauth.oauth.types import OAUTH_FAILED, OAuthFailure, OAuthUserInfo
from crudauth.passwords import make_unusable_password
from crudauth.runtime import AuthRuntime

_USERNAME_JUNK = re.compile(r"[^a-z0-9_]+")

#: ``(db, values, info) -> extra columns``: ``new_user_defaults`` and ``new_user_fields``.
Provision = Callable[[AsyncSession, Mapping[str, Any], OAuthUserInfo], Awaitable[Mapping[str, Any]]]


async def create_user(
    runtime: AuthRuntime,
    db: AsyncSession,
    info: OAuthUserInfo,
    email: str,
    *,
    legacy_column: str | None,
    provision: Provision | None,
) -> Any:
    """Insert the account (not linked yet); ``oauth_failed`` if no row could be made.

    ``legacy_column``: the reference-era ``{provider}_id`` column, if the model has one.
    """
    repo = runtime.repo
    values: dict[str, Any] = {
        "email": email,
        "hashed_password": make_unusable_password(),
    }
    if repo.has("email_verified"):
        values["email_verified"] = True
    if legacy_column is not None:
        values[legacy_column] = info.provider_id
    now = datetime.now(timezone.utc)
    for field in ("oauth_created_at", "oauth_updated_at"):
        if repo.has(field):
            values[field] = now
    if repo.has("oauth_provider"):
        values["oauth_provider"] = info.provider
    if provision is not None:
        values = {**(await provision(db, values, info)), **values}
    for attempt in range(2):
        if repo.has("username"):
            values["username"] = await _free_username(runtime, db, info, email, attempt)
        try:
            return await repo.create(db, values)
        except IntegrityError:
            if await repo.find_by(db, "email", email) is not None:
                raise OAuthFailure(OAUTH_FAILED, "address taken meanwhile") from None
    raise OAuthFailure(OAUTH_FAILED, "no free username")


async def _free_username(
    runtime: AuthRuntime, db: AsyncSession, info: OAuthUserInfo, email: str, attempt: int
) -> str:
    limit = min(runtime.repo.max_length("username") or 32, MAX_USERNAME_LENGTH)
    base = _username_base(info, email)[:limit]
    if attempt == 0:
        candidates = [base] + [f"{base[: limit - 3]}_{i}" for i in range(1, 100)]
        for candidate in candidates:
            if await runtime.repo.find_by(db, "username", candidate) is None:
                return candidate
    return f"{base[: limit - 9]}_{secrets.token_hex(4)}"


def _username_base(info: OAuthUserInfo, email: str) -> str:
    for raw in (info.username, info.given_name, info.name, email.split("@", 1)[0]):
        if raw:
            cleaned = _USERNAME_JUNK.sub("", raw.lower().replace(" ", "_").replace("-", "_"))
            if cleaned:
                return cleaned if len(cleaned) >= 2 else f"user_{cleaned}"
    return "user"
