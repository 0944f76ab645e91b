"""Account routes for any signed-in principal: ``GET /me``."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from crudauth.http.guards import no_store
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime


def build_account_router(runtime: AuthRuntime, current_user: Callable[..., Any]) -> APIRouter:
    router = APIRouter(tags=["account"], dependencies=[Depends(no_store)])
    repo = runtime.repo

    @router.get("/me")
    async def me(principal: Annotated[Principal, Depends(current_user)]) -> dict[str, Any]:
        """Who the caller is, and through which transport."""
        user = principal.user
        return {
            "user_id": principal.user_id,
            "username": repo.value(user, "username") if user is not None else None,
            "email": repo.value(user, "email") if user is not None else None,
            "is_superuser": principal.is_superuser,
            "scopes": sorted(principal.scopes),
            "via": principal.transport,
        }

    return router
