"""Schemathesis over the OpenAPI schema of an app that mounts every crudauth router.

Each operation gets schema-valid and schema-violating cases (Schemathesis's positive and
negative modes), sent signed out, as a signed-in browser (session cookies and the CSRF header)
and with a bearer token, so the protected routes are exercised past their 401. The assertion is
Schemathesis's ``not_a_server_error`` check: no response with a status of 500 or more.

FastAPI's schema declares no OpenAPI links, so there is no stateful sequence to follow; the
state comes from a fresh sign-in before each signed-in case instead. The examples are
derandomized (the same cases on every run) and bounded; ``CRUDAUTH_FUZZ_EXAMPLES`` raises the
count for a release run (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tests.fuzz_support import BASE_URL, EXAMPLES, FuzzApp, fuzz_app, fuzz_settings

#: Per operation; 20 operations, so the default run stays well under two minutes.
PER_OPERATION = max(10, EXAMPLES // 3)


@pytest.fixture(scope="module")
def fuzz() -> Iterator[FuzzApp]:
    with fuzz_app() as app:
        yield app


def _httpx_options(kwargs: dict[str, Any], credentials: dict[str, str]) -> dict[str, Any]:
    """Schemathesis's request (in ``requests`` terms) as httpx keyword arguments."""
    headers = {k: v for k, v in kwargs.get("headers", {}).items() if not k.startswith("X-Schema")}
    cookies = kwargs.get("cookies") or {}
    if cookies:
        jar = "; ".join(f"{k}={v}" for k, v in cookies.items())
        credentials = {
            **credentials,
            "Cookie": "; ".join(filter(None, [credentials.get("Cookie"), jar])),
        }
    headers.update(credentials)
    options: dict[str, Any] = {"headers": headers, "params": kwargs.get("params") or {}}
    if "json" in kwargs:
        options["json"] = kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, (bytes, str)):
        options["content"] = data
    elif data is not None:
        options["data"] = data
    return options


def test_no_operation_answers_a_server_error(fuzz: FuzzApp) -> None:
    schema = schemathesis.openapi.from_dict(fuzz.app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19  # every router is mounted
    failures: list[str] = []
    for operation in operations:
        try:
            _fuzz_operation(fuzz, operation)
        except Exception as exc:  # collected, so one run reports every failing operation
            failures.append(f"{operation.method.upper()} {operation.path}: {exc!r}"[:2000])
    assert not failures, "\n\n".join(failures)


def _fuzz_operation(fuzz: FuzzApp, operation: Any) -> None:
    modes = [operation.as_strategy(generation_mode=mode) for mode in schemathesis.GenerationMode]

    @fuzz_settings(examples=PER_OPERATION)
    @given(case=st.one_of(modes), via=st.sampled_from(["anonymous", "session", "bearer"]))
    def run(case: Any, via: str) -> None:
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        options = _httpx_options(kwargs, fuzz.credentials(via))
        response: httpx.Response = fuzz.send(kwargs["method"], kwargs["url"], **options)
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code < 500, response.text

    run()
