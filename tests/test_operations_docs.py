"""docs/operations.md's example: its audit sink, its log handler and its metrics, over HTTP."""

from __future__ import annotations

import importlib
import io
import json
import logging
import secrets
import sys
from pathlib import Path

import httpx
import pytest
from opentelemetry import metrics


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(36))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    # The example installs the global meter provider, which OpenTelemetry sets once per
    # process: let it, then put the slot back for the tests that follow.
    saved = metrics._internal._METER_PROVIDER, metrics._internal._METER_PROVIDER_SET_ONCE._done
    metrics._internal._METER_PROVIDER_SET_ONCE._done = False
    sys.modules.pop("examples.docs.operations", None)
    module = importlib.import_module("examples.docs.operations")
    yield module
    del sys.modules["examples.docs.operations"]
    logging.getLogger("crudauth.audit").removeHandler(module.handler)
    logging.getLogger("crudauth.audit").propagate = True
    metrics._internal._METER_PROVIDER, metrics._internal._METER_PROVIDER_SET_ONCE._done = saved


async def test_the_operations_example_queues_logs_and_counts_a_sign_in(example):
    stream = io.StringIO()
    example.handler.setStream(stream)
    app = example.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            body = {
                "username": "alice",
                "email": "alice@example.com",
                "password": "correct horse 9",
            }
            assert (await c.post("/register", json=body)).status_code in (200, 201)
            form = {"username": "alice", "password": "correct horse 9"}
            assert (await c.post("/login", data=form)).status_code == 200

    event = example.security_events.get_nowait()
    assert (event.name, event.user_id) == ("signin.succeeded", "1")
    logged = [json.loads(line) for line in stream.getvalue().splitlines() if line]
    assert [record["event"] for record in logged] == ["signin.succeeded"]
    points = [
        (m.name, dict(p.attributes or {}), p.value)
        for rm in example.reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "crudauth.signin.attempts"
        for p in m.data.data_points
    ]
    assert points == [("crudauth.signin.attempts", {"outcome": "succeeded", "reason": "ok"}, 1)]
