"""Reading the user row by primary key with a statement built once.

Every authenticated request reads its user by primary key. ``Session.get`` builds a new
``SELECT`` and works out its cache key on each call, about 140k instructions that the request
path need not pay (docs/performance.md). ``PrimaryKeyRead`` holds that statement, built once,
and says when it gives exactly what ``Session.get`` gives: the row is not in the session's
identity map (``Session.get`` would return a held row without a query, or refresh an expired
one), and the session classes read by primary key as SQLAlchemy's own do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import BigInteger, Integer, Select, SmallInteger, bindparam, select
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


#: Bits of each integer column type, narrowest first (``BigInteger`` and ``SmallInteger`` are
#: ``Integer`` subclasses). An ``Integer`` column is 32-bit on PostgreSQL and MySQL.
_INTEGER_BITS: Final = ((SmallInteger, 16), (BigInteger, 64), (Integer, 32))
_DECIMAL: Final = re.compile(r"-?[0-9]{1,20}")


def id_coercion(id_column: Any) -> Callable[[Any], Any]:
    """How a user id from a cookie or token (text) becomes the primary key's Python type.

    Raises ``ValueError`` or ``TypeError`` for a value the column cannot hold. An integer key
    takes ASCII decimal digits only, within the column's range: a database driver answers an
    out-of-range bind (a signed token whose ``sub`` has 400 digits) with an error, not with
    "no such row".
    """
    python_type: Any = id_column.type.python_type
    if not issubclass(python_type, int):

        def coerce(value: Any) -> Any:
            return value if isinstance(value, python_type) else python_type(value)

        return coerce
    bits = next((b for kind, b in _INTEGER_BITS if isinstance(id_column.type, kind)), 64)
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def coerce_integer(value: Any) -> Any:
        if isinstance(value, str):
            if not _DECIMAL.fullmatch(value):
                raise ValueError("not a decimal integer id")
            value = int(value)
        elif not isinstance(value, int):
            value = python_type(value)
        if not low <= value <= high:
            raise ValueError("integer id out of the column's range")
        return value

    return coerce_integer
