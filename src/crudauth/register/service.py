"""Registration: allowlist, normalise, hash once, insert once.

Both the "taken" and the "new" path hash the password exactly once, before the uniqueness
check, so timing does not reveal which identifiers exist.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import ConfigurationError, DuplicateValue, InvalidInput
from crudauth.hooks import HookContext
from crudauth.identity.identifiers import (
    MAX_EMAIL_LENGTH,
    MAX_USERNAME_LENGTH,
    canonical_email,
    clean_identifier,
)
from crudauth.identity.repository import LOGICAL_FIELDS
from crudauth.policy import PasswordContext
from crudauth.register.schemas import RegisterIn, UsernameRegisterIn
from crudauth.runtime import AuthRuntime

logger = logging.getLogger("crudauth")

REGISTRATION_ALLOWED_FIELDS: Final = frozenset({"email", "username"})
"""Logical fields a ``/register`` body may set without ``register_extra_fields``."""
REGISTRATION_GATED_FIELDS: Final = frozenset(LOGICAL_FIELDS) - REGISTRATION_ALLOWED_FIELDS
"""Logical fields crudauth owns (``is_superuser``, ``email_verified``, ...): ``/register``
always drops them, and ``register_extra_fields`` may not name them."""

USERNAME_TAKEN: Final = "Username already taken"
EMAIL_TAKEN: Final = "Email already registered"
ACCEPTED: Final = "If the email is available, check your inbox to finish signing up."


#: Runs a mail job after the answer (``BackgroundTasks.add_task``); ``None`` sends at once.
Defer = Callable[[Callable[[], Awaitable[None]]], Any]


class RegistrationDelivery(Protocol):
    """What registration needs when a delivery channel is configured (the recovery feature
    provides it; registration never imports that feature)."""

    async def notify_existing_account(
        self, db: AsyncSession, user: Any, *, field: str | None = None, defer: Defer | None = None
    ) -> None: ...

    async def send_verification(
        self, db: AsyncSession, user: Any, *, defer: Defer | None = None
    ) -> None: ...


@dataclass(frozen=True)
class NewUserContext:
    """What ``new_user_fields`` may look at when a user is created."""

    email: str | None
    username: str | None
    source: Literal["register", "oauth"]
    db: AsyncSession
    register_data: Mapping[str, Any] = field(default_factory=dict)
    oauth: Any = None

    @property
    def suggested_name(self) -> str | None:
        name = getattr(self.oauth, "name", None)
        if isinstance(name, str) and name:
            return name
        if self.email:
            return self.email.split("@", 1)[0]
        return self.username


NewUserFields = Callable[
    [NewUserContext], Mapping[str, Any] | BaseModel | Awaitable[Mapping[str, Any] | BaseModel]
]
"""``CRUDAuth(new_user_fields=...)``: sync or async ``(NewUserContext) -> dict | BaseModel``,
the server-computed columns of a new account, merged after ``new_user_defaults``."""


class RegistrationService:
    """Creates accounts from a registration payload."""

    def __init__(
        self,
        runtime: AuthRuntime,
        *,
        extra_fields: Iterable[str] = (),
        new_user_defaults: Mapping[str, Any] | None = None,
        new_user_fields: NewUserFields | None = None,
        delivery: RegistrationDelivery | None = None,
        schema: type[BaseModel] | None = None,
    ) -> None:
        self.runtime = runtime
        #: With a delivery channel, a taken email (or recovery value) is answered like a new
        #: one and its owner gets an "existing account" notice: the reply reveals nothing.
        self.delivery = delivery
        repo = runtime.repo
        extras = set(extra_fields)
        gated = {f for f in extras if repo.logical_name(f) in REGISTRATION_GATED_FIELDS}
        if gated:
            raise ConfigurationError(
                f"register_extra_fields may not include crudauth-owned fields: {sorted(gated)}"
            )
        recovery = runtime.identity.recovery_verified_field
        if recovery and recovery in extras:
            raise ConfigurationError(f"register_extra_fields may not include {recovery!r}")
        self.extra_fields = frozenset(extras)
        self.new_user_defaults = self._owned_dropped(new_user_defaults or {})
        dropped = sorted(set(new_user_defaults or {}) - set(self.new_user_defaults))
        if dropped:
            logger.warning(
                "crudauth: new_user_defaults sets %s, which crudauth owns; they are ignored",
                dropped,
            )
        self.new_user_fields = new_user_fields
        if schema is None:
            schema = RegisterIn if repo.has("email") else UsernameRegisterIn
        else:
            self._warn_about_dropped_fields(schema)
        #: The body of ``POST /register``.
        self.schema: type[BaseModel] = schema

    def _warn_about_dropped_fields(self, schema: type[BaseModel]) -> None:
        """Say at startup which fields of a custom ``register_schema`` never reach the row:
        a privileged one (a client must not make itself an admin), or a column the app did
        not opt in through ``register_extra_fields``."""
        repo, recovery = self.runtime.repo, self.runtime.identity.recovery_verified_field
        for name in schema.model_fields:
            if name == "password" or name in REGISTRATION_ALLOWED_FIELDS:
                continue
            if name == recovery or REGISTRATION_GATED_FIELDS & {name, repo.logical_name(name)}:
                logger.warning(
                    "crudauth: register_schema %s declares %r, a privileged field that "
                    "crudauth owns; /register always drops it",
                    schema.__name__,
                    name,
                )
            elif name not in self.extra_fields and repo.has_column(name):
                logger.warning(
                    "crudauth: register_schema %s declares %r, a column of %s that is not in "
                    "register_extra_fields; /register drops it (opt it in to let clients "
                    "set it)",
                    schema.__name__,
                    name,
                    repo.model.__name__,
                )

    def _owned_dropped(self, values: Mapping[str, Any]) -> dict[str, Any]:
        repo = self.runtime.repo
        owned = set(LOGICAL_FIELDS) | {self.runtime.identity.recovery_verified_field}
        return {k: v for k, v in values.items() if repo.logical_name(k) not in owned}

    async def register(
        self,
        db: AsyncSession,
        payload: Mapping[str, Any],
        password: str,
        context: HookContext,
        *,
        client_ip: str | None = None,
        defer: Defer | None = None,
    ) -> Any:
        """Create an account; ``None`` when its address was taken and the owner notified.

        ``defer`` runs the mail after the answer (a route's ``BackgroundTasks.add_task``), so
        that a slow mailer neither delays the answer nor tells a new address from a taken one.
        """
        runtime, repo = self.runtime, self.runtime.repo
        raw_email = payload.get("email")
        raw_username = payload.get("username")
        await runtime.password_policy.check(
            password,
            PasswordContext(
                source="register",
                username=raw_username if isinstance(raw_username, str) else None,
                email=raw_email if isinstance(raw_email, str) else None,
            ),
        )
        values = self._allowed_values(payload)
        # Counted only once the request is valid (the reference's order), before any hashing.
        await runtime.throttles.hit_address("register", client_ip)
        values["hashed_password"] = await runtime.hasher.hash_async(password)
        if await self._taken_quietly(db, values, defer):
            return None
        values.update(self.new_user_defaults)
        values.update(await self._provisioned(db, values, payload))
        try:
            user = await repo.create(db, values)
        except IntegrityError:
            # Lost a race with a concurrent registration: report it like the pre-check would,
            # and never let the database error through.
            if await self._taken_quietly(db, values, defer):
                return None
            raise InvalidInput(
                "Registration failed: an account with these details exists"
            ) from None
        await runtime.hooks.fire("on_after_register", repo.to_dict(user), db=db, context=context)
        if self.delivery is not None:
            await self.delivery.send_verification(db, user, defer=defer)  # best-effort
        return user

    def _allowed_values(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The allowed fields of ``payload``, the username and email cleaned (an invalid one
        raises)."""
        repo = self.runtime.repo
        values = {
            k: v
            for k, v in payload.items()
            if k != "password" and (k in REGISTRATION_ALLOWED_FIELDS or k in self.extra_fields)
        }
        raw_username, raw_email = payload.get("username"), payload.get("email")
        if isinstance(raw_username, str):
            limit = min(repo.max_length("username") or MAX_USERNAME_LENGTH, MAX_USERNAME_LENGTH)
            values["username"] = clean_identifier(raw_username, "username", limit)
        if isinstance(raw_email, str):
            limit = min(repo.max_length("email") or MAX_EMAIL_LENGTH, MAX_EMAIL_LENGTH)
            values["email"] = canonical_email(clean_identifier(raw_email, "email", limit))
        return values

    async def _taken_quietly(
        self, db: AsyncSession, values: Mapping[str, Any], defer: Defer | None
    ) -> bool:
        """Raise for a taken username (public, as in the reference); for a taken email or
        recovery value, raise without delivery, or notify the owner and return True."""
        repo = self.runtime.repo
        if "username" in values and await repo.find_by(db, "username", values["username"]):
            raise DuplicateValue("username", USERNAME_TAKEN)
        fields = ["email"]
        recovery = self.runtime.identity.recovery
        if self.delivery is not None and recovery not in (None, "email", "username"):
            fields.append(recovery)
        for name in fields:
            value = values.get(name)
            owner = await repo.find_by(db, name, value) if value else None
            if owner is None:
                continue
            if self.delivery is None:
                raise DuplicateValue(name, EMAIL_TAKEN)
            await self.delivery.notify_existing_account(db, owner, field=name, defer=defer)
            return True
        return False

    async def oauth_fields(
        self, db: AsyncSession, values: Mapping[str, Any], info: Any
    ) -> dict[str, Any]:
        """``new_user_defaults`` then ``new_user_fields`` for an account an OAuth sign-in
        creates (``source="oauth"``); crudauth-owned keys dropped."""
        fields = dict(self.new_user_defaults)
        fields.update(await self._provisioned(db, values, {}, source="oauth", oauth=info))
        return fields

    async def _provisioned(
        self,
        db: AsyncSession,
        values: Mapping[str, Any],
        payload: Mapping[str, Any],
        *,
        source: Literal["register", "oauth"] = "register",
        oauth: Any = None,
    ) -> dict[str, Any]:
        if self.new_user_fields is None:
            return {}
        ctx = NewUserContext(
            email=values.get("email"),
            username=values.get("username"),
            source=source,
            db=db,
            register_data={k: v for k, v in payload.items() if k != "password"},
            oauth=oauth,
        )
        result = self.new_user_fields(ctx)
        if inspect.isawaitable(result):
            result = await result
        data = result.model_dump() if isinstance(result, BaseModel) else dict(result)
        return self._owned_dropped(data)
