"""The guarded write every token-confirmed change shares: change the row, spend, commit.

Order, and why:
1. one ``UPDATE`` carries the whole change, and the ``token_version`` bump when there is one,
   guarded by ``WHERE token_version = <what the caller saw>``; a concurrent change that got
   there first makes it match no row;
2. the proof is spent (for a recovery token: one atomic compare-and-set in the shared store),
   so of any number of concurrent redeemers on any number of workers, exactly one passes;
3. commit. If the commit fails, the proof is given back and the error surfaces: nothing
   changed and nothing was spent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import ChangeNotSaved, CrudAuthError, InvalidRecoveryToken
from crudauth.identity.repository import UserRepository

logger = logging.getLogger("crudauth")


class Spend(Protocol):
    """A single-use proof that a change is allowed (a recovery token, say)."""

    async def consume(self) -> None:
        """Spend it; raise ``InvalidRecoveryToken`` if someone else already did."""

    async def restore(self) -> None:
        """Give it back after a commit that failed."""


async def rollback(db: AsyncSession) -> None:
    try:
        await db.rollback()
    except Exception:  # the connection may be gone; the transaction is dead either way
        logger.warning("crudauth: rollback after a failed account change raised", exc_info=True)


async def guarded_write(
    db: AsyncSession,
    repo: UserRepository,
    user: Any,
    values: Mapping[str, Any],
    spend: Spend,
    *,
    bump: bool,
    on_conflict: CrudAuthError | None = None,
) -> None:
    """Write ``values`` (logical names) to ``user`` and spend the proof, all or nothing.

    ``on_conflict`` is raised instead of ``ChangeNotSaved`` when the commit hits a unique
    constraint (an email taken between the check and the write).
    """
    stmt = update(repo.model).where(repo.column("id") == repo.user_id(user))
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
        await spend.consume()
    except InvalidRecoveryToken:
        await rollback(db)
        raise
    except IntegrityError as exc:
        await rollback(db)
        raise (on_conflict or ChangeNotSaved("update refused")) from exc
    except SQLAlchemyError as exc:
        await rollback(db)
        raise ChangeNotSaved("update failed") from exc
    try:
        await db.commit()
    except BaseException as exc:
        # The proof was spent a moment ago; the change did not happen, so give it back.
        await rollback(db)
        await spend.restore()
        logger.warning("crudauth: an account change failed to commit; the token stays usable")
        if isinstance(exc, IntegrityError):
            raise (on_conflict or ChangeNotSaved("commit refused")) from exc
        if isinstance(exc, (SQLAlchemyError, OSError)):
            raise ChangeNotSaved("commit failed") from exc
        raise
    await db.refresh(user)
