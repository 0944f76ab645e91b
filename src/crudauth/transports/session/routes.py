"""``POST /login`` and ``POST /logout`` for cookie sessions."""

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.http.errors import http_errors
from crudauth.http.guards import no_store, refuse_cross_site
from crudauth.http.headers import request_cookie
from crudauth.http.limits import BoundedRoute
from crudauth.transports.login import LoginForm, check_password, finish_sign_in
from crudauth.transports.session.management import build_management_router

if TYPE_CHECKING:
    from crudauth.transports.session.transport import SessionTransport


def build_session_router(transport: "SessionTransport") -> APIRouter:
    runtime = transport.runtime
    router = APIRouter(tags=["auth"], dependencies=[Depends(no_store)], route_class=BoundedRoute)
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]

    @router.post("/login")
    async def login(
        request: Request,
        response: Response,
        db: Db,
        form: Annotated[LoginForm, Depends()],
    ) -> dict[str, Any]:
        """Sign in with a username or email and a password; sets the session cookies."""
        with http_errors():
            refuse_cross_site(request, runtime.origins)
            sign_in = await check_password(
                runtime, request, db, form.username, form.password, transport=transport.name
            )
            # No fixation: whatever session this browser presented ends before a new one is
            # issued. Only after the password checked out, so that junk credentials posted
            # from another page of the same site cannot sign the user out.
            presented = request_cookie(request.scope, transport.cookie_name)
            if presented is not None:
                await transport.manager.revoke(presented)
            body = await transport.complete_login(
                request, response, sign_in.user, {"remember_me": form.remember_me}
            )
            await finish_sign_in(runtime, request, response, sign_in)
            return body

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
                    user = await runtime.repo.get(db, live.record.user_id)
                    if user is not None:
                        await runtime.hooks.fire(
                            "on_after_logout",
                            runtime.repo.to_dict(user),
                            request=request,
                            context=runtime.hook_context(request, transport.name, live.handle),
                        )
            transport.clear_all_cookies(response)
            return {"detail": "Logged out"}

    if transport.management_routes:
        router.include_router(build_management_router(transport))
    return router
