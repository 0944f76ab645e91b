"""The "Phone recovery" account shape: an SMS channel, bodies named ``phone``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crudauth import (
    CookieConfig,
    CRUDAuth,
    DeliveryChannel,
    DeliveryIntent,
    DeliveryKind,
    FrozenClock,
    IdentityConfig,
    make_auth_identity,
)
from tests.conftest import SECRET, CountingHasher

PASSWORD = "correct horse battery"


class Base(DeclarativeBase):
    pass


class PhoneUser(make_auth_identity(identifiers=["username"], recovery="phone", oauth=False), Base):
    __tablename__ = "phone_users"

    phone: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)


class PhoneSignup(BaseModel):
    username: str
    password: str
    phone: str


class SmsChannel(DeliveryChannel):
    """Records what an SMS gateway would be asked to send."""

    def __init__(self) -> None:
        self.sent: list[DeliveryIntent] = []

    async def deliver(self, intent: DeliveryIntent, db: Any) -> None:
        if intent.kind in (DeliveryKind.VERIFY_RECOVERY, DeliveryKind.RESET_PASSWORD):
            self.sent.append(intent)


@pytest.fixture
async def phone_app() -> AsyncIterator[tuple[httpx.AsyncClient, SmsChannel, CRUDAuth]]:
    engine = create_async_engine("sqlite+aiosqlite://")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    maker = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with maker() as db:
            yield db

    sms = SmsChannel()
    auth = CRUDAuth(
        session=get_session,
        user_model=PhoneUser,
        SECRET_KEY=SECRET,
        identity=IdentityConfig(login=["username"], recovery="phone"),
        register_schema=PhoneSignup,
        register_extra_fields={"phone"},
        channels=[sms],
        cookies=CookieConfig(secure=False),
        clock=FrozenClock(),
        password_hasher=CountingHasher(),
        warn_on_memory_backend=False,
    )
    app = FastAPI()
    app.include_router(auth.router)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    yield client, sms, auth
    await client.aclose()
    await engine.dispose()


async def test_phone_recovery_verifies_and_resets_over_sms(phone_app):
    client, sms, _ = phone_app
    body = {"username": "carol", "password": PASSWORD, "phone": "+15550100"}
    r = await client.post("/register", json=body)
    assert r.status_code == 202
    [verify] = sms.sent
    assert verify.kind == DeliveryKind.VERIFY_RECOVERY and verify.recipient == "+15550100"
    assert "hashed_password" not in verify.user and verify.token
    r = await client.post("/email/verify-confirm", json={"token": verify.token})
    assert r.status_code == 200 and r.json() == {"detail": "Verified successfully."}

    unknown = await client.post("/password/reset-request", json={"phone": "+15550199"})
    known = await client.post("/password/reset-request", json={"phone": "+15550100"})
    assert known.status_code == unknown.status_code == 200
    assert (
        known.json()
        == unknown.json()
        == {"detail": "If an account exists, a password reset message has been sent."}
    )
    reset = sms.sent[-1]
    assert reset.kind == DeliveryKind.RESET_PASSWORD and len(sms.sent) == 2
    r = await client.post(
        "/password/reset-confirm", json={"token": reset.token, "new_password": "new phone pass 1"}
    )
    assert r.status_code == 200
    login = await client.post("/login", data={"username": "carol", "password": "new phone pass 1"})
    assert login.status_code == 200

    r = await client.post("/email/verify-request", json={"phone": "+15550100"})
    assert r.json() == {"detail": "If an account exists, a verification message has been sent."}
    assert (await client.post("/email/verify-request", json={"email": "x@y.z"})).status_code == 422


async def test_phone_shape_has_no_email_change_routes(phone_app):
    client, _, auth = phone_app
    assert auth.emails is not None and not auth.emails.can_change_email
    r = await client.post("/email/change-request", json={"new_email": "a@b.c", "password": "x"})
    assert r.status_code == 404


async def test_a_taken_phone_at_signup_is_answered_like_a_new_one(phone_app):
    client, _, _ = phone_app
    body = {"username": "carol", "password": PASSWORD, "phone": "+15550100"}
    first = await client.post("/register", json=body)
    again = await client.post("/register", json={**body, "username": "mallory"})
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
