"""Device management for cookie sessions (``SessionTransport(management_routes=True)``).

- ``GET /sessions``: the caller's sessions, named by handles. A handle is a keyed hash of the
  store key, 32 characters, so it can never be presented as a session cookie (43 characters,
  and only ever checked through another key).
- ``DELETE /sessions/{session_handle}``: end one of them; another user's handle is "not found".
- ``POST /logout-all``: end every session and bump the account's epoch, which also ends its
  bearer tokens and refresh families (SECURITY 82); ``keep_current=true`` keeps this one.
- ``POST /csrf/refresh``: a lost CSRF token back from the session cookie alone.
"""

import hmac
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.audit.events import Events
from crudauth.credentials import AccountService
from crudauth.errors import InvalidRequest, InvalidSession, NotAuthenticated, NotFound
from crudauth.http.errors import http_errors
from crudauth.http.guards import no_store
from crudauth.http.headers import request_cookie
from crudauth.http.limits import BoundedRoute
from crudauth.keys import Purpose
from crudauth.principal import Principal
from crudauth.storage.base import SessionRecord
from crudauth.transports.base import AuthContext
from crudauth.transports.session.manager import LiveSession, well_formed
from crudauth.transports.session.useragent import UserAgentInfo, describe

if TYPE_CHECKING:
    from crudauth.transports.session.transport import SessionTransport

SESSION_NOT_FOUND = "Session not found."


class SessionInfo(BaseModel):
    """One entry of ``GET /sessions``. ``id`` is the session's handle, never its token."""

    id: str
    device: UserAgentInfo | None
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_activity: datetime
    remember_me: bool
    current: bool


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def session_info(record: SessionRecord, current: bool) -> SessionInfo:
    return SessionInfo(
        id=record.handle,
        device=describe(record.user_agent),
        user_agent=record.user_agent,
        ip=record.ip_address,
        created_at=_when(record.created_at),
        last_activity=_when(record.last_activity),
        remember_me=record.remember_me,
        current=current,
    )


def build_management_router(transport: "SessionTransport") -> APIRouter:
    runtime = transport.runtime
    manager = transport.manager
    # The transports are all known by now (``attach`` ran before any router is built).
    accounts = AccountService(runtime, [transport, *transport.siblings])
    router = APIRouter(
        tags=["sessions"], dependencies=[Depends(no_store)], route_class=BoundedRoute
    )
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]

    async def session_principal(request: Request, db: Db) -> Principal:
        """Only a cookie session may manage sessions; CSRF applies on unsafe methods."""
        with http_errors():
            principal = await transport.authenticate(request, AuthContext(db=db, runtime=runtime))
            if principal is None:
                raise NotAuthenticated()
            return principal

    Caller = Annotated[Principal, Depends(session_principal)]

    def max_age(record: SessionRecord) -> int | None:
        if not record.remember_me:
            return None
        return int(
            min(transport.remember_me_seconds, transport.settings.remember_me_absolute_timeout)
        )

    @router.get("/sessions", response_model=list[SessionInfo])
    async def list_sessions(caller: Caller) -> list[SessionInfo]:
        """The caller's live sessions, most recently active first."""
        with http_errors():
            current = caller.metadata.get("session_key")
            records = await manager.list_for_user(caller.user_id)
        infos = [session_info(record, key == current) for key, record in records]
        return sorted(infos, key=lambda info: info.last_activity, reverse=True)

    @router.delete("/sessions/{session_handle}")
    async def revoke_session(
        session_handle: str, request: Request, response: Response, caller: Caller
    ) -> dict[str, str]:
        """End one of the caller's sessions. Someone else's handle is simply not found."""
        with http_errors():
            handle = session_handle.encode("utf-8", "replace")
            if (
                len(handle) > 64
                or not session_handle.isascii()
                or not await manager.revoke_by_handle(caller.user_id, session_handle)
            ):
                raise NotFound(SESSION_NOT_FOUND)
            own = str(caller.metadata.get("session_handle", "")).encode()
            if hmac.compare_digest(own, handle):
                transport.clear_all_cookies(response)
            context = runtime.hook_context(request, transport.name, session_handle)
            runtime.audit.emit(
                Events.SESSION_REVOKED, context, user_id=caller.user_id, actor="user"
            )
            if caller.user is not None:
                await runtime.hooks.fire(
                    "on_after_logout",
                    runtime.repo.to_dict(caller.user),
                    request=request,
                    context=context,
                )
            return {"detail": "Session revoked."}

    @router.post("/logout-all")
    async def logout_all(
        request: Request, response: Response, db: Db, caller: Caller, keep_current: bool = False
    ) -> dict[str, Any]:
        """End every session of the caller (``keep_current=true``: every other one)."""
        with http_errors():
            key = caller.metadata.get("session_key")
            keep = key if keep_current and isinstance(key, str) else None
            context = runtime.hook_context(request, transport.name)
            settled = await accounts.sign_out_everywhere(
                db, caller.user, keep=keep, context=context
            )
            if not settled.kept:
                transport.clear_all_cookies(response)
            return {
                "detail": (
                    "Signed out of all other sessions."
                    if settled.kept
                    else "Signed out everywhere."
                ),
                "revoked": settled.ended.get(transport.name, 0),
            }

    @router.post("/csrf/refresh")
    async def refresh_csrf(request: Request, response: Response, db: Db) -> dict[str, str]:
        """The session's CSRF token, from the session cookie alone (no CSRF header needed).

        A cookie that still matches is returned as it is; otherwise the token is rotated and
        the cookie set again.
        """
        with http_errors():
            await runtime.throttles.hit_address("csrf_refresh", runtime.client_ip(request))
            if not transport.csrf:
                raise InvalidRequest("CSRF is disabled.", code="csrf_disabled")
            live = await _owned_session(request, db)
            presented = request_cookie(request.scope, transport.csrf_cookie_name)
            if well_formed(presented) and runtime.keys.matches(
                Purpose.CSRF, presented, live.record.csrf_digest
            ):
                return {"csrf_token": presented}
            token = await manager.rotate_csrf(live)
            if token is None:
                raise InvalidSession("session ended")
            transport.cookies.set_csrf(response, token, max_age(live.record))
            return {"csrf_token": token}

    async def _owned_session(request: Request, db: AsyncSession) -> LiveSession:
        """The presented session, if it is live and its account still may use it."""
        live = await transport.current_session(request)
        if live is None:
            raise NotAuthenticated()
        repo = runtime.repo
        user = await repo.get(db, live.record.user_id)
        version = live.record.token_version
        if (
            user is None
            or not repo.value(user, "is_active", True)
            or (version is not None and version != repo.value(user, "token_version", 0))
        ):
            await manager.revoke_key(live.key)
            raise InvalidSession("account gone, disabled or signed out")
        return live

    return router
