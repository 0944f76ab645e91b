"""The login lockout over HTTP: slots reserved before hashing, escalation, the device cookie.

Every test runs on the frozen clock (``env.clock``) and counts password verifications with the
counting hasher (``env.hasher.verifications``): a 429 must cost no hash at all, and a refusal
told as a wrong password exactly the one a wrong password costs.
Client addresses are chosen either with ``X-Forwarded-For`` through one trusted proxy
(``trusted_proxy_hops=1``) or with the socket peer of an ``httpx.ASGITransport``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from crudauth import (
    AuthHooks,
    BearerTransport,
    ConfigurationError,
    CookieConfig,
    SessionTransport,
)
from crudauth.errors import StoreUnavailable
from crudauth.ratelimit import (
    LockoutConfig,
    MemoryRateLimiterBackend,
    RateLimit,
    redis_rate_limiter,
)
from crudauth.ratelimit.policy import Reservation
from tests.conftest import REDIS_TEST_URL, register

PASSWORD = "correct horse battery"  # what tests.conftest.register gives alice
WRONG = "wrong horse battery"
LOCKED = {"detail": "Too many login attempts. Try again later."}
THROTTLED = {"detail": "Too many requests. Try again later."}
DEVICE_COOKIE = "crudauth_device"

Browser = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A factory of clients with their own cookie jar and socket peer."""
    clients: list[httpx.AsyncClient] = []

    def make(env: Any, peer: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=env.app, client=(peer, 1234))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def attempt(
    env: Any,
    username: str = "alice",
    password: str = WRONG,
    *,
    ip: str | None = None,
    client: httpx.AsyncClient | None = None,
    cookie: str | None = None,
) -> httpx.Response:
    """One ``POST /login``, from ``ip`` (``X-Forwarded-For``) when given."""
    headers = {}
    if ip is not None:
        headers["X-Forwarded-For"] = ip
    if cookie is not None:
        headers["Cookie"] = cookie
    return await (client or env.client).post(
        "/login", data={"username": username, "password": password}, headers=headers
    )


def comparable(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Status, body and every header except ``date``."""
    headers = sorted((k, v) for k, v in response.headers.multi_items() if k.lower() != "date")
    return response.status_code, response.content, headers


def assert_locked(response: httpx.Response, retry_after: int | None = None) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == LOCKED
    assert response.headers["x-error-code"] == "locked_out"
    assert int(response.headers["retry-after"]) >= 1
    if retry_after is not None:
        assert response.headers["retry-after"] == str(retry_after)
    assert "set-cookie" not in response.headers


async def lock_identifier(env: Any, username: str, prefix: str) -> None:
    """Guess from fresh addresses until the identifier itself is locked."""
    for i in range(5):
        assert (await attempt(env, username, ip=f"{prefix}.{i}")).status_code == 401
    assert_locked(await attempt(env, username, PASSWORD, ip=f"{prefix}.99"))


# -- the threshold, and no hashing while locked ------------------------------------------------


async def test_sixth_attempt_is_refused_even_with_the_right_password_and_without_hashing(
    make_env,
):
    env = await make_env()
    await register(env.client)
    for _ in range(5):
        assert (await attempt(env)).status_code == 401
    assert env.hasher.verifications == 5
    r = await attempt(env, password=PASSWORD)
    assert_locked(r, retry_after=60)
    assert env.hasher.verifications == 5  # the right password was never checked
    env.clock.advance(59)
    assert_locked(await attempt(env, password=PASSWORD), retry_after=1)
    assert env.hasher.verifications == 5
    env.clock.advance(1)
    assert (await attempt(env, password=PASSWORD)).status_code == 200
    assert env.hasher.verifications == 6


# -- escalation --------------------------------------------------------------------------------


SCHEDULE = [60, 120, 240, 480, 960, 1920, 3600]  # base 60 doubling, capped at 3600


async def run_rounds(env: Any, subject: str, schedule: list[int], first: int = 0) -> None:
    """Per round: five evaluated guesses, then a lock of the expected length, then wait it out."""
    for round_, expected in enumerate(schedule, start=first):
        before = env.hasher.verifications
        for i in range(6):
            if subject == "address":  # one address, a new identifier each time
                args: dict[str, Any] = {"username": f"u{round_}-{i}", "ip": "198.51.100.1"}
            else:  # one identifier, a new address each time
                args = {"username": "alice", "ip": f"10.{round_}.0.{i}"}
            r = await attempt(env, **args)
            if i < 5:
                assert r.status_code == 401, (round_, i)
            else:
                assert_locked(r, retry_after=expected)
        assert env.hasher.verifications == before + 5
        env.clock.advance(expected - 1)
        assert_locked(await attempt(env, **args), retry_after=1)
        env.clock.advance(1)


@pytest.mark.parametrize("subject", ["address", "identifier"])
async def test_the_lock_escalates_up_to_the_cap(make_env, subject):
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    await run_rounds(env, subject, SCHEDULE)
    assert (await attempt(env, password=PASSWORD, ip="192.0.2.200")).status_code == 200


@pytest.mark.parametrize("subject", ["address", "identifier"])
async def test_the_capped_lock_repeats_for_an_attacker_who_comes_back(make_env, subject):
    """Once at the cap, guessing on right after the lock ends earns the cap again, not 60 s."""
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    await run_rounds(env, subject, SCHEDULE)
    await run_rounds(env, subject, [3600, 3600], first=len(SCHEDULE))


async def test_a_custom_schedule_is_followed(make_env):
    config = LockoutConfig(
        max_attempts=2, attempt_window_seconds=30, lockout_base_seconds=10, lockout_max_seconds=25
    )
    env = await make_env(lockout=config, trusted_proxy_hops=1)
    for round_, expected in enumerate([10, 20, 25, 25]):
        for i in range(2):
            assert (await attempt(env, "carol", ip=f"10.0.{round_}.{i}")).status_code == 401
        assert_locked(await attempt(env, "carol", ip=f"10.0.{round_}.9"), retry_after=expected)
        env.clock.advance(expected)
    # Attempts are counted per window: after the window, the count starts again.
    env.clock.advance(3600)
    assert (await attempt(env, "carol", ip="10.1.0.1")).status_code == 401
    env.clock.advance(30)
    assert (await attempt(env, "carol", ip="10.1.0.2")).status_code == 401
    assert (await attempt(env, "carol", ip="10.1.0.3")).status_code == 401


# -- what a success gives back -----------------------------------------------------------------


async def test_a_correct_password_releases_its_slot_and_clears_the_identifier(make_env):
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    home = "203.0.113.7"
    for _ in range(4):
        assert (await attempt(env, ip=home)).status_code == 401
    assert (await attempt(env, password=PASSWORD, ip=home)).status_code == 200
    env.client.cookies.clear()  # no device cookie: the identifier lock applies in full
    assert env.hasher.verifications == 5

    # The address got the success's slot back (clear_all): 4 used, so one more is evaluated.
    assert (await attempt(env, "bob", ip=home)).status_code == 401
    assert_locked(await attempt(env, "carol", ip=home))
    assert env.hasher.verifications == 6

    # The identifier starts afresh: five more guesses are evaluated, the sixth is refused.
    for i in range(5):
        assert (await attempt(env, ip=f"198.51.100.{i}")).status_code == 401
    assert_locked(await attempt(env, password=PASSWORD, ip="198.51.100.50"))
    assert env.hasher.verifications == 11


async def test_clear_user_only_keeps_the_address_slot_counted(make_env):
    env = await make_env(
        lockout=LockoutConfig(on_login_success="clear_user_only"), trusted_proxy_hops=1
    )
    await register(env.client)
    home = "203.0.113.7"
    for _ in range(4):
        assert (await attempt(env, ip=home)).status_code == 401
    assert (await attempt(env, password=PASSWORD, ip=home)).status_code == 200
    assert_locked(await attempt(env, "bob", ip=home))  # 5 attempts from here: the 6th waits


# -- no existence oracle -----------------------------------------------------------------------


async def test_a_lock_on_an_unknown_identifier_looks_like_one_on_a_known_identifier(make_env):
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    seen: dict[str, list[httpx.Response]] = {}
    for n, name in enumerate(["alice", "nobody"]):
        before = env.hasher.verifications
        responses = [await attempt(env, name, ip=f"10.{n}.0.{i}") for i in range(7)]
        assert [r.status_code for r in responses] == [401] * 5 + [429] * 2
        assert env.hasher.verifications == before + 5  # unknown users cost a hash too
        seen[name] = responses
    for known, unknown in zip(seen["alice"], seen["nobody"], strict=True):
        assert comparable(known) == comparable(unknown)


async def locked_carol(make_env: Any, limiter: str, **options: Any) -> Any:
    """``carol`` (``carol@example.com``) with her account budget spent from five addresses."""
    if limiter == "redis":
        options["rate_limiter"] = redis_rate_limiter(
            REDIS_TEST_URL, prefix=f"crudauth-test:{uuid.uuid4().hex}:rl:"
        )
    env = await make_env(
        transports=[SessionTransport(), BearerTransport()], trusted_proxy_hops=1, **options
    )
    await register(env.client, "carol", "carol@example.com")
    for i in range(5):
        assert (await attempt(env, "carol", ip=f"10.9.0.{i}")).status_code == 401
    assert_locked(await attempt(env, "carol", PASSWORD, ip="10.9.0.99"))  # the lock she typed
    return env


async def sign_in_at(env: Any, route: str, username: str, password: str, ip: str) -> httpx.Response:
    return await env.client.post(
        route,
        data={"username": username, "password": password},
        headers={"X-Forwarded-For": ip},
    )


async def test_the_lockout_budget_is_per_account_not_per_login_field(make_env):
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    for i in range(5):  # the username's whole budget, from five addresses
        assert (await attempt(env, "alice", ip=f"10.0.0.{i}")).status_code == 401
    before = env.hasher.verifications
    # The same account under its other login field: no fresh budget. The right password is
    # not evaluated (the one verification is the dummy a wrong password would cost).
    r = await attempt(env, "ALICE@example.com", PASSWORD, ip="10.0.1.2")
    assert r.status_code == 401
    assert env.hasher.verifications == before + 1


LIMITERS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.mark.parametrize("limiter", LIMITERS)
@pytest.mark.parametrize("route", ["/login", "/token"])
async def test_a_fresh_identifier_of_a_locked_account_answers_like_an_unknown_identifier(
    make_env, route, limiter
):
    """Who knows a username must not learn which email is hers from the account budget."""
    fired: list[tuple[str, Any]] = []
    hooks = AuthHooks(
        on_login_failed=lambda _id, **kw: fired.append(("on_login_failed", kw["reason"])),
        on_lockout=lambda _id, **kw: fired.append(("on_lockout", None)),
    )
    env = await locked_carol(make_env, limiter, hooks=hooks)
    answers = []
    for n, name in enumerate(["carol@example.com", "nobody@example.com"]):
        before = env.hasher.verifications
        fired.clear()
        r = await sign_in_at(env, route, name, WRONG, ip=f"192.0.2.{n}")
        assert env.hasher.verifications == before + 1  # the same one verification each
        answers.append((comparable(r), [hook for hook, _ in fired]))
    assert answers[0] == answers[1]
    assert answers[0][0][0] == 401 and answers[0][1] == ["on_login_failed"]
    assert fired == [("on_login_failed", "invalid_credentials")]

    # The right password through a fresh identifier is refused the same way, unevaluated.
    fired.clear()
    known = await sign_in_at(env, route, "carol@example.com", PASSWORD, ip="192.0.2.7")
    assert fired == [("on_login_failed", "account_locked")]  # the app alone is told why
    unknown = await sign_in_at(env, route, "nobody@example.com", PASSWORD, ip="192.0.2.8")
    assert comparable(known) == comparable(unknown)

    # Such refusals count on the identifier as failures do: its own lock comes at the same
    # attempt as an unknown identifier's.
    for i in range(4):
        for name in ("carol@example.com", "nobody@example.com"):
            r = await sign_in_at(env, route, name, WRONG, ip=f"192.0.3.{i}")
            assert r.status_code == (401 if i < 3 else 429), (name, i)

    # Once the account's lock has run out, the right password is evaluated again.
    env.clock.advance(LockoutConfig().lockout_max_seconds + 1)
    r = await sign_in_at(env, route, "carol", PASSWORD, ip="192.0.2.9")
    assert r.status_code == 200, r.text


async def test_a_known_browser_still_signs_in_by_email_while_the_account_is_locked(
    make_env, browser
):
    env = await make_env(transports=[SessionTransport(), BearerTransport()], trusted_proxy_hops=1)
    await register(env.client, "carol", "carol@example.com")
    owner = browser(env)
    assert (await attempt(env, "carol", PASSWORD, ip="192.0.2.10", client=owner)).is_success
    for i in range(5):
        assert (await attempt(env, "carol", ip=f"10.9.0.{i}")).status_code == 401
    r = await attempt(env, "carol@example.com", PASSWORD, ip="192.0.2.10", client=owner)
    assert r.status_code == 200, r.text
    stranger = await attempt(env, "carol@example.com", PASSWORD, ip="198.51.100.3")
    assert stranger.status_code == 401


# -- identifiers across addresses, proxies, IPv6 -----------------------------------------------


async def test_one_guess_each_from_twenty_addresses_trips_the_identifier_lock(make_env):
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    statuses = [(await attempt(env, ip=f"198.51.100.{i}")).status_code for i in range(20)]
    assert statuses == [401] * 5 + [429] * 15
    assert env.hasher.verifications == 5
    assert_locked(await attempt(env, password=PASSWORD, ip="198.51.100.77"))
    assert env.hasher.verifications == 5


@pytest.mark.parametrize("hops", [0, 1])
async def test_a_spoofed_forwarded_for_changes_the_bucket_only_through_a_trusted_proxy(
    make_env, hops
):
    env = await make_env(trusted_proxy_hops=hops)
    # Six different identifiers, six different claimed addresses, one real peer.
    statuses = [(await attempt(env, f"user{i}", ip=f"203.0.113.{i}")).status_code for i in range(6)]
    if hops == 0:
        assert statuses == [401] * 5 + [429]  # the header was ignored: one address bucket
    else:
        assert statuses == [401] * 6  # the proxy vouches for each address


async def test_a_spoofed_entry_left_of_the_trusted_proxy_is_ignored(make_env):
    env = await make_env(trusted_proxy_hops=1)
    statuses = [
        (await attempt(env, f"user{i}", ip=f"203.0.113.{i}, 198.51.100.1")).status_code
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]


async def test_ipv6_addresses_in_one_64_share_a_bucket(make_env, browser):
    env = await make_env()
    statuses = []
    for i in range(1, 7):
        client = browser(env, peer=f"2001:db8:0:7::{i:x}")
        statuses.append((await attempt(env, f"user{i}", client=client)).status_code)
    assert statuses == [401] * 5 + [429]
    neighbour = browser(env, peer="2001:db8:0:8::1")  # the next /64 is someone else
    assert (await attempt(env, "user9", client=neighbour)).status_code == 401


async def test_ipv6_through_a_trusted_proxy_is_bucketed_by_64(make_env):
    env = await make_env(trusted_proxy_hops=1)
    statuses = [
        (await attempt(env, f"user{i}", ip=f"2001:db8:1:2:{i}::{i}")).status_code
        for i in range(1, 7)
    ]
    assert statuses == [401] * 5 + [429]
    assert (await attempt(env, "user9", ip="[2001:db8:1:3::1]:443")).status_code == 401


# -- the device cookie -------------------------------------------------------------------------


async def test_a_known_browser_signs_in_while_an_attacker_holds_the_account_locked(
    make_env, browser
):
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    home = "192.0.2.10"
    owner = browser(env)
    r = await attempt(env, password=PASSWORD, ip=home, client=owner)
    assert r.status_code == 200
    device = [c for c in r.headers.get_list("set-cookie") if c.startswith(f"{DEVICE_COOKIE}=")]
    assert len(device) == 1
    assert "httponly" in device[0].lower()

    # The attacker locks the account from twenty addresses; even the right password waits.
    statuses = [(await attempt(env, ip=f"198.51.100.{i}")).status_code for i in range(20)]
    assert statuses == [401] * 5 + [429] * 15
    assert_locked(await attempt(env, password=PASSWORD, ip="198.51.100.200"))

    # The owner's browser is exempt from the identifier lock...
    r = await attempt(env, password=PASSWORD, ip=home, client=owner)
    assert r.status_code == 200, r.text
    # ... and the attacker is still locked out.
    assert_locked(await attempt(env, password=PASSWORD, ip="198.51.100.201"))

    # The address lock still applies to the known browser.
    neighbour = browser(env)
    for i in range(5):
        assert (await attempt(env, f"x{i}", ip=home, client=neighbour)).status_code == 401
    assert_locked(await attempt(env, "x5", ip=home, client=neighbour))
    assert_locked(await attempt(env, password=PASSWORD, ip=home, client=owner))


async def test_the_device_cookie_is_host_prefixed_when_cookies_are_secure(make_env, browser):
    env = await make_env(cookies=CookieConfig(secure=True))
    await register(env.client)
    r = await attempt(env, password=PASSWORD)
    assert r.status_code == 200
    device = [c for c in r.headers.get_list("set-cookie") if "crudauth_device=" in c]
    assert len(device) == 1
    assert device[0].startswith("__Host-crudauth_device=")
    attributes = {a.strip().lower() for a in device[0].split(";")[1:]}
    assert {"secure", "httponly", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)


async def test_device_cookie_false_issues_none_and_exempts_no_one(make_env):
    env = await make_env(lockout=LockoutConfig(device_cookie=False), trusted_proxy_hops=1)
    await register(env.client)
    r = await attempt(env, password=PASSWORD, ip="192.0.2.10")
    assert r.status_code == 200
    assert not any("crudauth_device" in c for c in r.headers.get_list("set-cookie"))
    await lock_identifier(env, "alice", "198.51.100")
    assert_locked(await attempt(env, password=PASSWORD, ip="192.0.2.10"))


def forged(token: str, subject: str) -> str:
    """A well-formed token for ``subject`` that reuses another token's signature."""
    body, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(s=[subject], e=data["e"] + 10**9)
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + signature


async def test_a_new_epoch_ends_a_device_cookies_exemption_from_the_account_lock(make_env, browser):
    """A browser that had once signed in (or a thief holding its device cookie) must not stay
    exempt from the account lock after a password reset."""
    from sqlalchemy import update

    from tests.conftest import User

    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    home = "192.0.2.10"
    owner = browser(env)
    assert (await attempt(env, password=PASSWORD, ip=home, client=owner)).status_code == 200

    # The account's credentials change (a reset or a password change bumps the epoch).
    async with env.sessionmaker() as db:
        await db.execute(update(User).values(token_version=User.token_version + 1))
        await db.commit()
    await lock_identifier(env, "alice", "198.51.100")
    before = env.hasher.verifications
    assert_locked(await attempt(env, password=PASSWORD, ip=home, client=owner))
    assert env.hasher.verifications == before

    # Signing in again once the lock has passed binds the cookie to the new epoch.
    env.clock.advance(LockoutConfig().lockout_max_seconds + 1)
    assert (await attempt(env, password=PASSWORD, ip=home, client=owner)).status_code == 200
    await lock_identifier(env, "alice", "198.51.101")
    assert (await attempt(env, password=PASSWORD, ip=home, client=owner)).status_code == 200


@pytest.mark.parametrize("kind", ["garbage", "forged", "other_account", "expired"])
async def test_a_forged_or_expired_device_cookie_gives_no_exemption(make_env, browser, kind):
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    await register(env.client, "bob", "bob@example.com")
    home = "192.0.2.10"
    owner = browser(env)
    signed_in_as = "bob" if kind == "other_account" else "alice"
    r = await attempt(env, signed_in_as, PASSWORD, ip=home, client=owner)
    assert r.status_code == 200
    token = owner.cookies[DEVICE_COOKIE]
    if kind == "expired":
        env.clock.advance(LockoutConfig().device_cookie_days * 86400 + 1)

    await lock_identifier(env, "alice", "198.51.100")
    before = env.hasher.verifications
    if kind in ("garbage", "forged"):
        value = (
            "x.y" if kind == "garbage" else forged(token, env.auth.runtime.lockout.subject("alice"))
        )
        r = await attempt(
            env, password=PASSWORD, ip=home, client=browser(env), cookie=f"{DEVICE_COOKIE}={value}"
        )
    else:  # the browser's own, genuine cookie
        r = await attempt(env, password=PASSWORD, ip=home, client=owner)
    assert_locked(r)
    assert env.hasher.verifications == before


# -- the hard cap ------------------------------------------------------------------------------


HARD_CAP = LockoutConfig(max_attempts=2, max_consecutive_failures=4, lockout_max_seconds=120)


async def hard_lock(env: Any) -> None:
    """Four failures with no success in between: the identifier is locked until cleared."""
    assert (await attempt(env, ip="10.0.0.1")).status_code == 401
    assert (await attempt(env, ip="10.0.0.2")).status_code == 401
    assert_locked(await attempt(env, ip="10.0.0.3"), retry_after=60)
    env.clock.advance(60)
    assert (await attempt(env, ip="10.0.0.4")).status_code == 401
    assert (await attempt(env, ip="10.0.0.5")).status_code == 401
    assert_locked(await attempt(env, password=PASSWORD, ip="10.0.0.6"))


async def test_the_consecutive_failure_cap_locks_until_cleared(make_env):
    env = await make_env(lockout=HARD_CAP, trusted_proxy_hops=1)
    await register(env.client)
    await hard_lock(env)
    verified = env.hasher.verifications
    env.clock.advance(600)  # far past any timed lock (lockout_max_seconds=120)
    for i in range(3):
        assert_locked(await attempt(env, password=PASSWORD, ip=f"10.0.1.{i}"))
        env.clock.advance(121)
    assert env.hasher.verifications == verified
    await env.auth.runtime.lockout.clear("alice")
    assert (await attempt(env, password=PASSWORD, ip="10.0.2.1")).status_code == 200


async def test_the_consecutive_failure_cap_outlives_round_retention(make_env):
    env = await make_env(lockout=HARD_CAP, trusted_proxy_hops=1)
    await register(env.client)
    await hard_lock(env)
    env.clock.advance(2 * 86400)  # two days: far past round_retention_seconds (3600)
    assert_locked(await attempt(env, password=PASSWORD, ip="10.0.3.1"))


async def test_a_success_resets_the_consecutive_count(make_env):
    config = LockoutConfig(max_attempts=2, max_consecutive_failures=3)
    env = await make_env(lockout=config, trusted_proxy_hops=1)
    await register(env.client)
    for round_ in range(3):  # 6 failures in all, but never 3 without a success in between
        assert (await attempt(env, ip=f"10.{round_}.0.1")).status_code == 401
        assert (await attempt(env, ip=f"10.{round_}.0.2")).status_code == 401
        env.clock.advance(60)  # a new window: only the consecutive count is left
        r = await attempt(env, password=PASSWORD, ip=f"10.{round_}.0.3")
        assert r.status_code == 200, (round_, r.text)
        env.client.cookies.clear()
        env.clock.advance(60)


# -- hooks -------------------------------------------------------------------------------------


async def test_hooks_get_the_identifier_and_never_the_password(make_env):
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def recorder(name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: calls.append((name, args, kwargs))

    hooks = AuthHooks(on_login_failed=recorder("failed"), on_lockout=recorder("lockout"))
    env = await make_env(hooks=hooks, trusted_proxy_hops=1)
    await register(env.client)
    guess = "hunter2-the-guess"
    for _ in range(5):
        assert (await attempt(env, "Alice", guess, ip="198.51.100.9")).status_code == 401
    assert (await attempt(env, "nobody", guess, ip="198.51.100.10")).status_code == 401
    assert_locked(await attempt(env, "Alice", PASSWORD, ip="198.51.100.9"))

    assert [name for name, _, _ in calls] == ["failed"] * 6 + ["lockout"]
    for _name, args, kwargs in calls[:5]:
        assert args == ("Alice",)
        assert kwargs["reason"] == "invalid_credentials"
        assert kwargs["user"]["username"] == "alice"
        assert kwargs["context"].ip_address == "198.51.100.9"
    assert calls[5][1] == ("nobody",) and calls[5][2]["user"] is None
    _name, args, kwargs = calls[6]
    assert args == ("Alice",)
    assert kwargs["retry_after"] == 60
    for _, args, kwargs in calls:
        text = repr(args) + repr(kwargs) + repr(vars(kwargs["context"]))
        assert guess not in text
        assert PASSWORD not in text


# -- failure policy ----------------------------------------------------------------------------


class LockoutStoreDown(MemoryRateLimiterBackend):
    """Throttles work; the lockout step cannot reach its store."""

    def __init__(self) -> None:
        super().__init__()
        self.reserve_calls = 0

    async def lockout_reserve(
        self, key: str, config: LockoutConfig, now: float, *, hard_cap: bool
    ) -> Reservation:
        self.reserve_calls += 1
        raise StoreUnavailable("lockout store down")


async def test_the_lockout_fails_closed_when_its_store_is_down(make_env):
    backend = LockoutStoreDown()
    env = await make_env(rate_limiter=backend)
    await register(env.client)
    for username in ("alice", "nobody"):
        r = await attempt(env, username, PASSWORD)
        assert r.status_code == 503, r.text
        assert r.headers["x-error-code"] == "store_unavailable"
        assert int(r.headers["retry-after"]) >= 1
        assert "set-cookie" not in r.headers
    assert backend.reserve_calls >= 2
    assert env.hasher.verifications == 0


async def test_the_login_volume_throttle_counts_every_attempt_per_address(make_env):
    env = await make_env(rate_limits={"login_ip": RateLimit(3, 60, fail_open=False)})
    for i in range(3):
        assert (await attempt(env, f"user{i}")).status_code == 401
    r = await attempt(env, "user3")
    assert r.status_code == 429
    assert r.json() == THROTTLED
    assert r.headers["retry-after"] == "20"
    assert env.hasher.verifications == 3


# -- the 0.6 spelling --------------------------------------------------------------------------


async def test_session_transport_login_max_attempts(make_env):
    env = await make_env(transports=[SessionTransport(login_max_attempts=3)])
    await register(env.client)
    for _ in range(3):
        assert (await attempt(env)).status_code == 401
    assert_locked(await attempt(env, password=PASSWORD), retry_after=60)
    assert env.hasher.verifications == 3
    assert env.auth.runtime.lockout.config.max_attempts == 3


async def test_session_transport_login_settings_conflict_with_lockout(make_env):
    with pytest.raises(ConfigurationError):
        await make_env(transports=[SessionTransport(login_max_attempts=3)], lockout=LockoutConfig())


# -- one budget per account, whichever login field names it -----------------------------------


async def test_a_success_clears_the_account_budget(make_env):
    env = await make_env(trusted_proxy_hops=1)
    await register(env.client)
    for i in range(4):
        assert (await attempt(env, "alice@example.com", ip=f"10.0.0.{i}")).status_code == 401
    assert (await attempt(env, "alice", PASSWORD, ip="10.0.2.1")).status_code == 200
    env.client.cookies.clear()
    for i in range(5):  # a full fresh budget after the success
        assert (await attempt(env, "alice", ip=f"10.0.3.{i}")).status_code == 401
