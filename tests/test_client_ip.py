"""Which address is the client's: hops, CIDR allowlists, X-Forwarded-For and Forwarded."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from crudauth.errors import ConfigurationError
from crudauth.http.request import ProxyConfig, client_ip


def request(peer: str | None, **headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "headers": raw, "client": (peer, 1234) if peer else None}
    return Request(scope)


LB = ProxyConfig.build(0, ["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("config", "peer", "headers", "expected"),
    [
        (ProxyConfig(), "192.0.2.1", {"x_forwarded_for": "203.0.113.5"}, "192.0.2.1"),
        (
            ProxyConfig(hops=1),
            "10.0.0.1",
            {"x_forwarded_for": "6.6.6.6, 203.0.113.5"},
            "203.0.113.5",
        ),
        (ProxyConfig(hops=1), "10.0.0.1", {"x_forwarded_for": "unknown"}, "10.0.0.1"),
        (ProxyConfig(hops=1), "10.0.0.1", {"x_forwarded_for": "x" * 5000}, "10.0.0.1"),
        (ProxyConfig(hops=1), None, {}, None),
        # CIDR: the header counts only when the peer is one of our proxies...
        (LB, "192.0.2.9", {"x_forwarded_for": "203.0.113.5"}, "192.0.2.9"),
        # ...and is walked from the right past every trusted hop.
        (LB, "10.0.0.1", {"x_forwarded_for": "6.6.6.6, 203.0.113.5, 10.1.1.1"}, "203.0.113.5"),
        (LB, "10.0.0.1", {"x_forwarded_for": "10.2.2.2, 10.1.1.1"}, "10.2.2.2"),
        (LB, "10.0.0.1", {"x_forwarded_for": "203.0.113.5, junk, 10.1.1.1"}, "10.1.1.1"),
        (LB, "fd00::1", {"x_forwarded_for": "2001:db8::7"}, "2001:db8::7"),
        # RFC 7239 Forwarded, only when asked for; X-Forwarded-For is then ignored.
        (
            ProxyConfig.build(1, None, "forwarded"),
            "10.0.0.1",
            {
                "forwarded": 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https',
                "x_forwarded_for": "198.51.100.1",
            },
            "2001:db8:cafe::17",
        ),
        (
            ProxyConfig.build(1, None),
            "10.0.0.1",
            {"forwarded": "for=6.6.6.6", "x_forwarded_for": "198.51.100.1"},
            "198.51.100.1",
        ),
        (
            ProxyConfig.build(1, None, "forwarded"),
            "10.0.0.1",
            {"forwarded": "for=_hidden"},
            "10.0.0.1",
        ),
    ],
)
def test_client_ip(config, peer, headers, expected):
    assert client_ip(request(peer, **headers), config) == expected


@pytest.mark.parametrize(
    ("hops", "trusted", "header"),
    [
        (-1, None, "x-forwarded-for"),
        (0, ["*"], "x-forwarded-for"),
        (0, ["0.0.0.0/0"], "x-forwarded-for"),
        (0, ["not-a-network"], "x-forwarded-for"),
        (1, ["10.0.0.0/8"], "x-forwarded-for"),
        (1, None, "x-real-ip"),
    ],
)
def test_unsafe_proxy_settings_are_refused(hops, trusted, header):
    with pytest.raises(ConfigurationError):
        ProxyConfig.build(hops, trusted, header)


async def test_trusted_proxies_reach_the_lockout(make_env):
    """Addresses behind a trusted proxy are told apart; the proxy's own address is not the
    client's (otherwise every user behind it would share one lockout bucket)."""
    env = await make_env(trusted_proxies=["127.0.0.0/8"])
    await env.client.post(
        "/register",
        json={"username": "alice", "email": "a@example.com", "password": "correct horse battery"},
    )
    for i in range(8):  # 8 addresses x 1 failure: no address reaches its threshold
        r = await env.client.post(
            "/login",
            data={"username": f"nobody{i}", "password": "wrong password!"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        )
        assert r.status_code == 401


async def test_authenticate_password_shares_the_lockout(make_env):
    env = await make_env()
    await env.client.post(
        "/register",
        json={"username": "alice", "email": "a@example.com", "password": "correct horse battery"},
    )
    from crudauth.exceptions import RateLimitException, UnauthorizedException

    async with env.sessionmaker() as db:
        for _ in range(5):
            with pytest.raises(UnauthorizedException):
                await env.auth.authenticate_password(db, "alice", "wrong password!")
        before = env.hasher.verifications
        with pytest.raises(RateLimitException):
            await env.auth.authenticate_password(db, "alice", "correct horse battery")
        assert env.hasher.verifications == before
