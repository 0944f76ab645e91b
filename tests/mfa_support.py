"""What the two-factor tests share: an account shape with the MFA columns, a config, codes
computed from a secret at the test's frozen clock, and an enrolled account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pyotp
from cryptography.fernet import Fernet
from sqlalchemy.orm import DeclarativeBase

from crudauth import make_auth_identity
from crudauth.mfa import MfaConfig

PASSWORD = "correct horse battery"
MFA_KEY = Fernet.generate_key()


class MfaBase(DeclarativeBase):
    pass


class MfaUser(make_auth_identity(mfa=True), MfaBase):  # type: ignore[misc] # a built mixin
    __tablename__ = "users"


def mfa_config(**options: Any) -> MfaConfig:
    return MfaConfig(issuer="Example", encryption_key=options.pop("key", MFA_KEY), **options)


def code(secret: str, at: float) -> str:
    """The TOTP code an authenticator app shows at time ``at``."""
    return pyotp.TOTP(secret).at(at)


def wrong_code(secret: str, at: float) -> str:
    """A well-formed code valid at no step within two of ``at``."""
    taken = {pyotp.TOTP(secret).at(at + 30 * k) for k in range(-2, 3)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in taken)


async def mfa_env(make_env: Any, **options: Any) -> Any:
    """An app with MFA on and ``alice`` registered (not enrolled)."""
    options.setdefault("mfa", mfa_config())
    env = await make_env(user_model=MfaUser, **options)
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    r = await env.client.post("/register", json=body)
    assert r.status_code in (200, 202), r.text
    return env


@dataclass
class Enrolled:
    secret: str
    recovery_codes: list[str]


def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies.get("csrf_token") or ""}


async def enrol(env: Any, client: httpx.AsyncClient | None = None) -> Enrolled:
    """Sign in, set up TOTP, confirm it with a code computed at the frozen clock, sign out."""
    client = client or env.client
    r = await client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200 and "csrf_token" in r.json(), r.text
    r = await client.post("/mfa/totp/setup", json={"password": PASSWORD}, headers=csrf(client))
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    r = await client.post(
        "/mfa/totp/confirm", json={"code": code(secret, env.clock.now())}, headers=csrf(client)
    )
    assert r.status_code == 200, r.text
    recovery = r.json()["recovery_codes"]
    assert (await client.post("/logout", headers=csrf(client))).status_code == 200
    env.clock.advance(30)  # the step the confirmation used is spent
    return Enrolled(secret, recovery)


async def password_step(client: httpx.AsyncClient, route: str = "/login") -> httpx.Response:
    return await client.post(route, data={"username": "alice", "password": PASSWORD})


async def challenge_of(client: httpx.AsyncClient, route: str = "/login") -> str:
    r = await password_step(client, route)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mfa_required"] is True, body
    return str(body["challenge"])


async def verify(client: httpx.AsyncClient, challenge: str, answer: str) -> httpx.Response:
    return await client.post("/mfa/verify", json={"challenge": challenge, "code": answer})
