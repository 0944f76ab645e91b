"""The two-factor example of docs/mfa.md, run over HTTP with real TOTP codes."""

from __future__ import annotations

import time

import pyotp
from cryptography.fernet import Fernet

from tests.test_docs_examples import Loader, load_example, login, register, serve

PASSWORD = "correct horse battery 9"

__all__ = ["load_example"]  # the fixture, shared with the other example tests


async def test_two_factor_example(load_example: Loader) -> None:
    old_key = Fernet.generate_key().decode()
    example = load_example("two_factor", MFA_KEYS=old_key)
    async with serve(example, "https://testserver") as new_client:
        client = new_client()
        assert (await register(client, email="a@example.com", username="alice")).status_code == 200
        r = await login(client, "alice")
        headers = {"X-CSRF-Token": r.json()["csrf_token"]}
        r = await client.post("/mfa/totp/setup", json={"password": PASSWORD}, headers=headers)
        totp = pyotp.TOTP(r.json()["secret"])
        r = await client.post(
            "/mfa/totp/confirm", json={"code": totp.at(time.time() - 30)}, headers=headers
        )
        recovery = r.json()["recovery_codes"]
        assert len(recovery) == 10
        await client.post("/logout", headers=headers)

        r = await login(client, "alice")
        assert r.json()["mfa_required"] is True
        r = await client.post(
            "/mfa/verify", json={"challenge": r.json()["challenge"], "code": totp.now()}
        )
        assert r.status_code == 200, r.text
        headers = {"X-CSRF-Token": r.json()["csrf_token"]}
        assert (await client.post("/api/close-account", headers=headers)).status_code == 403
        r = await client.post("/sudo", json={"code": recovery[0]}, headers=headers)
        assert r.status_code == 200, r.text
        headers = {"X-CSRF-Token": r.json()["csrf_token"]}
        assert (await client.post("/api/close-account", headers=headers)).status_code == 200

    # A new key first: the enrolment still signs in; reencrypt_secrets moves it to the new key.
    new_key = Fernet.generate_key().decode()
    example = load_example("two_factor", MFA_KEYS=f"{new_key},{old_key}")
    async with serve(example, "https://testserver") as new_client:
        assert await example.reencrypt_secrets() == 1
    example = load_example("two_factor", MFA_KEYS=new_key)  # the old key is gone
    async with serve(example, "https://testserver") as new_client:
        client = new_client()
        r = await login(client, "alice")
        r = await client.post(
            "/mfa/verify", json={"challenge": r.json()["challenge"], "code": recovery[1]}
        )
        assert r.status_code == 200, r.text


async def test_admins_must_enrol_at_sign_in(load_example: Loader) -> None:
    example = load_example("two_factor", MFA_KEYS=Fernet.generate_key().decode())
    async with serve(example, "https://testserver") as new_client:
        client = new_client()
        await register(client, email="root@example.com", username="root")
        async with example.SessionLocal() as db:
            user = await example.auth.repo.find_by(db, "username", "root")
            await example.auth.repo.update(db, user, {"is_superuser": True})
        r = await login(client, "root")
        body = r.json()
        assert body["mfa_required"] is True and "setup" in body
        assert "session_id" not in client.cookies
        code = pyotp.TOTP(body["setup"]["secret"]).now()
        r = await client.post("/mfa/verify", json={"challenge": body["challenge"], "code": code})
        assert r.status_code == 200 and len(r.json()["recovery_codes"]) == 10
