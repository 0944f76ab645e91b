"""The ``/mfa`` routes: parse, call one ``MfaService`` method, answer."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from crudauth.errors import NotAuthenticated
from crudauth.http.errors import http_errors
from crudauth.http.origins import no_store
from crudauth.http.request import BoundedRoute
from crudauth.mfa.service import MfaService
from crudauth.passwords import MAX_PASSWORD_BYTES
from crudauth.principal import Principal

Freshness = Callable[[Principal], Awaitable[bool]]
MAX_TOKEN = 128
MAX_CODE = 64


class VerifyIn(BaseModel):
    challenge: str = Field(max_length=MAX_TOKEN)
    code: str = Field(max_length=MAX_CODE)


class ChallengeIn(BaseModel):
    challenge: str = Field(max_length=MAX_TOKEN)


class SetupIn(BaseModel):
    password: str | None = Field(default=None, max_length=MAX_PASSWORD_BYTES)


class CodeIn(BaseModel):
    code: str = Field(max_length=MAX_CODE)


class FreshCodeIn(BaseModel):
    """A TOTP or recovery code; may be left out by a session in sudo mode."""

    code: str | None = Field(default=None, max_length=MAX_CODE)


async def _never(principal: Principal) -> bool:
    return False


def build_mfa_router(
    service: MfaService,
    current_user: Callable[..., Any],
    *,
    fresh: Freshness = _never,
    elevated: Freshness = _never,
) -> APIRouter:
    """``/mfa/verify`` and ``/mfa/challenge`` (a pending sign-in), and the management
    routes of a signed-in user (``mfa_manage`` rate limit, per user)."""
    router = APIRouter(
        prefix="/mfa", tags=["mfa"], dependencies=[Depends(no_store)], route_class=BoundedRoute
    )
    _challenge_routes(router, service)
    _management_routes(router, service, current_user, fresh, elevated)
    return router


def _challenge_routes(router: APIRouter, service: MfaService) -> None:
    Db = Annotated[AsyncSession, Depends(service.runtime.session_dependency)]

    @router.post("/verify")
    async def verify(body: VerifyIn, request: Request, response: Response, db: Db) -> Any:
        """Answer a sign-in's two-factor challenge; the sign-in's body on success."""
        with http_errors():
            return await service.verify(request, response, db, body.challenge, body.code)

    @router.post("/challenge")
    async def challenge(body: ChallengeIn, request: Request) -> dict[str, Any]:
        """The enrolment secret of a pending sign-in (``null`` when enrolled already)."""
        with http_errors():
            return await service.challenge_setup(request, body.challenge)


def _management_routes(
    router: APIRouter,
    service: MfaService,
    current_user: Callable[..., Any],
    fresh: Freshness,
    elevated: Freshness,
) -> None:
    Me = Annotated[Principal, Depends(current_user)]
    managing = _managing(service, current_user)

    @router.get("")
    async def status(principal: Me) -> dict[str, Any]:
        """Whether two-factor sign-in is on, required, and how many recovery codes are left."""
        with http_errors():
            return await service.status(principal.user)

    _enrolment_routes(router, service, managing, fresh)
    _fresh_factor_routes(router, service, managing, elevated)


def _managing(service: MfaService, current_user: Callable[..., Any]) -> Callable[..., Any]:
    """The dependency of a management route: a signed-in user, under ``mfa_manage``."""
    runtime = service.runtime

    async def managing(principal: Annotated[Principal, Depends(current_user)]) -> Principal:
        with http_errors():
            if principal.user is None:
                raise NotAuthenticated("no user")
            await runtime.throttles.hit("mfa_manage", f"user:{principal.user_id}")
            return principal

    return managing


def _enrolment_routes(
    router: APIRouter, service: MfaService, managing: Callable[..., Any], fresh: Freshness
) -> None:
    Managing = Annotated[Principal, Depends(managing)]
    Db = Annotated[AsyncSession, Depends(service.runtime.session_dependency)]

    @router.post("/totp/setup")
    async def setup(body: SetupIn, request: Request, db: Db, me: Managing) -> dict[str, str]:
        """A new TOTP secret and its ``otpauth://`` URI, to confirm with a code."""
        with http_errors():
            return await service.setup(
                db,
                me.user,
                password=body.password,
                fresh=await fresh(me),
                request=request,
                transport=me.transport,
            )

    @router.post("/totp/confirm")
    async def confirm(body: CodeIn, request: Request, db: Db, me: Managing) -> dict[str, Any]:
        """Turn two-factor sign-in on; the recovery codes are shown this once."""
        with http_errors():
            codes = await service.confirm(db, me.user, body.code, request=request)
            return {"recovery_codes": codes}


def _fresh_factor_routes(
    router: APIRouter, service: MfaService, managing: Callable[..., Any], elevated: Freshness
) -> None:
    """The routes that need a fresh code, or a session in sudo mode."""
    Managing = Annotated[Principal, Depends(managing)]
    Db = Annotated[AsyncSession, Depends(service.runtime.session_dependency)]

    @router.post("/totp/disable")
    async def disable(body: FreshCodeIn, request: Request, db: Db, me: Managing) -> dict[str, str]:
        """Turn two-factor sign-in off (a TOTP or recovery code, or sudo mode)."""
        with http_errors():
            await service.disable(
                db, me.user, body.code, elevated=await elevated(me), request=request
            )
            return {"detail": "Two-factor authentication disabled."}

    @router.post("/recovery-codes/regenerate")
    async def regenerate(body: FreshCodeIn, db: Db, me: Managing) -> dict[str, Any]:
        """A new set of recovery codes; the old ones stop working."""
        with http_errors():
            codes = await service.regenerate_codes(
                db, me.user, body.code, elevated=await elevated(me)
            )
            return {"recovery_codes": codes}
