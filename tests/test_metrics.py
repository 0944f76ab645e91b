"""OpenTelemetry metrics: the instruments and their attributes after a flow, read through the
SDK's in-memory reader; no user id, address or identifier in any attribute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import crudauth
import crudauth.metrics
from crudauth import BearerTransport, SessionTransport
from crudauth.metrics import configure_metrics
from crudauth.ratelimit import redis_rate_limiter
from tests.conftest import REDIS_TEST_URL, login, register

ALLOWED_ATTRIBUTES = {"outcome", "reason", "store", "kind", "operation"}


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    configure_metrics(provider)
    yield reader
    configure_metrics()
    provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Instrument name -> [(attributes, value or histogram count)]."""
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count
                    out.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return out


def total(series: list[tuple[dict[str, Any], Any]], **match: str) -> Any:
    return sum(v for attrs, v in series if all(attrs.get(k) == m for k, m in match.items()))


@pytest.mark.redis
async def test_a_flow_records_sign_ins_lockouts_reuse_hashing_and_store_latency(make_env, reader):
    env = await make_env(
        transports=[SessionTransport(), BearerTransport(refresh="body")],
        redis_url=REDIS_TEST_URL,
    )
    await env.auth.initialize()
    await register(env.client)
    for _ in range(5):
        assert (await login(env.client, password="wrong password!")).status_code == 401
    assert (await login(env.client)).status_code == 429
    env.clock.advance(3600)
    assert (await login(env.client)).status_code == 200
    for _ in range(32):  # session reads: one in 16 is timed
        assert (await env.client.get("/private")).status_code == 200
    r = await env.client.post(
        "/token", data={"username": "alice", "password": "correct horse battery"}
    )
    refresh = r.json()["refresh_token"]
    assert (await env.client.post("/refresh", json={"refresh_token": refresh})).status_code == 200
    assert (await env.client.post("/refresh", json={"refresh_token": refresh})).status_code == 401

    seen = points(reader)
    attempts = seen["crudauth.signin.attempts"]
    assert total(attempts, outcome="failed", reason="invalid_credentials") == 5
    assert total(attempts, outcome="locked_out") == 1
    assert total(attempts, outcome="succeeded") == 2
    assert total(seen["crudauth.lockouts"]) == 1
    assert total(seen["crudauth.refresh.reuse"]) == 1
    hashes = seen["crudauth.password.hash.duration"]
    assert total(hashes, operation="hash") >= 1 and total(hashes, operation="verify") >= 7
    assert total(seen["crudauth.password.hash.queue"]) == 0  # every job left the queue
    assert total(seen["crudauth.store.duration"], store="redis", kind="session") >= 2
    for name, series in seen.items():
        assert name.startswith("crudauth.")
        for attributes, _ in series:
            assert set(attributes) <= ALLOWED_ATTRIBUTES, (name, attributes)


async def test_an_unreachable_store_is_counted_as_a_503_by_store(make_env, reader):
    env = await make_env(rate_limiter=redis_rate_limiter("redis://127.0.0.1:1/0"))
    assert (await login(env.client)).status_code == 503
    assert points(reader)["crudauth.unavailable"] == [({"store": "ratelimit"}, 1)]


async def test_the_sql_store_records_its_latency(make_env, reader):
    from crudauth.storage.database import DatabaseStore

    env = await make_env()
    store = DatabaseStore(env.sessionmaker)
    await store.create_tables()
    await store.kv_store().set("k", "v", 60)
    assert await store.kv_store().get("k") == "v"
    assert total(points(reader)["crudauth.store.duration"], store="sql") >= 2


def test_without_opentelemetry_every_instrument_is_a_no_op(monkeypatch: pytest.MonkeyPatch):
    # FastAPI itself imports opentelemetry in this environment, so the package's absence is
    # simulated where crudauth looks for it.
    monkeypatch.setattr(crudauth.metrics, "_otel", None)
    configure_metrics()
    try:
        assert not crudauth.metrics.enabled()
        metrics = crudauth.metrics.instruments()
        assert all(isinstance(i, crudauth.metrics._NoOp) for i in vars(metrics).values())
        metrics.signin_attempts.add(1, {"outcome": "failed"})
        metrics.hash_duration.record(0.1)
    finally:
        monkeypatch.undo()
        configure_metrics()
