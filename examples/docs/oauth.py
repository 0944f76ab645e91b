"""Sign in with an OpenID Connect provider, and with Google and GitHub when their keys are set."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from crudauth import AuthUserMixin, CookieConfig, CRUDAuth, OAuthCredentials, Principal

engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./app.db"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://localhost:8000")


class Base(DeclarativeBase):
    pass


class User(AuthUserMixin, Base):
    __tablename__ = "users"


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as db:
        yield db


# Any OpenID Connect provider (Keycloak, Auth0, Okta, ...): its issuer is enough.
providers = {
    "corp": OAuthCredentials(
        client_id=os.environ["OIDC_CLIENT_ID"],
        client_secret=os.environ["OIDC_CLIENT_SECRET"],
        issuer=os.environ["OIDC_ISSUER"],
    )
}
if "GOOGLE_CLIENT_ID" in os.environ:
    providers["google"] = OAuthCredentials(
        client_id=os.environ["GOOGLE_CLIENT_ID"],
        client_secret=os.environ["GOOGLE_CLIENT_SECRET"],
    )
if "GITHUB_CLIENT_ID" in os.environ:
    providers["github"] = OAuthCredentials(
        client_id=os.environ["GITHUB_CLIENT_ID"],
        client_secret=os.environ["GITHUB_CLIENT_SECRET"],
    )

auth = CRUDAuth(
    session=get_session,
    user_model=User,
    SECRET_KEY=os.environ["SECRET_KEY"],
    oauth=providers,
    # Callbacks are {PUBLIC_URL}/oauth/{provider}/callback: register them at each provider.
    redirect_base_url=PUBLIC_URL,
    oauth_default_redirect="/",  # errors land on /?error=<code>
    cookies=CookieConfig(secure=PUBLIC_URL.startswith("https://")),
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await auth.initialize()  # OIDC discovery; creates the identities table if missing
    yield
    await auth.shutdown()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
app.include_router(auth.router)

Visitor = Annotated[Principal | None, Depends(auth.current_user(optional=True))]


@app.get("/", response_class=HTMLResponse)
async def home(visitor: Visitor, error: str | None = None) -> str:
    if visitor is not None:
        return f"<p>Signed in as {escape(visitor.user.username)}.</p>"
    links = "".join(
        f'<a href="/oauth/{name}/authorize?redirect_to=/">Sign in with {name}</a> '
        for name in auth.oauth_providers
    )
    problem = "<p>Sign-in failed.</p>" if error else ""
    return f"{problem}{links}"
