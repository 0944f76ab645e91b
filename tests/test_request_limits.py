"""Request bodies and fields over what crudauth accepts are refused before any work."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from crudauth import BearerTransport, SessionTransport
from crudauth.http.request import MAX_BODY_BYTES
from tests.conftest import AppFactory, login, register

pytestmark = pytest.mark.asyncio


async def _chunks(total: int, size: int = 8192) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"a" * piece


async def test_an_oversized_sign_in_form_is_refused_before_the_password_check(
    make_env: AppFactory,
) -> None:
    env = await make_env()
    await register(env.client)
    padding = "x" * MAX_BODY_BYTES
    r = await env.client.post(
        "/login", data={"username": "alice", "password": "wrong", "pad": padding}
    )
    assert r.status_code == 413, r.text
    assert r.headers["x-error-code"] == "request_too_large"
    assert env.hasher.verifications == 0


async def test_an_oversized_body_without_a_length_is_refused_while_it_streams(
    make_env: AppFactory,
) -> None:
    env = await make_env()
    r = await env.client.post(
        "/register",
        content=_chunks(MAX_BODY_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert "content-length" not in r.request.headers


async def test_a_body_at_the_limit_is_parsed(make_env: AppFactory) -> None:
    env = await make_env()
    body = {"username": "alice", "email": "alice@example.com", "password": "correct horse x"}
    raw = json.dumps(body).encode()
    raw = raw[:-1] + b", " + b'"pad": "' + b"x" * (MAX_BODY_BYTES - len(raw) - 11) + b'"}'
    assert len(raw) == MAX_BODY_BYTES
    r = await env.client.post(
        "/register", content=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 200, r.text


async def test_the_limit_applies_to_crudauth_routes_only(make_env: AppFactory) -> None:
    env = await make_env()

    @env.app.post("/upload")
    async def upload(body: dict[str, Any]) -> dict[str, int]:
        return {"size": len(body["data"])}

    r = await env.client.post("/upload", json={"data": "x" * (2 * MAX_BODY_BYTES)})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("content_type", [None, "text/plain"])
async def test_a_body_that_is_not_text_is_a_422(
    make_env: AppFactory, content_type: str | None
) -> None:
    env = await make_env()
    headers = {"Content-Type": content_type} if content_type else {}
    r = await env.client.post("/register", content=b"\x80\xff{", headers=headers)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    ("field", "size"),
    [("username", 321), ("password", 4097), ("scope", 1025), ("client_secret", 1025)],
)
async def test_an_oversized_sign_in_field_is_a_422_before_the_password_check(
    make_env: AppFactory, field: str, size: int
) -> None:
    env = await make_env()
    form = {"username": "alice", "password": "correct horse battery", field: "a" * size}
    r = await env.client.post("/login", data=form)
    assert r.status_code == 422, r.text
    assert env.hasher.verifications == 0


async def test_a_sign_in_field_at_its_limit_is_checked_as_usual(make_env: AppFactory) -> None:
    env = await make_env()
    await register(env.client)
    r = await login(env.client, password="a" * 4096)
    assert r.status_code == 401, r.text


@pytest.mark.parametrize(("field", "size"), [("username", 321), ("password", 4097)])
async def test_an_oversized_registration_field_is_a_422(
    make_env: AppFactory, field: str, size: int
) -> None:
    env = await make_env()
    body = {"username": "alice", "email": "alice@example.com", "password": "correct horse b"}
    body[field] = "a" * size
    r = await env.client.post("/register", json=body)
    assert r.status_code == 422, r.text
    assert env.hasher.hashes == 0


async def test_an_oversized_refresh_token_in_the_body_is_a_422(make_env: AppFactory) -> None:
    env = await make_env(transports=[SessionTransport(), BearerTransport(refresh="body")])
    r = await env.client.post("/refresh", json={"refresh_token": "a" * 8193})
    assert r.status_code == 422, r.text
