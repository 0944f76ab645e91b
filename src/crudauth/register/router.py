"""``POST /register``."""

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store
from crudauth.http.request import BoundedRoute
from crudauth.register.service import ACCEPTED, RegistrationService


def build_register_route(service: RegistrationService, schema: type[BaseModel]) -> APIRouter:
    runtime = service.runtime
    repo = runtime.repo
    router = APIRouter(tags=["auth"], dependencies=[Depends(no_store)], route_class=BoundedRoute)

    async def register(
        request: Request,
        response: Response,
        background: BackgroundTasks,
        db: Annotated[AsyncSession, Depends(runtime.session_dependency)],
        body: Any,
    ) -> dict[str, Any]:
        """Create an account."""
        with http_errors():
            payload = body.model_dump()
            password = payload.pop("password")
            context = runtime.hook_context(request, "register")
            user = await service.register(
                db,
                payload,
                password,
                context,
                client_ip=context.ip_address,
                defer=background.add_task,  # the mail never delays or shapes the answer
            )
            if service.delivery is not None:
                # The same 202 whether the account was created or its email was taken.
                response.status_code = 202
                return {"detail": ACCEPTED}
            return {
                "id": repo.user_id(user),
                "email": repo.value(user, "email"),
                "username": repo.value(user, "username"),
            }

    # The body type is only known at build time (the app may bring its own schema).
    register.__annotations__["body"] = Annotated[schema, Body()]
    router.add_api_route("/register", register, methods=["POST"])
    return router
