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
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.audit.log import Events
from crudauth.credentials import AccountService
from crudauth.errors import InvalidRequest, InvalidSession, NotAuthenticated, NotFound
from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store
from crudauth.http.request import BoundedRoute, request_cookie
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


class SessionDevices:
    """What the management routes do, without HTTP: list a user's sessions, end one by its
    handle, and hand out a session's CSRF token again."""

    def __init__(self, transport: "SessionTransport") -> None:
        self.transport = transport
        self.manager = transport.manager

    async def list(self, user_id: Any, current_key: object) -> list[SessionInfo]:
        """``user_id``'s live sessions, most recently active first."""
        records = await self.manager.list_for_user(user_id)
        infos = [session_info(record, key == current_key) for key, record in records]
        return sorted(infos, key=lambda info: info.last_activity, reverse=True)

    async def end(self, user_id: Any, handle: str) -> None:
        """End ``user_id``'s session named ``handle``; anyone else's is ``NotFound``."""
        if (
            len(handle.encode("utf-8", "replace")) > 64
            or not handle.isascii()
            or not await self.manager.revoke_by_handle(user_id, handle)
        ):
            raise NotFound(SESSION_NOT_FOUND)

    async def csrf_token(self, live: LiveSession, presented: str | None) -> tuple[str, bool]:
        """``(token, rotated)``: a presented token that still matches, else a new one."""
        keys = self.transport.runtime.keys
        if well_formed(presented) and keys.matches(
            Purpose.CSRF, presented, live.record.csrf_digest
        ):
            return presented, False
        token = await self.manager.rotate_csrf(live)
        if token is None:
            raise InvalidSession("session ended")
        return token, True


def build_management_router(transport: "SessionTransport") -> APIRouter:
    runtime = transport.runtime
    router = APIRouter(
        tags=["sessions"], dependencies=[Depends(no_store)], route_class=BoundedRoute
    )

    async def session_principal(
        request: Request, db: Annotated[AsyncSession, Depends(runtime.session_dependency)]
    ) -> Principal:
        """Only a cookie session may manage sessions; CSRF applies on unsafe methods."""
        with http_errors():
            principal = await transport.authenticate(request, AuthContext(db=db, runtime=runtime))
            if principal is None:
                raise NotAuthenticated()
            return principal

    devices = SessionDevices(transport)
    _device_routes(router, transport, devices, session_principal)
    _sign_out_routes(router, transport, devices, session_principal)
    return router


def _device_routes(
    router: APIRouter,
    transport: "SessionTransport",
    devices: SessionDevices,
    session_principal: Callable[..., Awaitable[Principal]],
) -> None:
    runtime = transport.runtime
    Caller = Annotated[Principal, Depends(session_principal)]

    @router.get("/sessions", response_model=list[SessionInfo])
    async def list_sessions(caller: Caller) -> list[SessionInfo]:
        """The caller's live sessions, most recently active first."""
        with http_errors():
            return await devices.list(caller.user_id, caller.metadata.get("session_key"))

    @router.delete("/sessions/{session_handle}")
    async def revoke_session(
        session_handle: str, request: Request, response: Response, caller: Caller
    ) -> dict[str, str]:
        """End one of the caller's sessions. Someone else's handle is simply not found."""
        with http_errors():
            await devices.end(caller.user_id, session_handle)
            own = str(caller.metadata.get("session_handle", "")).encode()
            if hmac.compare_digest(own, session_handle.encode("utf-8", "replace")):
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


def _sign_out_routes(
    router: APIRouter,
    transport: "SessionTransport",
    devices: SessionDevices,
    session_principal: Callable[..., Awaitable[Principal]],
) -> None:
    runtime = transport.runtime
    # The transports are all known by now (``attach`` ran before any router is built).
    accounts = AccountService(runtime, [transport, *transport.siblings])
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]
    Caller = Annotated[Principal, Depends(session_principal)]

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
            detail = (
                "Signed out of all other sessions." if settled.kept else "Signed out everywhere."
            )
            return {"detail": detail, "revoked": settled.ended.get(transport.name, 0)}

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
            live = await transport.current_session(request)
            if live is None:
                raise NotAuthenticated()
            live = await transport.strategy.owned(db, live)
            presented = request_cookie(request.scope, transport.csrf_cookie_name)
            token, rotated = await devices.csrf_token(live, presented)
            if rotated:
                max_age = transport.cookie_max_age(live.record.remember_me)
                transport.cookies.set_csrf(response, token, max_age)
            return {"csrf_token": token}
