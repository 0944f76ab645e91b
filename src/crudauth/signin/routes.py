"""``POST /login`` (cookie sessions) and ``POST /token`` (bearer): parse the form, run the
sign-in pipeline, answer. Each transport's other routes (logout, refresh, ...) stay its own."""

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Form, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store, refuse_cross_site
from crudauth.http.request import BoundedRoute
from crudauth.identity.identifiers import MAX_EMAIL_LENGTH
from crudauth.passwords import MAX_PASSWORD_FIELD
from crudauth.signin.pipeline import SignInPipeline
from crudauth.transports.base import Transport

#: Field caps of the sign-in form (422 above them, before any lookup or hashing). Generous:
#: up to them, an identifier over 320 characters or a password over 1024 bytes is refused as
#: a wrong password, after the same work as any other attempt.
MAX_IDENTIFIER: Final = MAX_EMAIL_LENGTH
MAX_FIELD: Final = 1024


class LoginForm:
    """The sign-in form of ``/login`` and ``/token``: OAuth2's password form plus
    ``remember_me``. ``client_id``, ``client_secret`` and ``grant_type`` are accepted for
    OAuth2 clients and ignored."""

    def __init__(
        self,
        username: Annotated[str, Form(max_length=MAX_IDENTIFIER)],
        password: Annotated[str, Form(max_length=MAX_PASSWORD_FIELD)],
        remember_me: Annotated[bool, Form()] = False,
        scope: Annotated[str, Form(max_length=MAX_FIELD)] = "",
        client_id: Annotated[str | None, Form(max_length=MAX_FIELD)] = None,
        client_secret: Annotated[str | None, Form(max_length=MAX_FIELD)] = None,
        grant_type: Annotated[str | None, Form(max_length=MAX_FIELD)] = None,
    ) -> None:
        self.username = username
        self.password = password
        self.remember_me = remember_me
        self.scopes = scope.split()


def build_sign_in_router(pipeline: SignInPipeline, transport: Transport) -> APIRouter | None:
    """The password sign-in route of ``transport``, if it has one (``sign_in_path``)."""
    if transport.sign_in_path == "/login":
        return _login_router(pipeline, transport)
    if transport.sign_in_path == "/token":
        return _token_router(pipeline, transport)
    return None


def _login_router(pipeline: SignInPipeline, transport: Transport) -> APIRouter:
    runtime = pipeline.runtime
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
            refuse_cross_site(request, runtime.origins)  # the cookies would land: login CSRF
            options = {"remember_me": form.remember_me}
            return await pipeline.password(
                request, response, db, transport, form.username, form.password, options
            )

    return router


def _token_router(pipeline: SignInPipeline, transport: Transport) -> APIRouter:
    runtime = pipeline.runtime
    router = APIRouter(tags=["auth"], route_class=BoundedRoute)
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]

    @router.post("/token", dependencies=[Depends(no_store)])
    async def token(
        request: Request,
        response: Response,
        db: Db,
        form: Annotated[LoginForm, Depends()],
    ) -> dict[str, Any]:
        """Exchange a username (or email) and password for an access and a refresh token."""
        with http_errors():
            if transport.sign_in_sets_cookies:
                # The refresh cookie would land in the victim's browser: login CSRF.
                refuse_cross_site(request, runtime.origins)
            options = {"scopes": form.scopes}
            return await pipeline.password(
                request, response, db, transport, form.username, form.password, options
            )

    return router
