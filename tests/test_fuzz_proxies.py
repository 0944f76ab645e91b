"""``X-Forwarded-For`` and ``Forwarded``, fuzzed: the client address is always an address.

The parser is pure, so most examples run against ``client_ip`` directly (cheap, many of them);
a smaller set goes through the app's sign-in and recovery routes, where the address keys the
lockout and the throttles.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from crudauth.http.request import ProxyConfig, client_ip
from tests.fuzz_support import EXAMPLES, FuzzApp, assert_anonymous, fuzz_app, fuzz_settings

_ADDRESSES = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]:{443}"),
    st.ip_addresses(v=4).map(lambda a: f"{a}:8080"),
    st.sampled_from(["unknown", "_hidden", "", " ", '"', "[", "[::1", "::1]", "1.2.3.4:", ":"]),
    st.text(max_size=70),
)
_SEPARATORS = st.sampled_from([",", ", ", ";", " ; ", ",,", "=", ";for="])


@st.composite
def forwarding_value(draw: st.DrawFn) -> str:
    """A header value built from address-like pieces, separators and junk."""
    parts = draw(st.lists(_ADDRESSES, max_size=40))
    out = ""
    for part in parts:
        prefix = draw(st.sampled_from(["", "for=", 'for="', "For=", "by=", "proto=https;for="]))
        out += prefix + part + draw(_SEPARATORS)
    return out


HEADER_VALUES = forwarding_value() | st.text(max_size=400)


def _request(peer: str | None, header: str, values: list[str]) -> Request:
    headers = [(header.encode(), v.encode("utf-8", "surrogateescape")) for v in values]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": headers,
        "client": (peer, 1234) if peer is not None else None,
    }
    return Request(scope)


def _is_address(value: str | None) -> bool:
    if value is None:
        return True
    ipaddress.ip_address(value)
    return True


@fuzz_settings(examples=EXAMPLES * 5)
@given(
    values=st.lists(HEADER_VALUES, max_size=3),
    header=st.sampled_from(["x-forwarded-for", "forwarded"]),
    hops=st.integers(min_value=0, max_value=4),
    peer=st.one_of(st.none(), st.ip_addresses().map(str), st.text(max_size=20)),
)
def test_any_forwarding_header_gives_an_address_or_none(
    values: list[str], header: str, hops: int, peer: str | None
) -> None:
    config = ProxyConfig.build(hops, None, header)
    found = client_ip(_request(peer, header, values), config)
    assert _is_address(found)
    if hops == 0:
        expected_peer = client_ip(_request(peer, header, []), config)
        assert found == expected_peer  # with no trusted proxy the header is never read


@fuzz_settings(examples=EXAMPLES * 5)
@given(
    values=st.lists(HEADER_VALUES, max_size=3),
    header=st.sampled_from(["x-forwarded-for", "forwarded"]),
    peer=st.sampled_from(["10.0.0.7", "192.0.2.1", "fd00::1"]),
)
def test_trusted_networks_never_yield_a_trusted_proxy_or_junk(
    values: list[str], header: str, peer: str
) -> None:
    config = ProxyConfig.build(0, ["10.0.0.0/8", "fd00::/8"], header)
    found = client_ip(_request(peer, header, values), config)
    assert _is_address(found)
    if peer == "192.0.2.1":
        assert found == peer  # a client that is not our proxy cannot choose its address


@pytest.fixture(scope="module")
def fuzz() -> Iterator[FuzzApp]:
    with fuzz_app() as app:
        yield app


@fuzz_settings()
@given(
    xff=HEADER_VALUES,
    forwarded=HEADER_VALUES,
    path=st.sampled_from(["/login", "/token", "/password/reset-request", "/me"]),
)
def test_any_forwarding_header_on_the_routes_is_no_server_error(
    fuzz: FuzzApp, xff: str, forwarded: str, path: str
) -> None:
    headers = {
        "X-Forwarded-For": xff.replace("\r", "").replace("\n", "").encode(),
        "Forwarded": forwarded.replace("\r", "").replace("\n", "").encode(),
    }
    if path == "/me":
        response = fuzz.send("GET", path, headers=headers)
    elif path == "/password/reset-request":
        response = fuzz.send("POST", path, headers=headers, json={"email": "bob@example.com"})
        assert response.status_code == 200, response.text
        return
    else:
        form = {"username": "alice", "password": "not the password"}
        response = fuzz.send("POST", path, headers=headers, data=form)
    assert_anonymous(response)
