"""Redis round trips per password sign-in (session transport): each one is a network round trip
in production, so the count is held here.

A round trip is one write of commands to Redis that waits for their replies: a command on
redis-py's client, a pipeline of several, or a flush of the lane. They are counted where the
bytes leave (redis-py's ``send_packed_command`` and the lane's socket write), after one sign-in
has warmed the connections, so a connection's handshake is not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection

from crudauth import SessionTransport
from crudauth.storage import redis_lane
from tests.conftest import REDIS_TEST_URL, login, register

pytestmark = pytest.mark.redis

#: The budget: the lockout's reserve and release, the session's record and index (with the
#: per-user cap's ranking in the same script), and the throttles.
MAX_ROUND_TRIPS = 8


@contextmanager
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    sent: list[str] = []
    packed = AbstractConnection.send_packed_command
    lane_write = redis_lane._Connection._write

    async def on_client(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(f"client:{_names(command)}")
        await packed(self, command, check_health)

    def on_lane(self: Any, data: bytes | bytearray) -> None:
        sent.append(f"lane:{_names(data)}")
        lane_write(self, data)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", on_client)
    monkeypatch.setattr(redis_lane._Connection, "_write", on_lane)
    yield sent


def _names(command: Any) -> str:
    chunks = command if isinstance(command, list) else [command]
    data = b"".join(bytes(c) if not isinstance(c, str) else c.encode() for c in chunks)
    lines = data.split(b"\r\n")
    names = [lines[i + 2].decode() for i in range(len(lines) - 2) if lines[i].startswith(b"*")]
    return "+".join(names)


@pytest.mark.parametrize("signed_in", [False, True], ids=["fresh", "replacing-a-session"])
async def test_a_password_sign_in_takes_at_most_eight_redis_round_trips(
    make_env: Any, monkeypatch: pytest.MonkeyPatch, signed_in: bool
) -> None:
    """Fresh: the throttle, the lockout's three reservations (address, identifier, account:
    each waits for the one before, a refused one must stop the next), the record and its index
    (one pipeline), the releases (one pipeline): 6. Signing in over a live session first ends
    it (the record, then its index entry): 8."""
    env = await make_env(transports=[SessionTransport()], redis_url=REDIS_TEST_URL)
    assert (await register(env.client)).status_code == 200
    for _ in range(2):  # connections open, every script loaded
        assert (await login(env.client)).status_code == 200
    if not signed_in:
        env.client.cookies.clear()
    with round_trips(monkeypatch) as sent:
        r = await login(env.client)
    assert r.status_code == 200
    assert len(sent) == (8 if signed_in else 6), sent
    assert len(sent) <= MAX_ROUND_TRIPS
