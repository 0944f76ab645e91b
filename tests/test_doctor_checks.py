"""``crudauth doctor``'s Redis checks against a stand-in server: an evicting policy, clock
skew, an old or unreachable server (the real server is checked in test_cli)."""

from __future__ import annotations

from typing import Any

import pytest

from crudauth.operations.doctor import check_redis

NOW = 1_800_000_000.0


class FakeRedis:
    def __init__(
        self, *, version: str = "7.2.4", policy: str = "noeviction", skew: float = 0.0
    ) -> None:
        self.version, self.policy, self.skew = version, policy, skew
        self.down = False

    async def info(self, section: str) -> dict[str, Any]:
        if self.down:
            raise ConnectionError("refused")
        return {"redis_version": self.version}

    async def time(self) -> tuple[int, int]:
        now = NOW + self.skew
        return int(now), int((now % 1) * 1e6)

    async def config_get(self, name: str) -> dict[str, str]:
        if self.policy == "forbidden":
            raise PermissionError("CONFIG is disabled")
        return {name: self.policy}


async def findings(client: FakeRedis) -> dict[str, tuple[str, str, str]]:
    found = await check_redis(client, wall=lambda: NOW)
    return {f.check: (f.status, f.detail, f.fix) for f in found}


async def test_a_healthy_server_passes():
    found = await findings(FakeRedis())
    assert {status for status, _, _ in found.values()} == {"ok"}
    assert found["redis"][1] == "reachable, version 7.2.4"


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
async def test_an_evicting_policy_is_a_warning_with_its_fix(policy):
    status, detail, fix = (await findings(FakeRedis(policy=policy)))["redis maxmemory-policy"]
    assert status == "warn" and policy in detail and "noeviction" in fix


async def test_a_policy_that_cannot_be_read_is_a_warning():
    status, _, fix = (await findings(FakeRedis(policy="forbidden")))["redis maxmemory-policy"]
    assert status == "warn" and "noeviction" in fix


@pytest.mark.parametrize(("skew", "status"), [(0.2, "ok"), (-5.0, "warn"), (120.0, "fail")])
async def test_clock_skew_between_worker_and_redis(skew, status):
    found = (await findings(FakeRedis(skew=skew)))["clock skew"]
    assert found[0] == status


async def test_an_old_or_unreachable_server_fails():
    assert (await findings(FakeRedis(version="6.2.14")))["redis"][0] == "fail"
    down = FakeRedis()
    down.down = True
    assert (await findings(down))["redis"][:2] == ("fail", "unreachable (ConnectionError)")
