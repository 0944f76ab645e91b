"""The recovery routes: verify the recovery factor, reset a password, change the email."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.email import schemas
from crudauth.email.service import EmailFlowResult, EmailFlowService
from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store
from crudauth.http.request import BoundedRoute
from crudauth.principal import Principal


def _confirmed(detail: str, result: EmailFlowResult) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail}
    if result.redirect_to is not None:
        body["redirect_to"] = result.redirect_to
    return body


def build_recovery_router(service: EmailFlowService, current_user: Callable[..., Any]) -> APIRouter:
    """Six routes; the two email-change ones only when a channel sends email."""
    router = APIRouter(
        tags=["recovery"], dependencies=[Depends(no_store)], route_class=BoundedRoute
    )
    _link_request_routes(router, service)
    _confirm_routes(router, service)
    if service.can_change_email:
        _email_change_routes(router, service, current_user)
    return router


def _link_request_routes(router: APIRouter, service: EmailFlowService) -> None:
    """``/email/verify-request`` and ``/password/reset-request``: a link, if an account
    matches; the answer never says."""
    runtime = service.runtime
    factor = service.factor
    by_email = factor == "email"
    verify_sent = schemas.VERIFY_SENT_EMAIL if by_email else schemas.VERIFY_SENT_MESSAGE
    reset_sent = schemas.RESET_SENT_EMAIL if by_email else schemas.RESET_SENT_MESSAGE
    request_schema = schemas.factor_request_schema(factor)
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]

    async def verify_request(
        request: Request, db: Db, background: BackgroundTasks, body: Any
    ) -> dict[str, str]:
        """Send a verification link, if an account matches (the answer never says)."""
        with http_errors():
            await service.request_recovery_verification(
                db,
                str(getattr(body, factor)),
                redirect_to=body.redirect_to,
                client_ip=runtime.client_ip(request),
                defer=background.add_task,
            )
        return {"detail": verify_sent}

    async def reset_request(
        request: Request, db: Db, background: BackgroundTasks, body: Any
    ) -> dict[str, str]:
        """Send a password reset link, if an account matches (the answer never says)."""
        with http_errors():
            await service.request_password_reset(
                db,
                str(getattr(body, factor)),
                redirect_to=body.redirect_to,
                client_ip=runtime.client_ip(request),
                defer=background.add_task,
            )
        return {"detail": reset_sent}

    for path, endpoint in (
        ("/email/verify-request", verify_request),
        ("/password/reset-request", reset_request),
    ):
        # The body's field is named after the recovery factor, known only at build time.
        endpoint.__annotations__["body"] = Annotated[request_schema, Body()]
        router.add_api_route(path, endpoint, methods=["POST"])


def _confirm_routes(router: APIRouter, service: EmailFlowService) -> None:
    """``/email/verify-confirm`` and ``/password/reset-confirm``: spend a link's token."""
    runtime = service.runtime
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]

    @router.post("/email/verify-confirm")
    async def verify_confirm(
        request: Request, db: Db, body: Annotated[schemas.TokenIn, Body()]
    ) -> dict[str, Any]:
        """Mark the recovery factor verified."""
        with http_errors():
            result = await service.confirm_recovery_verification(
                db, body.token, context=runtime.hook_context(request, None)
            )
        return _confirmed(schemas.VERIFIED, result)

    @router.post("/password/reset-confirm")
    async def reset_confirm(
        request: Request, db: Db, body: Annotated[schemas.ResetConfirmIn, Body()]
    ) -> dict[str, Any]:
        """Set a new password and end every session of the account."""
        with http_errors():
            result = await service.reset_password(
                db, body.token, body.new_password, context=runtime.hook_context(request, None)
            )
        return _confirmed(schemas.PASSWORD_RESET, result)


def _email_change_routes(
    router: APIRouter, service: EmailFlowService, current_user: Callable[..., Any]
) -> None:
    """``/email/change-request`` (signed in, with the password) and ``/email/change-confirm``."""
    runtime = service.runtime
    Db = Annotated[AsyncSession, Depends(runtime.session_dependency)]

    @router.post("/email/change-request")
    async def change_request(
        request: Request,
        db: Db,
        background: BackgroundTasks,
        principal: Annotated[Principal, Depends(current_user)],
        body: Annotated[schemas.EmailChangeIn, Body()],
    ) -> dict[str, str]:
        """Send a confirmation link to the new address (nothing if it is taken)."""
        with http_errors():
            user = principal.user
            if user is None:
                user = await runtime.repo.get(db, principal.user_id)
            await service.request_email_change(
                db,
                user,
                str(body.new_email),
                body.password,
                redirect_to=body.redirect_to,
                client_ip=runtime.client_ip(request),
                keep_session=principal.metadata.get("session_key"),
                defer=background.add_task,
                request=request,
                transport=principal.transport,
            )
        return {"detail": schemas.CHANGE_SENT}

    @router.post("/email/change-confirm")
    async def change_confirm(
        request: Request, db: Db, body: Annotated[schemas.TokenIn, Body()]
    ) -> dict[str, Any]:
        """Switch the account to the confirmed address."""
        with http_errors():
            result = await service.confirm_email_change(
                db, body.token, context=runtime.hook_context(request, None)
            )
        return _confirmed(schemas.EMAIL_CHANGED, result)
