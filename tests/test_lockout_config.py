"""``LockoutConfig`` values the reference accepts, and the hard cap that holds whatever they say."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from crudauth import SessionTransport
from crudauth.ratelimit import LockoutConfig
from tests.conftest import register

PASSWORD = "correct horse battery"  # what tests.conftest.register gives alice


def cap_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "crudauth" and "max_consecutive_failures" in r.getMessage()
    ]


def test_max_attempts_above_the_hard_cap_constructs() -> None:
    config = LockoutConfig(max_attempts=1000)
    assert (config.max_attempts, config.max_consecutive_failures) == (1000, 100)


async def test_max_attempts_above_the_hard_cap_is_warned_about_at_startup(
    make_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        await make_env(lockout=LockoutConfig(max_attempts=1000))
        await make_env(transports=[SessionTransport(login_max_attempts=1000)])
        await make_env(lockout=LockoutConfig(max_attempts=100))
    assert len(cap_warnings(caplog)) == 2
    assert "max_attempts=1000" in cap_warnings(caplog)[0]


async def test_the_hard_cap_still_locks_an_identifier_at_100_failures(make_env: Any) -> None:
    env = await make_env(
        lockout=LockoutConfig(max_attempts=1000),
        trusted_proxy_hops=1,
        rate_limits={"login_ip": None},
    )
    await register(env.client)

    async def attempt(password: str, i: int) -> Any:
        return await env.client.post(
            "/login",
            data={"username": "alice", "password": password},
            headers={"X-Forwarded-For": f"10.0.{i // 250}.{i % 250 + 1}"},
        )

    for i in range(100):
        assert (await attempt("wrong horse battery", i)).status_code == 401, i
    verified = env.hasher.verifications
    locked = await attempt(PASSWORD, 100)
    assert locked.status_code == 429
    assert locked.json() == {"detail": "Too many login attempts. Try again later."}
    assert env.hasher.verifications == verified  # refused before any hashing
