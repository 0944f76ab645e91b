"""``POST /logout`` (and the management routes) for cookie sessions; ``POST /login`` is the
sign-in pipeline's (``crudauth.signin.routes``)."""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.audit.log import Events
from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store
from crudauth.http.request import BoundedRoute
from crudauth.transports.session.management import build_management_router

if TYPE_CHECKING:
    from crudauth.transports.session.transport import SessionTransport


def build_session_router(transport: "SessionTransport") -> APIRouter:
    runtime = transport.runtime
    router = APIRouter(tags=["auth"], dependencies=[Depends(no_store)], route_class=BoundedRoute)
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]

    @router.post("/logout")
    async def logout(request: Request, response: Response, db: Db) -> dict[str, str]:
        """End the presented session. A live session must send its CSRF token."""
        with http_errors():
            live = await transport.current_session(request)
            if live is not None:
                if transport.csrf:
                    transport.manager.check_csrf(live, request.headers.get("x-csrf-token"))
                ended = await transport.manager.revoke_key(live.key)
                for sibling in transport.siblings:
                    await sibling.end_sign_in(request)
                if ended:
                    context = runtime.hook_context(request, transport.name, live.handle)
                    user_id = live.record.user_id
                    runtime.audit.emit(Events.SIGNOUT, context, user_id=user_id, actor="user")
                    user = await runtime.repo.get(db, user_id)
                    if user is not None:
                        await runtime.hooks.fire(
                            "on_after_logout",
                            runtime.repo.to_dict(user),
                            request=request,
                            context=context,
                        )
            transport.clear_all_cookies(response)
            return {"detail": "Logged out"}

    if transport.management_routes:
        router.include_router(build_management_router(transport))
    return router
