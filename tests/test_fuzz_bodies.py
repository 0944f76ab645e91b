"""The form and JSON bodies of every route, fuzzed, signed out and signed in: never a 5xx.

The routes and their field names come from the app's own OpenAPI schema, so a route added
later is fuzzed without touching this file. Bodies are any JSON, objects with the route's own
field names holding hostile values, and raw bytes under a wrong or missing content type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz_support import (
    EXAMPLES,
    PASSWORD,
    FuzzApp,
    assert_no_server_error,
    fuzz_app,
    fuzz_settings,
)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    content_type: str | None
    fields: tuple[str, ...]


def operations(fuzz: FuzzApp) -> list[Operation]:
    spec = fuzz.app.openapi()
    schemas = spec["components"]["schemas"]
    found = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            content = op.get("requestBody", {}).get("content", {})
            content_type = next(iter(content), None)
            fields: tuple[str, ...] = ()
            if content_type is not None:
                ref = content[content_type]["schema"].get("$ref", "")
                body = schemas.get(ref.rsplit("/", 1)[-1], {})
                fields = tuple(body.get("properties", {}))
            found.append(Operation(method.upper(), path, content_type, fields))
    return found


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.sampled_from([10**400, 1e308, -0.0])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50)
    | st.text(min_size=300, max_size=5000)
    | st.sampled_from(["alice", "alice@example.com", PASSWORD, "", " ", "é.abc", "\x00"])
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FORM_VALUES = (
    st.text(max_size=200)
    | st.text(min_size=1000, max_size=5000)
    | st.sampled_from(["alice", PASSWORD, "true", "false", "on", "", "\x00", "é"])
)


@st.composite
def json_body(draw: st.DrawFn, op: Operation) -> bytes:
    if op.fields and draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(op.fields), unique=True))
        value: Any = {name: draw(JSON) for name in chosen}
    else:
        value = draw(JSON)
    return json.dumps(value).encode()


@st.composite
def form_body(draw: st.DrawFn, op: Operation) -> dict[str, str]:
    names = st.text(min_size=1, max_size=10)
    if op.fields:
        names = st.sampled_from(op.fields) | names
    return draw(st.dictionaries(names, FORM_VALUES, max_size=8))


@st.composite
def request_for(draw: st.DrawFn, op: Operation) -> dict[str, Any]:
    """The keyword arguments of one request to ``op``."""
    kind = draw(st.sampled_from(["json", "form", "raw"]))
    options: dict[str, Any] = {}
    if kind == "json":
        options["content"] = draw(json_body(op))
        options["headers"] = {"Content-Type": "application/json"}
    elif kind == "form":
        options["data"] = draw(form_body(op))
    else:
        options["content"] = draw(st.binary(max_size=2000))
        content_type = draw(st.sampled_from(["", "text/plain", "application/json; charset=x"]))
        options["headers"] = {"Content-Type": content_type} if content_type else {}
    params = {}
    if op.path == "/logout-all":
        params["keep_current"] = draw(FORM_VALUES)
    options["params"] = params
    return options


def _path(op: Operation, handle: str) -> str:
    return op.path.replace("{session_handle}", quote(handle, safe=""))


@pytest.fixture(scope="module")
def fuzz() -> Iterator[FuzzApp]:
    with fuzz_app() as app:
        yield app


HANDLES = st.text(max_size=40) | st.from_regex(r"[0-9a-f]{32}", fullmatch=True)


@fuzz_settings(examples=EXAMPLES * 2)
@given(data=st.data(), handle=HANDLES)
def test_any_body_signed_out_is_no_server_error(fuzz: FuzzApp, data: Any, handle: str) -> None:
    op = data.draw(st.sampled_from(operations(fuzz)), label="operation")
    options = data.draw(request_for(op), label="request")
    response = fuzz.send(op.method, _path(op, handle), **options)
    assert_no_server_error(response)
    if op.path in ("/login", "/token"):
        assert response.status_code != 200, response.text


@fuzz_settings(examples=EXAMPLES * 2)
@given(data=st.data(), handle=HANDLES, via=st.sampled_from(["session", "bearer"]))
def test_any_body_signed_in_is_no_server_error(
    fuzz: FuzzApp, data: Any, handle: str, via: str
) -> None:
    op = data.draw(st.sampled_from(operations(fuzz)), label="operation")
    options = data.draw(request_for(op), label="request")
    # A fresh sign-in each time: an example that signs out must not blunt the next one.
    headers = {**options.pop("headers", {}), **fuzz.credentials(via)}
    response = fuzz.send(op.method, _path(op, handle), headers=headers, **options)
    assert_no_server_error(response)
