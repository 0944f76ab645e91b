"""A token API: /token, then Authorization: Bearer, then /refresh; scopes gate the routes."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthUserMixin, BearerTransport, CRUDAuth, Principal

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "users"


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    transports=[
        BearerTransport(
            access_ttl=900,  # access tokens live 15 minutes
            refresh="body",  # /token and /refresh return refresh_token in the JSON body
            default_scopes=["notes:read"],  # granted when /token asks for no scope
            grantable_scopes=["notes:read", "notes:write"],  # never more than these
        )
    ],
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await auth.initialize()
    yield
    await auth.shutdown()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)

Reader = Annotated[Principal, Depends(auth.current_user(scopes=["notes:read"]))]
Writer = Annotated[Principal, Depends(auth.current_user(scopes=["notes:write"]))]


class NoteIn(BaseModel):
    text: str


@app.get("/notes")
async def list_notes(user: Reader) -> dict[str, object]:
    return {"owner": user.user_id, "notes": [], "scopes": sorted(user.scopes)}


@app.post("/notes")
async def add_note(note: NoteIn, user: Writer) -> dict[str, object]:
    # A bearer request needs no CSRF token: no browser attaches the header on its own.
    return {"owner": user.user_id, "text": note.text}
