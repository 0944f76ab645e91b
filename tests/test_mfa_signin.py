"""Two-factor sign-in over HTTP: enrolment, the login challenge and its answer, for cookie
sessions and bearer tokens, with a frozen clock."""

from __future__ import annotations

import re
from typing import Any

import pytest

from crudauth import BearerTransport
from tests.mfa_support import (
    challenge_of,
    code,
    enrol,
    mfa_env,
    password_step,
    verify,
    wrong_code,
)

RECOVERY_SHAPE = re.compile(r"^[a-hjkmnp-z2-9]{4}(-[a-hjkmnp-z2-9]{4}){3}$")


async def test_enrolment_gives_ten_recovery_codes_and_turns_mfa_on(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    assert len(enrolled.recovery_codes) == 10 == len(set(enrolled.recovery_codes))
    assert all(RECOVERY_SHAPE.match(c) for c in enrolled.recovery_codes)
    assert len(enrolled.secret) == 32


async def test_setup_gives_an_otpauth_uri_for_the_issuer_and_account(make_env: Any) -> None:
    env = await mfa_env(make_env)
    await password_step(env.client)
    r = await env.client.post(
        "/mfa/totp/setup",
        json={"password": "correct horse battery"},
        headers={"X-CSRF-Token": env.client.cookies["csrf_token"]},
    )
    uri = r.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/Example:alice%40example.com?")
    assert f"secret={r.json()['secret']}" in uri and "issuer=Example" in uri


async def test_a_session_sign_in_stops_at_a_challenge_and_the_code_completes_it(
    make_env: Any,
) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    r = await password_step(env.client)
    body = r.json()
    assert set(body) == {"mfa_required", "challenge", "expires_in"}
    assert body["expires_in"] == 300
    assert "session_id" not in env.client.cookies  # nothing issued yet
    assert (await env.client.get("/private")).status_code == 401
    r = await verify(env.client, body["challenge"], code(enrolled.secret, env.clock.now()))
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id", "username", "csrf_token"}
    assert (await env.client.get("/private")).status_code == 200


async def test_a_bearer_sign_in_stops_at_a_challenge_and_the_code_gives_tokens(
    make_env: Any,
) -> None:
    env = await mfa_env(make_env, transports=[BearerTransport(refresh="body")])
    # Enrol through the service itself: the bearer app has no session to manage MFA from.
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "username", "alice")
        setup = await env.auth.mfa.setup(db, user, password="correct horse battery")
        await env.auth.mfa.confirm(db, user, code(setup["secret"], env.clock.now()))
    env.clock.advance(30)
    challenge = await challenge_of(env.client, "/token")
    r = await verify(env.client, challenge, code(setup["secret"], env.clock.now()))
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"access_token", "token_type", "refresh_token"}
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await env.client.get("/private", headers=bearer)).status_code == 200


async def test_a_wrong_code_is_refused_and_the_challenge_stays(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    challenge = await challenge_of(env.client)
    r = await verify(env.client, challenge, wrong_code(enrolled.secret, env.clock.now()))
    assert (r.status_code, r.json()["detail"]) == (401, "Invalid code")
    r = await verify(env.client, challenge, code(enrolled.secret, env.clock.now()))
    assert r.status_code == 200, r.text


async def test_a_code_signs_in_once_a_second_sign_in_needs_the_next_step(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    now_code = code(enrolled.secret, env.clock.now())
    assert (await verify(env.client, await challenge_of(env.client), now_code)).status_code == 200
    await env.client.post("/logout", headers={"X-CSRF-Token": env.client.cookies["csrf_token"]})
    r = await verify(env.client, await challenge_of(env.client), now_code)
    assert (r.status_code, r.json()["detail"]) == (401, "Invalid code")  # replayed
    env.clock.advance(30)
    r = await verify(
        env.client, await challenge_of(env.client), code(enrolled.secret, env.clock.now())
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("steps", "status"), [(-1, 200), (1, 200), (-2, 401), (2, 401)])
async def test_one_step_of_drift_is_accepted_two_are_not(
    make_env: Any, steps: int, status: int
) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    env.clock.advance(120)  # past every step the enrolment touched
    challenge = await challenge_of(env.client)
    r = await verify(env.client, challenge, code(enrolled.secret, env.clock.now() + 30 * steps))
    assert r.status_code == status, r.text


async def test_a_recovery_code_signs_in_once(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    spare = enrolled.recovery_codes[3].upper().replace("-", " ")  # typed loosely
    assert (await verify(env.client, await challenge_of(env.client), spare)).status_code == 200
    await env.client.post("/logout", headers={"X-CSRF-Token": env.client.cookies["csrf_token"]})
    r = await verify(env.client, await challenge_of(env.client), enrolled.recovery_codes[3])
    assert r.status_code == 401
    r = await env.client.get("/private")
    assert r.status_code == 401


async def test_a_challenge_expires(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    challenge = await challenge_of(env.client)
    env.clock.advance(301)
    r = await verify(env.client, challenge, code(enrolled.secret, env.clock.now()))
    assert (r.status_code, r.json()["detail"]) == (400, "Invalid or expired MFA challenge")


async def test_a_challenge_answered_from_another_browser_is_refused(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    challenge = await challenge_of(env.client)
    assert "crudauth_mfa" in env.client.cookies
    env.client.cookies.delete("crudauth_mfa")  # the token alone, without this browser's cookie
    r = await verify(env.client, challenge, code(enrolled.secret, env.clock.now()))
    assert r.status_code == 400


async def test_a_password_reset_while_a_challenge_waits_kills_it(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    challenge = await challenge_of(env.client)
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "username", "alice")
        await env.auth.repo.bump_token_version(db, user)
    r = await verify(env.client, challenge, code(enrolled.secret, env.clock.now()))
    assert r.status_code == 400


async def test_a_challenge_dies_after_five_wrong_codes(make_env: Any) -> None:
    from crudauth.ratelimit import LockoutConfig

    env = await mfa_env(make_env, lockout=LockoutConfig(max_attempts=50))
    enrolled = await enrol(env)
    challenge = await challenge_of(env.client)
    bad = wrong_code(enrolled.secret, env.clock.now())
    assert [(await verify(env.client, challenge, bad)).status_code for _ in range(5)] == [401] * 5
    r = await verify(env.client, challenge, code(enrolled.secret, env.clock.now()))
    assert r.status_code == 400


async def test_wrong_codes_share_the_password_lockout(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    challenge = await challenge_of(env.client)  # the password holds one of five slots
    bad = wrong_code(enrolled.secret, env.clock.now())
    answers = [(await verify(env.client, challenge, bad)).status_code for _ in range(6)]
    assert answers == [401, 401, 401, 401, 429, 429]
    r = await verify(env.client, challenge, code(enrolled.secret, env.clock.now()))
    assert r.status_code == 429  # even the right code waits for the lock
    assert (await password_step(env.client)).status_code == 429  # and so does the password


async def test_an_account_without_mfa_signs_in_with_its_password_alone(make_env: Any) -> None:
    env = await mfa_env(make_env)
    r = await password_step(env.client)
    assert set(r.json()) == {"id", "username", "csrf_token"}


async def test_required_mfa_enrols_during_sign_in_and_issues_nothing_before(
    make_env: Any,
) -> None:
    from tests.mfa_support import mfa_config

    env = await mfa_env(make_env, mfa=mfa_config(required=True))
    r = await password_step(env.client)
    body = r.json()
    assert body["mfa_required"] is True and set(body["setup"]) == {"secret", "otpauth_uri"}
    assert "session_id" not in env.client.cookies
    r = await env.client.post("/mfa/challenge", json={"challenge": body["challenge"]})
    assert r.json()["setup"]["secret"] == body["setup"]["secret"]
    secret = body["setup"]["secret"]
    r = await verify(env.client, body["challenge"], wrong_code(secret, env.clock.now()))
    assert r.status_code == 401 and (await env.client.get("/private")).status_code == 401
    r = await verify(env.client, body["challenge"], code(secret, env.clock.now()))
    assert r.status_code == 200, r.text
    assert len(r.json()["recovery_codes"]) == 10
    assert (await env.client.get("/private")).status_code == 200
    status = (await env.client.get("/mfa")).json()
    assert status == {"enabled": True, "required": True, "recovery_codes_remaining": 10}


async def test_a_challenge_of_an_enrolled_account_has_no_setup(make_env: Any) -> None:
    env = await mfa_env(make_env)
    await enrol(env)
    challenge = await challenge_of(env.client)
    r = await env.client.post("/mfa/challenge", json={"challenge": challenge})
    assert r.json() == {"setup": None}


async def test_verify_refuses_a_cross_site_request(make_env: Any) -> None:
    env = await mfa_env(make_env)
    enrolled = await enrol(env)
    challenge = await challenge_of(env.client)
    r = await env.client.post(
        "/mfa/verify",
        json={"challenge": challenge, "code": code(enrolled.secret, env.clock.now())},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert r.status_code == 403


async def oauth_sign_in(env: Any) -> dict[str, Any]:
    """What an OAuth callback does once the provider vouched for alice: ``complete`` with
    ``first_factor="oauth"`` and no lockout slot (the provider's proof is not metered)."""
    from starlette.requests import Request
    from starlette.responses import Response

    request = Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/oauth/example/callback",
            "headers": [],
            "client": ("203.0.113.9", 40000),
            "query_string": b"",
        }
    )
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "username", "alice")
        return await env.auth.mfa.pipeline.complete(
            request, Response(), db, env.auth.transports[0], user, {}, first_factor="oauth"
        )


async def test_an_oauth_sign_in_is_challenged_only_with_mfa_oauth(make_env: Any) -> None:
    from tests.mfa_support import mfa_config

    env = await mfa_env(make_env)
    await enrol(env)
    assert "csrf_token" in await oauth_sign_in(env)  # MfaConfig(oauth=False): straight through

    env = await mfa_env(make_env, mfa=mfa_config(oauth=True), transports=[BearerTransport()])
    async with env.sessionmaker() as db:
        user = await env.auth.repo.find_by(db, "username", "alice")
        setup = await env.auth.mfa.setup(db, user, password="correct horse battery")
        await env.auth.mfa.confirm(db, user, code(setup["secret"], env.clock.now()))
    env.clock.advance(30)
    body = await oauth_sign_in(env)
    assert body["mfa_required"] is True
    bad = wrong_code(setup["secret"], env.clock.now())
    assert (await verify(env.client, body["challenge"], bad)).status_code == 401
    r = await verify(env.client, body["challenge"], code(setup["secret"], env.clock.now()))
    assert r.status_code == 200 and "access_token" in r.json(), r.text
