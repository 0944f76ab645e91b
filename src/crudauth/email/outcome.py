"""The guarded write every confirm route shares: change the row, burn the token, commit.

Order, and why:
1. one ``UPDATE`` carries the whole change, and the ``token_version`` bump when there is one,
   guarded by ``WHERE token_version = <what the token saw>``; a concurrent redeemer that got
   there first makes it match no row;
2. the token is consumed (one atomic compare-and-set in the shared store): of any number of
   concurrent redeemers on any number of workers, exactly one passes;
3. commit. If the commit fails, the token is put back and the error surfaces: nothing changed
   and nothing was spent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.email.tokens import LiveRecord, RecoveryClaims, RecoveryTokens
from crudauth.errors import ChangeNotSaved, CrudAuthError, InvalidRecoveryToken, InvalidRequest
from crudauth.identity.repository import UserRepository
from crudauth.runtime import AuthRuntime
from crudauth.storage.base import SessionStore

logger = logging.getLogger("crudauth")


class SessionEnder(Protocol):
    """What a credential change needs from a session manager."""

    store: SessionStore

    async def revoke_all(self, user_id: Any, *, keep_key: str | None = None) -> int: ...


async def _rollback(db: AsyncSession) -> None:
    try:
        await db.rollback()
    except Exception:  # the connection may be gone; the transaction is dead either way
        logger.warning("crudauth: rollback after a failed account change raised", exc_info=True)


async def apply_change(
    db: AsyncSession,
    repo: UserRepository,
    tokens: RecoveryTokens,
    user: Any,
    claims: RecoveryClaims,
    record: LiveRecord,
    values: Mapping[str, Any],
    *,
    bump: bool,
    on_conflict: CrudAuthError | None = None,
) -> None:
    """Write ``values`` (logical names) to ``user`` and spend the token, all or nothing.

    ``on_conflict`` is raised instead of ``ChangeNotSaved`` when the commit hits a unique
    constraint (an email taken between the check and the write).
    """
    model = repo.model
    stmt = update(model).where(repo.column("id") == repo.user_id(user))
    changes = {repo.attr_name(name): value for name, value in values.items()}
    if bump and repo.has("token_version"):
        column = repo.column("token_version")
        stmt = stmt.where(column == repo.value(user, "token_version"))
        changes[repo.attr_name("token_version")] = column + 1
    stmt = stmt.values(changes).execution_options(synchronize_session=False)
    try:
        result = await db.execute(stmt)
        if getattr(result, "rowcount", 1) != 1:
            raise InvalidRecoveryToken("the account changed while this token was redeemed")
        await tokens.consume(claims, record)
    except InvalidRecoveryToken:
        await _rollback(db)
        raise
    except IntegrityError as exc:
        await _rollback(db)
        raise (on_conflict or ChangeNotSaved("update refused")) from exc
    except SQLAlchemyError as exc:
        await _rollback(db)
        raise ChangeNotSaved("update failed") from exc
    try:
        await db.commit()
    except BaseException as exc:
        # The token was consumed a moment ago; the change did not happen, so give it back.
        await _rollback(db)
        await tokens.restore(claims, record)
        logger.warning("crudauth: an account change failed to commit; the token stays usable")
        if isinstance(exc, IntegrityError):
            raise (on_conflict or ChangeNotSaved("commit refused")) from exc
        if isinstance(exc, (SQLAlchemyError, OSError)):
            raise ChangeNotSaved("commit failed") from exc
        raise
    await db.refresh(user)


async def end_sessions(
    runtime: AuthRuntime, managers: Sequence[SessionEnder], user: Any, *, keep: str | None
) -> None:
    """End the user's sessions on every session transport, all but ``keep``, which moves to
    the new ``token_version`` so that it survives the bump. Runs after the commit: the bump
    itself already makes every old session and bearer token invalid, so a failure here is
    logged, not raised."""
    repo = runtime.repo
    user_id = repo.user_id(user)
    for manager in managers:
        try:
            # Move the kept session to the new epoch first: a request on it in between would
            # otherwise see an old epoch and end it.
            if keep is not None:
                version = int(repo.value(user, "token_version", 0) or 0)
                await manager.store.update(keep, {"token_version": version})
            await manager.revoke_all(user_id, keep_key=keep)
        except Exception:
            logger.exception("crudauth: could not revoke sessions after a credential change")
    try:
        await runtime.credentials_changed(user_id)
    except Exception:
        logger.exception("crudauth: could not drop cached claims after a credential change")


async def confirm_password(
    runtime: AuthRuntime, user: Any, password: str, client_ip: str | None
) -> None:
    """Check a signed-in user's password under the sign-in lockout, so that a route asking
    for it is no side door for guessing: a slot is reserved before hashing, as at login."""
    repo = runtime.repo
    identifier = next(
        (str(v) for f in runtime.identity.login if (v := repo.value(user, f))),
        str(repo.user_id(user)),
    )
    attempt = await runtime.lockout.begin(client_ip, identifier)
    result = await runtime.hasher.verify_async(password, repo.value(user, "hashed_password"))
    if not result.ok:
        raise InvalidRequest("Incorrect password", code="incorrect_password")
    await runtime.lockout.succeeded(attempt)
