"""Requests about existing and unknown accounts look and cost the same (SECURITY.md 14, 69)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from crudauth.errors import StoreUnavailable
from crudauth.ratelimit import RateLimit
from crudauth.ratelimit.base import ThrottleResult
from crudauth.ratelimit.memory import MemoryRateLimiterBackend
from tests.email_support import Outbox, email_config, signup

ROUTES = [
    ("/password/reset-request", "reset_password"),
    ("/email/verify-request", "verify_email"),
]


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


def _comparable(r: httpx.Response) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
    headers = tuple(sorted((k, v) for k, v in r.headers.items() if k.lower() != "date"))
    return r.status_code, r.content, headers


def _count_store_calls(env: Any) -> dict[str, int]:
    store = env.auth.runtime.tokens
    calls: dict[str, int] = {}
    for name in ("set", "get", "set_if_absent", "get_and_delete", "compare_and_set", "delete"):
        real = getattr(store, name)

        def counting(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            calls[_name] = calls.get(_name, 0) + 1
            return _real(*args, **kw)

        setattr(store, name, counting)
    return calls


@pytest.mark.parametrize(("path", "kind"), ROUTES)
async def test_known_and_unknown_accounts_get_the_same_answer_and_work(
    make_env, outbox, path, kind
):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    outbox.sent.clear()
    calls = _count_store_calls(env)
    before = (env.hasher.hashes, env.hasher.verifications)
    known = await env.client.post(path, json={"email": "alice@example.com"})
    work_known = dict(calls)
    calls.clear()
    unknown = await env.client.post(path, json={"email": "nobody@example.com"})
    assert _comparable(known) == _comparable(unknown)
    assert work_known == calls == {"set": 1}
    assert (env.hasher.hashes, env.hasher.verifications) == before
    assert [m["to"] for m in outbox.sent] == ["alice@example.com"]
    assert outbox.sent[0]["kind"] == kind


async def test_a_mail_failure_never_changes_the_answer(make_env, outbox, caplog):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    outbox.fail = True
    with caplog.at_level(logging.ERROR, logger="crudauth"):
        down = await env.client.post("/password/reset-request", json={"email": "alice@example.com"})
    outbox.fail = False
    up = await env.client.post("/password/reset-request", json={"email": "nobody@example.com"})
    assert _comparable(down) == _comparable(up)
    assert "delivery channel EmailChannel failed" in caplog.text
    assert "token=" not in caplog.text


async def test_inactive_accounts_get_nothing(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    await signup(env.client)
    from sqlalchemy import update

    from tests.conftest import User

    async with env.sessionmaker() as db:
        await db.execute(update(User).values(is_active=False))
        await db.commit()
    outbox.sent.clear()
    r = await env.client.post("/password/reset-request", json={"email": "alice@example.com"})
    assert r.status_code == 200 and outbox.sent == []


async def test_silent_per_target_limit_sends_nothing_and_says_nothing(make_env, outbox):
    env = await make_env(email=email_config(outbox), trusted_proxy_hops=1)
    await signup(env.client)
    answers = []
    for i in range(8):  # from eight addresses: only the per-target limit can apply
        answers.append(
            await env.client.post(
                "/password/reset-request",
                json={"email": "Alice@Example.com"},
                headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
            )
        )
    assert {_comparable(a) for a in answers} == {_comparable(answers[0])}
    assert all("ratelimit" not in k.lower() for a in answers for k in a.headers)
    assert len(outbox.of("reset_password")) == 5


class TargetCounterDown(MemoryRateLimiterBackend):
    """Per-address counters work; every per-target counter fails to reach its store."""

    async def throttle(self, key: str, limit: RateLimit, now: float) -> ThrottleResult:
        if ":target:" in key:
            raise StoreUnavailable("counter store down")
        return await super().throttle(key, limit, now)


async def test_an_uncountable_per_target_limit_sends_nothing_and_answers_the_same(
    make_env, outbox, caplog
):
    # The action's fail_open (True by default) lets the per-address limit through; the
    # per-target limit is the one thing that stops a mailbox being flooded, so it fails closed.
    env = await make_env(email=email_config(outbox), rate_limiter=TargetCounterDown())
    await signup(env.client)
    outbox.sent.clear()
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        answers = [
            await env.client.post("/password/reset-request", json={"email": "alice@example.com"})
            for _ in range(3)
        ]
    unknown = await env.client.post("/password/reset-request", json={"email": "nobody@example.com"})
    assert {_comparable(a) for a in [*answers, unknown]} == {_comparable(answers[0])}
    assert answers[0].status_code == 200
    assert outbox.of("reset_password") == []
    assert any("per-target limit unavailable" in r.getMessage() for r in caplog.records)


async def test_the_address_limit_is_public(make_env, outbox):
    env = await make_env(email=email_config(outbox))
    codes = [
        (
            await env.client.post("/password/reset-request", json={"email": f"u{i}@example.com"})
        ).status_code
        for i in range(6)
    ]
    assert codes == [200] * 5 + [429]


async def test_register_duplicate_email_gets_the_same_202_and_the_owner_a_notice(make_env, outbox):
    env = await make_env(email=email_config(outbox), rate_limits={"register": RateLimit(50, 60)})
    first = await signup(env.client)
    again = await signup(env.client, "mallory", "ALICE@example.com")
    assert again.status_code == first.status_code == 202
    assert again.json() == first.json()
    [notice] = outbox.of("existing_account")
    assert notice["to"] == "alice@example.com" and notice["ctx"].link is None
    assert len(outbox.of("verify_email")) == 1  # nobody was created for the duplicate
    taken = await signup(env.client, "alice", "other@example.com")
    assert taken.status_code == 422 and taken.json() == {"detail": "Username already taken"}
    for i in range(6):
        await signup(env.client, f"m{i}", "alice@example.com")
    assert len(outbox.of("existing_account")) == 5  # the notice is rate limited per target


async def test_without_delivery_register_keeps_its_200(make_env):
    env = await make_env()
    r = await signup(env.client)
    assert r.status_code == 200 and r.json()["username"] == "alice"
    assert env.auth.emails is None
    assert (await env.client.post("/password/reset-request", json={})).status_code == 404
