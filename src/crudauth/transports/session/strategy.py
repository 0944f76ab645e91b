"""``SessionStrategy``: what a session cookie stands for, behind the cookie transport.

The transport reads and writes cookies and checks CSRF; this decides the rest: which store
holds the sessions, whether a presented session is live, whether its account still lets it in
(``shared.standing``), the claims snapshot ``current_user(load_user=False)`` serves, and the
owners cache that lets a worker read the user row while the store read is on its way
(``owners.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from crudauth.errors import ConfigurationError, InvalidSession
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime
from crudauth.storage.base import SessionStore, StartedLoad
from crudauth.storage.memory import MemorySessionStore
from crudauth.transports.base import AuthContext
from crudauth.transports.session.manager import LiveSession, SessionManager, well_formed
from crudauth.transports.session.owners import SessionOwners
from crudauth.transports.shared import (
    Standing,
    build_principal,
    claims_snapshot,
    snapshot_principal,
    standing,
)

Backend = Literal["memory", "redis", "database"]

#: Where a session record keeps the claims snapshot taken at sign-in (in ``metadata``).
CLAIMS_KEY: Final = "_claims"
#: ``with_user``'s "no user row read yet" (``None`` means the row is gone).
_UNREAD: Final[Any] = object()


def choose_store(
    runtime: AuthRuntime,
    backend: Backend | None,
    *,
    storage: SessionStore | None,
    redis_client: Any,
    redis_url: str | None,
    prefix: str,
) -> SessionStore:
    """``storage``, else ``backend``, else the app-wide store (Redis, then the database),
    else memory."""
    if storage is not None:
        return storage
    if backend is None:
        if runtime.redis_client is not None:
            backend = "redis"
        elif runtime.database_store is not None:
            backend = "database"
        else:
            backend = "memory"
    if backend == "memory":
        return MemorySessionStore(runtime.clock)
    if backend == "database":
        if runtime.database_store is None:
            raise ConfigurationError(
                "SessionTransport(backend='database') needs CRUDAuth(database_store=...)"
            )
        return runtime.database_store.session_store()
    from crudauth.storage.redis import RedisSessionStore

    client = redis_client
    if client is None and redis_url is None:
        client = runtime.redis_client
    if client is not None:
        return RedisSessionStore(client, prefix=prefix)
    return RedisSessionStore(url=redis_url, prefix=prefix)


class SessionStrategy:
    """Validates sessions and turns them into principals for the transport named ``name``."""

    def __init__(self, runtime: AuthRuntime, manager: SessionManager, name: str) -> None:
        self.runtime = runtime
        self.manager = manager
        self.name = name
        self.owners = SessionOwners()

    # -- reading -------------------------------------------------------------------------------

    async def live(
        self, session_id: str, key: str | None = None, *, slide: bool = True
    ) -> LiveSession:
        """The presented session, validated (one store round trip), or ``InvalidSession``."""
        live = await self.manager.validate(session_id, key, slide=slide)
        if live is None:
            raise InvalidSession("unknown or expired session")
        return live

    async def authenticate(
        self,
        ctx: AuthContext,
        session_id: str,
        *,
        overlap: bool,
        check: Callable[[LiveSession], None] | None = None,
    ) -> Principal:
        """The principal of a presented session, with its user row. ``overlap``: a safe
        request that counts as use, whose store read may travel while the row is read.
        ``check`` runs on the live session before the row is read (CSRF)."""
        manager = self.manager
        key = None
        if manager.store.starts_loads and well_formed(session_id):
            key = manager.storage_key(session_id)
            owner = self.owners.get(key)
            if owner is not None and overlap:
                started = manager.start_validation(key)
                if started is not None:
                    return await self._overlapped(ctx, session_id, key, owner, *started)
        live = await self.live(session_id, key, slide=ctx.update_activity)
        if check is not None:
            check(live)
        principal = await self.with_user(ctx, session_id, live)
        if key is not None:  # under the current key, also for a record kept under an older one
            self.owners.remember(key, live.record.user_id)
        return principal

    async def _overlapped(
        self,
        ctx: AuthContext,
        session_id: str,
        key: str,
        owner: str,
        started: StartedLoad,
        now: float,
    ) -> Principal:
        """A safe request of a session this worker has seen: the store read is on its way
        while the owner's row is read, so the request waits once (see ``owners.py``). No
        CSRF check is due on a safe method."""
        try:
            user = await ctx.runtime.repo.get(ctx.db, owner)
        except BaseException:
            started.discard()
            raise
        live = await self.manager.finish_validation(session_id, key, started, now)
        if live is None:
            self.owners.forget(key)
            raise InvalidSession("unknown or expired session")
        if live.record.user_id != owner:  # a wrong entry: replaced, and the right row read
            self.owners.forget(key)
            principal = await self.with_user(ctx, session_id, live)
            self.owners.remember(key, live.record.user_id)
            return principal
        return await self.with_user(ctx, session_id, live, user)

    async def with_user(
        self, ctx: AuthContext, session_id: str, live: LiveSession, user: Any = _UNREAD
    ) -> Principal:
        """The principal of ``live`` if its account still lets it in (``standing``): an ended
        session is deleted; one ahead of the row read is refused and kept (see below)."""
        repo = ctx.runtime.repo
        early = user is not _UNREAD
        if not early:  # (an identity-map hit after a refresh: no second query)
            user = await repo.get(ctx.db, live.record.user_id)
        row = None if user is None else repo.auth_row(user)
        verdict = (
            Standing.ENDED
            if row is None
            else standing(row.is_active, row.token_version, live.record.token_version)
        )
        if row is None or verdict is Standing.ENDED:
            await self.end(live.key)
            raise InvalidSession("account gone, disabled or credentials changed")
        if verdict is Standing.AHEAD:
            if early:
                # Read before the store's answer, the row may predate a change that has
                # committed since (signing out elsewhere moves the kept session to the new
                # epoch after the commit): read it again, as the sequential order would have.
                await ctx.db.refresh(user)
                return await self.with_user(ctx, session_id, live)
            # The record was just moved to a new epoch that this request's read of the user
            # row predates (a password change racing this request): refuse, but keep the
            # session; the next request sees the committed epoch.
            raise InvalidSession("epoch moving")
        principal = build_principal(
            ctx.runtime, user, self.name, self.metadata(session_id, live), row=row
        )
        snapshot = claims_snapshot(principal)
        stored = live.record.metadata.get(CLAIMS_KEY)
        if stored is not None and stored != snapshot:
            # A flag changed in the database (say, a demotion): the full path heals the
            # snapshot that ``load_user=False`` reads. One write, only when something changed.
            await self.manager.store.update(
                live.key, {"metadata": {**live.record.metadata, CLAIMS_KEY: snapshot}}
            )
        return principal

    def claims_principal(self, session_id: str, live: LiveSession) -> Principal | None:
        """The principal from the record's snapshot alone; ``None`` for a record without one
        (signed in before snapshots existed: the full path, once)."""
        snapshot = live.record.metadata.get(CLAIMS_KEY)
        if not isinstance(snapshot, dict):
            return None
        return snapshot_principal(
            self._typed_id(live.record.user_id),
            self.name,
            snapshot,
            self.metadata(session_id, live),
        )

    def metadata(self, session_id: str, live: LiveSession) -> dict[str, Any]:
        return {
            "session_id": session_id,
            "session_key": live.key,
            "session_handle": live.handle,
            "created_at": live.record.created_at,
            "login_type": live.record.metadata.get("login_type", "password"),
        }

    def _typed_id(self, user_id: str) -> Any:
        """The user id in the model's own type (records keep it as text)."""
        try:
            return self.runtime.repo.coerce_id(user_id)  # the same coercion as ``repo.get``
        except (TypeError, ValueError):
            return user_id

    # -- writing -------------------------------------------------------------------------------

    async def start(
        self,
        user: Any,
        *,
        remember_me: bool,
        ip_address: str | None,
        user_agent: str | None,
        metadata: Mapping[str, Any],
    ) -> tuple[str, str, LiveSession]:
        """A new session for ``user`` at the row's epoch, with its claims snapshot."""
        runtime = self.runtime
        repo = runtime.repo
        return await self.manager.create_session(
            repo.user_id(user),
            token_version=int(repo.value(user, "token_version", 0) or 0),
            remember_me=remember_me,
            ip_address=ip_address,
            user_agent=user_agent,
            metadata={
                **dict(metadata),
                CLAIMS_KEY: claims_snapshot(build_principal(runtime, user, self.name, {})),
            },
        )

    async def end(self, key: str) -> None:
        """End the session stored under ``key`` (and forget its owner)."""
        self.owners.forget(key)
        await self.manager.revoke_key(key)

    async def owned(self, db: Any, live: LiveSession) -> LiveSession:
        """``live`` if its account still lets it in with a fresh read of the row; else the
        session ends (also one ahead of the row: outside a sign-in race, only a database set
        back puts a session there, and it must not come back when the epoch climbs again)."""
        repo = self.runtime.repo
        user = await repo.get(db, live.record.user_id)
        row = None if user is None else repo.auth_row(user)
        if (
            row is None
            or standing(row.is_active, row.token_version, live.record.token_version)
            is not Standing.CURRENT
        ):
            await self.end(live.key)
            raise InvalidSession("account gone, disabled or signed out")
        return live
