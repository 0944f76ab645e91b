"""Routes that only the test servers mount: they drive the public API from outside."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from crudauth import CRUDAuth


def build(auth: CRUDAuth) -> APIRouter:
    router = APIRouter(prefix="/_test")

    @router.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @router.put("/tokens/{name}")
    async def put_token(name: str) -> dict[str, bool]:
        await auth.tokens.set(f"test:{name}", "value", 60)
        return {"ok": True}

    @router.post("/tokens/{name}/redeem")
    async def redeem(name: str) -> dict[str, bool]:
        if await auth.tokens.get_and_delete(f"test:{name}") is None:
            raise HTTPException(400, "Invalid or expired token")
        return {"ok": True}

    @router.post("/users/{user_id}/revoke-all")
    async def revoke_all(user_id: int) -> dict[str, int]:
        return {"revoked": await auth.sessions.revoke_all(user_id)}

    return router
