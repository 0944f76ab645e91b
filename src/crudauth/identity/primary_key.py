"""Reading the user row by primary key with a statement built once.

Every authenticated request reads its user by primary key. ``Session.get`` builds a new
``SELECT`` and works out its cache key on each call, about 140k instructions that the request
path need not pay (docs/performance.md). ``PrimaryKeyRead`` holds that statement, built once,
and says when it gives exactly what ``Session.get`` gives: the row is not in the session's
identity map (``Session.get`` would return a held row without a query, or refresh an expired
one), and the session classes read by primary key as SQLAlchemy's own do.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, Session

#: The statement's bound parameter.
ID_PARAMETER: Final = "crudauth_user_id"
#: What ``Session.get`` runs on each side. A session class that replaces any of them (its own
#: ``get``; an ``execute`` wrapper that ``get`` would not have gone through; horizontal
#: sharding's identity lookup) keeps ``Session.get``.
_ASYNC_METHODS: Final = ("get", "execute")
_SYNC_METHODS: Final = ("get", "_get_impl", "_identity_lookup")


def _plain_session(async_type: type, sync_type: type) -> bool:
    """True if these session classes read by primary key exactly as SQLAlchemy's own do."""
    return all(
        getattr(async_type, name, None) is getattr(AsyncSession, name) for name in _ASYNC_METHODS
    ) and all(getattr(sync_type, name, None) is getattr(Session, name) for name in _SYNC_METHODS)


class PrimaryKeyRead:
    """``SELECT <model> WHERE <primary key> = :crudauth_user_id``, and when it may stand in
    for ``Session.get``."""

    __slots__ = ("_mapper", "_plain", "statement")

    def __init__(self, model: type[Any], mapper: Mapper[Any], id_column: Any) -> None:
        primary_key = mapper.primary_key
        #: ``None`` unless the id field is the table's one primary key column: then every
        #: read is ``Session.get``'s.
        self.statement: Select[Any] | None = (
            select(model).where(id_column == bindparam(ID_PARAMETER))
            if len(primary_key) == 1 and primary_key[0] is id_column
            else None
        )
        self._mapper = mapper
        #: ``_plain_session`` per (async, sync) session class pair seen.
        self._plain: dict[tuple[type, type], bool] = {}

    def statement_for(self, db: AsyncSession, key: Any) -> Select[Any] | None:
        """``statement`` if executing it for ``key`` in ``db`` gives what ``db.get(model,
        key)`` would (the same SQL, events, autoflush and instance), else ``None``."""
        statement = self.statement
        if statement is None:
            return None
        classes = (type(db), type(db.sync_session))
        plain = self._plain.get(classes)
        if plain is None:
            plain = self._plain[classes] = _plain_session(*classes)
        if not plain or self._mapper.identity_key_from_primary_key((key,)) in db.identity_map:
            return None
        return statement
