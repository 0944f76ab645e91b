"""The crudauth demo: register, sign in, call a protected action, turn on two-factor sign-in,
sign out.

Runs on one process with no services: users and notes live in SQLite (``DEMO_DATABASE_URL``,
default ``sqlite+aiosqlite:///./demo.db``), sessions and CSRF tokens in memory. Start it with
``bash scripts/demo.sh`` and open http://127.0.0.1:8000/. TOTP secrets are encrypted with
``DEMO_MFA_KEY`` (a Fernet key; a random one per process when unset).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from cryptography.fernet import Fernet
from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import DateTime, ForeignKey, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crudauth import (
    CookieConfig,
    CRUDAuth,
    OAuthCredentials,
    Principal,
    SessionTransport,
    make_auth_identity,
)
from crudauth.mfa import MfaConfig

logger = logging.getLogger("crudauth.demo")

STATIC = Path(__file__).parent / "static"
DATABASE_URL = os.environ.get("DEMO_DATABASE_URL", "sqlite+aiosqlite:///./demo.db")


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    logger.warning(
        "SECRET_KEY is not set: using a random key for this process only. Every session ends "
        "when the server restarts. Set SECRET_KEY to keep sessions across restarts."
    )
    return secrets.token_urlsafe(48)


def _mfa_key() -> str:
    key = os.environ.get("DEMO_MFA_KEY")
    if key:
        return key
    logger.warning(
        "DEMO_MFA_KEY is not set: using a random key for this process only. Two-factor "
        "enrolments stop working when the server restarts."
    )
    return Fernet.generate_key().decode()


class Base(DeclarativeBase):
    pass


class User(make_auth_identity(mfa=True), Base):  # type: ignore[misc] # a mixin built at run time
    __tablename__ = "users"


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    text: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(timezone.utc)
    )


engine = create_async_engine(DATABASE_URL)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


def _providers() -> dict[str, OAuthCredentials]:
    """ "Sign in with ..." providers from the environment (none by default):
    ``DEMO_OIDC_ISSUER`` (any OpenID Connect provider, shown as ``DEMO_OIDC_NAME``),
    ``DEMO_GOOGLE_CLIENT_ID``, ``DEMO_GITHUB_CLIENT_ID``, each with its ``..._CLIENT_SECRET``."""
    env, found = os.environ, {}
    if env.get("DEMO_OIDC_ISSUER"):
        found[env.get("DEMO_OIDC_NAME", "oidc")] = OAuthCredentials(
            client_id=env["DEMO_OIDC_CLIENT_ID"],
            client_secret=env.get("DEMO_OIDC_CLIENT_SECRET", ""),
            issuer=env["DEMO_OIDC_ISSUER"],
        )
    for name in ("google", "github"):
        client_id = env.get(f"DEMO_{name.upper()}_CLIENT_ID")
        if client_id:
            secret = env[f"DEMO_{name.upper()}_CLIENT_SECRET"]
            found[name] = OAuthCredentials(client_id=client_id, client_secret=secret)
    return found


PROVIDERS = _providers()

auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=_secret_key(),
    transports=[SessionTransport(remember_me_days=30)],
    # secure=False lets the browser keep the cookies on plain http://localhost. A production
    # deployment serves HTTPS and must keep the default, secure=True.
    cookies=CookieConfig(secure=False),
    # The demo runs one uvicorn worker on purpose, so in-memory sessions are what we want.
    warn_on_memory_backend=False,
    mfa=MfaConfig(issuer="crudauth demo", encryption_key=_mfa_key()),
    oauth=PROVIDERS or None,
    # Register {DEMO_PUBLIC_URL}/oauth/<name>/callback at each provider.
    redirect_base_url=os.environ.get("DEMO_PUBLIC_URL", "http://127.0.0.1:8000")
    if PROVIDERS
    else None,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await auth.initialize()
    try:
        yield
    finally:
        await auth.shutdown()
        await engine.dispose()


app = FastAPI(title="crudauth demo", lifespan=lifespan)
app.include_router(auth.router)
app.mount("/static", StaticFiles(directory=STATIC), name="static")

# Everything the page needs comes from this origin; nothing is loaded from a CDN.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@app.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(
        STATIC / "index.html",
        headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"},
    )


@app.get("/api/providers")
async def providers() -> dict[str, list[str]]:
    """The providers this demo offers "Sign in with" buttons for."""
    return {"providers": auth.oauth_providers}


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=200)


Db = Annotated[AsyncSession, Depends(get_session)]
SignedIn = Annotated[Principal, Depends(auth.current_user())]


def _note(note: Note) -> dict[str, Any]:
    return {"id": note.id, "text": note.text, "created_at": note.created_at.isoformat()}


@app.get("/api/notes")
async def list_notes(principal: SignedIn, db: Db) -> list[dict[str, Any]]:
    """The caller's notes, newest first. A GET needs no CSRF token."""
    rows = await db.scalars(
        select(Note).where(Note.owner_id == principal.user_id).order_by(Note.id.desc())
    )
    return [_note(n) for n in rows]


@app.post("/api/notes", status_code=201)
async def add_note(body: NoteIn, principal: SignedIn, db: Db) -> dict[str, Any]:
    """Add a note. As an unsafe method from a session, it needs the X-CSRF-Token header."""
    note = Note(owner_id=principal.user_id, text=body.text)
    db.add(note)
    await db.commit()
    await db.refresh(note)
    return _note(note)
