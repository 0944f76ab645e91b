"""``UserRepository``: the application's user model, spoken to in logical field names.

``column_map`` maps logical names (``id``, ``email``, ``hashed_password``, ...) to the model's
attribute names, so crudauth works over an existing table. The model is checked against the
identity configuration at construction; a mismatch raises ``ConfigurationError`` then, not at
the first request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter, itemgetter
from typing import Any, Final, NamedTuple

from sqlalchemy import Column, Table, UniqueConstraint, func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, NoInspectionAvailable
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ColumnProperty, InstrumentedAttribute
from sqlalchemy.orm.instrumentation import ClassManager

from crudauth.errors import ConfigurationError
from crudauth.identity.config import IdentityConfig
from crudauth.identity.identifiers import canonical_email, canonical_identifier, sql_lower_form
from crudauth.identity.primary_key import ID_PARAMETER, PrimaryKeyRead, id_coercion

LOGICAL_FIELDS: Final = (
    "id",
    "email",
    "username",
    "username_key",
    "hashed_password",
    "is_active",
    "is_superuser",
    "email_verified",
    "token_version",
    "oauth_provider",
    "google_id",
    "github_id",
    "oauth_created_at",
    "oauth_updated_at",
    "totp_secret_encrypted",
    "totp_confirmed_at",
    "totp_last_step",
    "mfa_recovery_codes",
)

SECRET_FIELDS: Final = frozenset({"hashed_password", "totp_secret_encrypted", "mfa_recovery_codes"})
"""Never handed to hooks, channels or responses."""

_DEFAULTS: Final[Mapping[str, Any]] = {
    "is_active": True,
    "is_superuser": False,
    "email_verified": False,
    "token_version": 0,
}

#: What ``auth_row`` reads, in order (then the recovery factor's verified flag, if any).
_AUTH_FIELDS: Final = ("id", "is_active", "token_version", "is_superuser", "email_verified")


class AuthRow(NamedTuple):
    """What authentication reads from a user row on every request, normalised."""

    user_id: Any
    is_active: bool
    token_version: int
    is_superuser: bool
    email_verified: bool
    recovery_verified: bool


class UserRepository:
    """Reads and writes the user model by logical field name."""

    def __init__(
        self,
        model: type[Any],
        identity: IdentityConfig | None = None,
        column_map: Mapping[str, str] | None = None,
    ) -> None:
        try:
            mapper = sa_inspect(model)
        except NoInspectionAvailable:
            raise ConfigurationError(f"{model!r} is not a mapped SQLAlchemy model") from None
        self.model = model
        self.identity = identity or IdentityConfig()
        self._attrs: dict[str, str] = {}
        columns = {prop.key: prop for prop in mapper.column_attrs}
        by_column_name = {prop.columns[0].name: prop.key for prop in mapper.column_attrs}
        mapping = dict(column_map or {})
        for logical, target in mapping.items():
            key = target if target in columns else by_column_name.get(target)
            if key is None:
                raise ConfigurationError(
                    f"column_map[{logical!r}] = {target!r}: the model has no such column"
                )
            self._attrs[logical] = key
        extra_fields = [self.identity.recovery_verified_field, self.identity.recovery]
        wanted = [*LOGICAL_FIELDS, *self.identity.login, *(f for f in extra_fields if f)]
        for logical in wanted:
            if logical not in self._attrs and logical in columns:
                self._attrs[logical] = logical
        self._columns: dict[str, ColumnProperty[Any]] = columns
        self._validate()
        id_column = columns[self.attr_name("id")].columns[0]
        self._coerce_id = id_coercion(id_column)
        self._auth_fields = self._getter([*_AUTH_FIELDS, self.identity.recovery_verified_field])
        self._by_key = PrimaryKeyRead(model, mapper, id_column)

    # -- shape ---------------------------------------------------------------------------------

    def has(self, field: str) -> bool:
        return field in self._attrs

    def attr_name(self, field: str) -> str:
        try:
            return self._attrs[field]
        except KeyError:
            raise ConfigurationError(f"the user model has no {field!r} column") from None

    def column(self, field: str) -> InstrumentedAttribute[Any]:
        attr: InstrumentedAttribute[Any] = getattr(self.model, self.attr_name(field))
        return attr

    def max_length(self, field: str) -> int | None:
        if not self.has(field):
            return None
        col = self._columns[self.attr_name(field)].columns[0]
        length = getattr(col.type, "length", None)
        return length if isinstance(length, int) else None

    def has_column(self, name: str) -> bool:
        """True when the model maps an attribute ``name`` (logical or not)."""
        return name in self._columns

    def logical_fields(self) -> list[str]:
        return list(self._attrs)

    def logical_name(self, name: str) -> str | None:
        """Map a logical or model attribute name to the logical name, if it is one."""
        if name in self._attrs:
            return name
        for logical, attr in self._attrs.items():
            if attr == name:
                return logical
        return None

    def _validate(self) -> None:
        for required in ("id", "hashed_password"):
            if not self.has(required):
                raise ConfigurationError(
                    f"the user model needs a {required!r} column (or a column_map entry for it)"
                )
        for login_field in self.identity.login:
            if not self.has(login_field):
                raise ConfigurationError(
                    f"login field {login_field!r} is not a column of {self.model.__name__}"
                )
            if not self._is_unique(login_field):
                raise ConfigurationError(
                    f"login field {login_field!r} must be a single unique column"
                )
        recovery = self.identity.recovery
        if recovery is not None:
            if not self.has(recovery):
                raise ConfigurationError(
                    f"recovery field {recovery!r} is not a column of {self.model.__name__}"
                )
            if not self._is_unique(recovery):
                raise ConfigurationError(f"recovery field {recovery!r} must be unique")

    def _is_unique(self, field: str) -> bool:
        column = self._columns[self.attr_name(field)].columns[0]
        if not isinstance(column, Column):
            return False
        if column.unique or column.primary_key:
            return True
        table = column.table
        if not isinstance(table, Table):
            return False
        for index in table.indexes:
            if index.unique and _only_column(index.expressions, column):
                return True
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint) and list(constraint.columns) == [column]:
                return True
        return False

    # -- reads ---------------------------------------------------------------------------------

    def value(self, user: Any, field: str, default: Any = None) -> Any:
        name = self._attrs.get(field)  # one lookup: this runs several times per request
        if name is None:
            return _DEFAULTS.get(field, default)
        return getattr(user, name)

    def user_id(self, user: Any) -> Any:
        return self.value(user, "id")

    def auth_row(self, user: Any) -> AuthRow:
        """The id, liveness, epoch and flags of ``user`` in one read (the request path)."""
        user_id, active, version, superuser, verified, recovered = self._auth_fields(user)
        return AuthRow(
            user_id,
            bool(active),
            int(version or 0),
            bool(superuser),
            bool(verified),
            bool(recovered),
        )

    def _getter(self, fields: list[str | None]) -> Callable[[Any], tuple[Any, ...]]:
        """Reads ``fields`` (two or more) of a row as one tuple; an unmapped field (or ``None``)
        reads as its default, like ``value``."""
        names = [self._attrs.get(f) if f else None for f in fields]
        if not all(names):
            defaults = [_DEFAULTS.get(f) if f else None for f in fields]
            present = [(i, name) for i, name in enumerate(names) if name]

            def read_some(user: Any) -> tuple[Any, ...]:
                values = list(defaults)
                for i, name in present:
                    values[i] = getattr(user, name)
                return tuple(values)

            return read_some
        by_attribute = attrgetter(*names)  # type: ignore[arg-type] # all str: checked above
        if not self._loaded_values_in_dict(names):  # type: ignore[arg-type]
            return by_attribute  # pragma: no cover - custom ORM instrumentation
        by_key = itemgetter(*names)

        model = self.model

        def read(user: Any) -> tuple[Any, ...]:
            if type(user) is not model:  # a subclass may shadow a column with a property
                return by_attribute(user)
            try:
                # A loaded column's value is the instance dict's entry: exactly what the
                # ORM's attribute returns, without a descriptor call per column.
                return by_key(user.__dict__)  # type: ignore[no-any-return]
            except KeyError:  # expired or deferred: the ORM loads it
                return by_attribute(user)

        return read

    def _loaded_values_in_dict(self, names: list[str]) -> bool:
        """True if the model keeps loaded column values in ``__dict__`` under their attribute
        names (SQLAlchemy's default instrumentation, columns not shadowed by a property)."""
        if type(sa_inspect(self.model).class_manager) is not ClassManager:
            return False
        return all(isinstance(getattr(self.model, n, None), InstrumentedAttribute) for n in names)

    async def get(self, db: AsyncSession, user_id: Any) -> Any | None:
        """The user row by primary key, as ``db.get`` returns it (``None`` if there is none).

        Every authenticated request calls this: a row that ``db.get`` would have to query for
        is read with a statement built once (``primary_key.py``), the rest by ``db.get``.
        """
        try:
            key = self.coerce_id(user_id)
        except (TypeError, ValueError):
            return None
        statement = self._by_key.statement_for(db, key)
        if statement is not None:
            found = await db.execute(statement, {ID_PARAMETER: key})
            return found.unique().scalars().one_or_none()
        return await db.get(self.model, key)

    async def current_epoch(self, db: AsyncSession, user_id: Any) -> int | None:
        """The committed ``token_version`` of ``user_id`` (``None`` if the row is gone), read
        with a query of its own rather than from the session's identity map."""
        column = self.column("token_version") if self.has("token_version") else None
        if column is None:
            return 0
        found = await db.execute(select(column).where(self.column("id") == self.coerce_id(user_id)))
        row = found.first()
        return None if row is None else int(row[0] or 0)

    def coerce_id(self, user_id: Any) -> Any:
        """``user_id`` as the primary key's Python type (a cookie or token carries a string);
        ``ValueError``/``TypeError`` for a value the column cannot hold."""
        return self._coerce_id(user_id)

    def _match(self, field: str, value: str) -> Any:
        column = self.column(field)
        if field == "email":
            return column == canonical_email(value)
        if field == "username":
            if self.has("username_key"):
                return self.column("username_key") == canonical_identifier(value)
            # Existing tables without the key column: case-insensitive through the database's
            # lower() (ASCII-only on SQLite; Unicode-aware on PostgreSQL).
            return func.lower(column) == sql_lower_form(value)
        return column == value

    async def find_by(self, db: AsyncSession, field: str, value: str) -> Any | None:
        result = await db.execute(select(self.model).where(self._match(field, value)).limit(1))
        return result.scalars().first()

    async def find_by_login(self, db: AsyncSession, identifier: str) -> Any | None:
        """First user whose login field matches ``identifier``, in configured order."""
        for field in self.identity.login:
            if field == "email" and "@" not in identifier:
                continue
            user = await self.find_by(db, field, identifier)
            if user is not None:
                return user
        return None

    def to_dict(self, user: Any) -> dict[str, Any]:
        """Every logical field except secrets (hash, TOTP secret, recovery codes)."""
        return {
            field: getattr(user, attr)
            for field, attr in self._attrs.items()
            if field not in SECRET_FIELDS
        }

    # -- writes --------------------------------------------------------------------------------

    def _attributes(self, values: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in values.items():
            logical = self.logical_name(name)
            out[self.attr_name(logical) if logical else name] = value
            if logical == "username" and self.has("username_key") and isinstance(value, str):
                out[self.attr_name("username_key")] = canonical_identifier(value)
        return out

    async def create(self, db: AsyncSession, values: Mapping[str, Any]) -> Any:
        """Insert a user and commit; ``IntegrityError`` propagates after a rollback."""
        user = self.model(**self._attributes(values))
        db.add(user)
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
            raise
        await db.refresh(user)
        return user

    async def update(self, db: AsyncSession, user: Any, values: Mapping[str, Any]) -> Any:
        for name, value in self._attributes(values).items():
            setattr(user, name, value)
        await db.commit()
        await db.refresh(user)
        return user

    async def bump_token_version(self, db: AsyncSession, user: Any, *, commit: bool = True) -> int:
        """Atomically add 1 to the epoch (a no-op at 0 for models without the column)."""
        if not self.has("token_version"):
            return 0
        column = self.column("token_version")
        stmt = (
            update(self.model)
            .where(self.column("id") == self.user_id(user))
            .values({self.attr_name("token_version"): column + 1})
            .execution_options(synchronize_session=False)
        )
        await db.execute(stmt)
        if commit:
            await db.commit()
        await db.refresh(user)
        return int(self.value(user, "token_version"))


def _only_column(expressions: Iterable[Any], column: Column[Any]) -> bool:
    exprs = list(expressions)
    return len(exprs) == 1 and exprs[0] is column
