"""The request path's shortcuts give exactly what the plain forms give.

Each shortcut here replaced a slower, obviously-correct form on the path every authenticated
request takes (see docs/performance.md); these tests hold each to that form.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from typing import Any

import pytest
from sqlalchemy import Boolean, Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from starlette.requests import Request

from crudauth import AuthUserMixin, BearerTransport, Principal, SessionTransport
from crudauth.errors import ConfigurationError
from crudauth.http.request import raw_header, request_cookie
from crudauth.identity.config import IdentityConfig
from crudauth.identity.repository import AuthRow, UserRepository
from crudauth.keys import KeyRing, Purpose
from crudauth.transports.shared import assemble_principal
from tests.bearer_support import get_tokens, sign_up
from tests.conftest import login, register

# -- Principal ----------------------------------------------------------------------------------


def test_assembled_principal_is_the_dataclass_in_every_respect() -> None:
    values: dict[str, Any] = {
        "user_id": 7,
        "scopes": frozenset({"read"}),
        "transport": "bearer",
        "user": "row",
        "is_superuser": True,
        "email_verified": False,
        "recovery_verified": True,
        "metadata": {"jti": "x"},
    }
    # A field added to Principal must be added to assemble_principal too.
    assert [f.name for f in dataclasses.fields(Principal)] == list(values)
    fast = assemble_principal(*values.values())
    plain = Principal(**values)
    assert type(fast) is Principal
    assert fast == plain
    assert hash(fast.scopes) == hash(plain.scopes)
    assert repr(fast) == repr(plain)
    assert dataclasses.asdict(fast) == dataclasses.asdict(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.user_id = 8  # type: ignore[misc]
    assert dataclasses.replace(fast, user_id=8).user_id == 8


# -- reading the user row --------------------------------------------------------------------------


class _Base(DeclarativeBase):
    pass


class _FullUser(AuthUserMixin, _Base):
    __tablename__ = "request_path_full_users"


class _BareUser(_Base):
    """No is_active, is_superuser, email_verified or token_version column."""

    __tablename__ = "request_path_bare_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))


class _RenamedUser(_Base):
    __tablename__ = "request_path_renamed_users"
    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    pw: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)


def _full_user(**overrides: Any) -> _FullUser:
    fields: dict[str, Any] = {
        "id": 3,
        "email": "a@example.com",
        "username": "a",
        "username_key": "a",
        "hashed_password": "x",
        "is_active": True,
        "is_superuser": True,
        "email_verified": True,
        "token_version": 4,
    }
    return _FullUser(**{**fields, **overrides})


def test_auth_row_reads_what_value_reads() -> None:
    repo = UserRepository(_FullUser)
    user = _full_user()
    row = repo.auth_row(user)
    assert row == AuthRow(3, True, 4, True, True, True)
    for name in ("is_active", "token_version", "is_superuser", "email_verified"):
        assert getattr(row, name) == repo.value(user, name)


def test_auth_row_normalises_null_columns() -> None:
    row = UserRepository(_FullUser).auth_row(_full_user(token_version=None, is_superuser=None))
    assert row.token_version == 0
    assert row.is_superuser is False


def test_auth_row_of_a_transient_row_with_unset_columns() -> None:
    # Unset columns are not in the instance dict: the ORM attribute answers (None).
    row = UserRepository(_FullUser).auth_row(_FullUser(id=5, email="b@example.com"))
    assert row == AuthRow(5, False, 0, False, False, False)


def test_auth_row_defaults_for_columns_the_model_does_not_have() -> None:
    repo = UserRepository(_BareUser, IdentityConfig(login=("email",)))
    row = repo.auth_row(_BareUser(id=9, email="c@example.com"))
    assert row == AuthRow(9, True, 0, False, False, False)


def test_auth_row_follows_the_column_map() -> None:
    repo = UserRepository(
        _RenamedUser,
        IdentityConfig(login=("email",)),
        column_map={
            "id": "pk",
            "hashed_password": "pw",
            "is_active": "enabled",
            "token_version": "epoch",
            "is_superuser": "admin",
        },
    )
    user = _RenamedUser(pk=2, email="d@example.com", pw="x", enabled=False, epoch=6, admin=True)
    assert repo.auth_row(user) == AuthRow(2, False, 6, True, False, False)


def test_auth_row_loads_an_expired_column_through_the_orm() -> None:
    """Regression guard for the instance-dict shortcut: a column missing from the dict (expired
    after a commit, or deferred) must be loaded, never read as a default."""
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    repo = UserRepository(_FullUser)
    with Session(engine) as db:
        db.add(_full_user(token_version=1))
        db.commit()  # expires every attribute
        user = db.get(_FullUser, 3)
        assert user is not None
        db.execute(_FullUser.__table__.update().values(token_version=2, is_active=False))
        db.expire(user, ["token_version", "is_active"])
        assert "token_version" not in user.__dict__
        row = repo.auth_row(user)
    assert row.token_version == 2
    assert row.is_active is False
    engine.dispose()


def test_auth_row_respects_a_subclass_property_over_a_column() -> None:
    """Regression guard for the instance-dict shortcut: a subclass of the model may shadow a
    column with a property (say, an account that expires); the property decides."""

    class _Shadowed(_FullUser):
        @property  # type: ignore[override]
        def is_superuser(self) -> bool:
            return True

    user = _Shadowed(id=4, email="e@example.com", username="e", username_key="e")
    user.__dict__["is_superuser"] = False  # what the column holds
    assert UserRepository(_FullUser).auth_row(user).is_superuser is True


# -- headers ---------------------------------------------------------------------------------------


def _request(*headers: tuple[bytes, bytes]) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": list(headers)})


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"host", b"x")],
        [(b"authorization", b"Bearer a")],
        [(b"authorization", b"Bearer first"), (b"authorization", b"Bearer second")],
        [(b"x-authorization", b"no"), (b"authorization", b"Basic \xe9t\xe9")],
    ],
)
def test_raw_header_answers_like_starlette_headers(headers: list[tuple[bytes, bytes]]) -> None:
    request = _request(*headers)
    expected = request.headers.get("authorization")
    found = raw_header(request.scope, b"authorization")
    assert (found.decode("latin-1") if found is not None else None) == expected


def test_headers_given_as_any_iterable_are_read_and_kept() -> None:
    scope: dict[str, Any] = {
        "type": "http",
        "headers": iter([(b"cookie", b"session_id=abc"), (b"authorization", b"Bearer x")]),
    }
    assert request_cookie(scope, "session_id") == "abc"
    assert raw_header(scope, b"authorization") == b"Bearer x"
    assert Request(scope).headers.get("authorization") == "Bearer x"


@pytest.mark.parametrize("name", ["", "a b", "semi;colon", 'quote"', "comma,", 7])
def test_session_cookie_names_must_be_cookie_names(name: Any) -> None:
    with pytest.raises(ConfigurationError):
        SessionTransport(cookie_name=name)
    with pytest.raises(ConfigurationError):
        SessionTransport(csrf_cookie_name=name)


async def test_a_bearer_request_does_not_parse_cookies(make_env: Any) -> None:
    """With no Cookie header the session transport answers "no credential" at once."""
    env = await make_env()
    session = next(t for t in env.auth.transports if t.name == "session")
    request = _request((b"authorization", b"Bearer x"))
    assert await session.authenticate(request, None) is None
    assert "_cookies" not in request.__dict__


async def test_a_session_cookie_still_authenticates_beside_other_headers(make_env: Any) -> None:
    env = await make_env()
    assert (await register(env.client)).status_code in (200, 201)
    assert (await login(env.client)).status_code == 200
    r = await env.client.get("/private", headers={"X-Other": "1", "Authorization": "Basic eA=="})
    assert r.status_code == 200
    assert r.json()["via"] == "session"


COOKIE_HEADERS = [
    "",
    "session_id=abc",
    "session_id=abc; csrf_token=def",
    "  session_id = abc ;other=1",
    "session_id=; other=x",
    "session_ids=no; xsession_id=no",
    "novalue; session_id=abc",
    "session_id=a=b=c",
    'session_id="quoted\\"value"; x=1',
    'session_id="abc"',
    "session_id=\xe9t\xe9",
    ";;;",
    "=abc; session_id=z",
]


@pytest.mark.parametrize("header", COOKIE_HEADERS)
def test_request_cookie_answers_like_starlette(header: str) -> None:
    request = _request((b"cookie", header.encode("latin-1")))
    for name in ("session_id", "csrf_token", "other"):
        assert request_cookie(request.scope, name) == request.cookies.get(name), (header, name)


def test_request_cookie_reads_every_cookie_header_like_starlette() -> None:
    request = _request((b"cookie", b"session_id=one"), (b"cookie", b"csrf_token=two"))
    for name in ("session_id", "csrf_token"):
        assert request_cookie(request.scope, name) == request.cookies.get(name)
    assert request_cookie(_request().scope, "session_id") is None


@pytest.mark.parametrize(
    "headers",
    [
        [b"session_id=first; session_id=second"],  # Starlette keeps the last one
        [b'session_id="first"; session_id=second'],
        [b"session_id=same; other=1; session_id=same"],
        [b"session_id=one", b"session_id=two"],
        [b"session_id=; session_id=two"],
    ],
)
def test_request_cookie_reads_a_name_sent_twice_as_absent(headers: list[bytes]) -> None:
    request = _request(*((b"cookie", header) for header in headers))
    assert request_cookie(request.scope, "session_id") is None
    assert request_cookie(request.scope, "other") == request.cookies.get("other")


# -- bearer memo -----------------------------------------------------------------------------------


async def test_a_memoised_token_is_refused_at_the_expiry_boundary(make_env: Any) -> None:
    env = await make_env(transports=[BearerTransport(refresh="body", access_ttl=60)])
    await sign_up(env.client)
    headers = {"Authorization": f"Bearer {(await get_tokens(env.client))['access_token']}"}
    assert (await env.client.get("/private", headers=headers)).status_code == 200
    leeway = env.auth.transports[0].leeway
    env.clock.advance(60 + leeway - 0.5)
    assert (await env.client.get("/private", headers=headers)).status_code == 200  # memoised
    env.clock.advance(0.5)
    assert (await env.client.get("/private", headers=headers)).status_code == 401


async def test_a_memoised_token_is_refused_when_the_clock_steps_back(make_env: Any) -> None:
    """``iat`` is checked on every presentation, not only the first (a clock stepped back)."""
    env = await make_env(transports=[BearerTransport(refresh="body")])
    await sign_up(env.client)
    headers = {"Authorization": f"Bearer {(await get_tokens(env.client))['access_token']}"}
    assert (await env.client.get("/private", headers=headers)).status_code == 200
    leeway = env.auth.transports[0].leeway
    start = env.clock.now()
    env.clock.set(start - leeway)
    assert (await env.client.get("/private", headers=headers)).status_code == 200
    env.clock.set(start - leeway - 1)
    assert (await env.client.get("/private", headers=headers)).status_code == 401


def test_a_grant_refuses_exactly_what_check_times_refuses() -> None:
    """The memo's two comparisons are ``check_times``'s, term for term (random floats, fixed
    seed: fractional times and leeways where a reordered sum would round differently)."""
    import random

    from crudauth.errors import InvalidToken
    from crudauth.transports.bearer.access import AccessGrant
    from crudauth.transports.bearer.tokens import check_times

    rng = random.Random(7)
    # (iat, leeway, now) where ``iat > now + leeway`` and ``iat - leeway > now`` disagree
    boundary = [
        (19.817403483677637, 4.494910647887381, 15.322492835790255),
        (17.815487762192056, 7.215400323407826, 10.600087438784229),
    ]
    for case in range(20_000 + len(boundary)):
        if case < len(boundary):
            iat, leeway, now = boundary[case]
        else:
            iat, leeway, now = rng.uniform(0, 40), rng.uniform(0, 10), rng.uniform(0, 60)
        claims: dict[str, Any] = {
            "sub": "1",
            "ver": 0,
            "scopes": [],
            "jti": "j",
            "iat": iat,
            "exp": iat + rng.uniform(0, 20),
        }
        if case >= len(boundary) and rng.random() < 0.5:
            claims["nbf"] = iat + rng.uniform(-5, 5)
        grant = AccessGrant(claims, frozenset(), leeway)
        try:
            check_times(claims, now, leeway)
            expected = True
        except InvalidToken:
            expected = False
        assert grant.current(now) is expected, (claims, leeway, now)


async def test_memoised_grants_are_not_shared_with_the_caller(make_env: Any) -> None:
    """Each request gets its own metadata dict: changing one principal's never leaks."""
    env = await make_env(transports=[BearerTransport(refresh="body")])
    await sign_up(env.client)
    token = (await get_tokens(env.client))["access_token"]
    bearer = env.auth.transports[0]
    grant = bearer.access.read(_request((b"authorization", f"Bearer {token}".encode())))
    first = grant.metadata()
    first["jti"] = "changed"
    assert grant.metadata()["jti"] != "changed"
    again = bearer.access.read(_request((b"authorization", f"Bearer {token}".encode())))
    assert again is grant


# -- keyed digests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["", "session-id", "é unicode", b"\x00bytes", "x" * 10_000, b"y" * 65]
)
def test_keyed_digest_is_hmac_sha256_for_any_value(value: str | bytes) -> None:
    ring = KeyRing("a-test-secret-that-is-long-enough-0123456789abcdef")
    raw = value.encode() if isinstance(value, str) else value
    for purpose in (Purpose.SESSION_ID, Purpose.CSRF):
        key = ring.key(purpose)
        expected = hmac.new(key, raw, hashlib.sha256).hexdigest()
        # twice: the precomputed pad states must not absorb a previous value
        assert ring.digest(purpose, value) == expected
        assert ring.digest(purpose, value) == expected


def test_keyed_digest_pads_follow_rfc_2104_for_long_keys() -> None:
    from crudauth.keys import _pads

    for key in (b"k" * 32, b"k" * 64, b"k" * 100):
        inner, outer = (state.copy() for state in _pads(key))
        inner.update(b"message")
        outer.update(inner.digest())
        assert outer.hexdigest() == hmac.new(key, b"message", hashlib.sha256).hexdigest()


# -- the session store's hot command -------------------------------------------------------------


async def test_the_pre_encoded_load_command_is_what_evalsha_sends() -> None:
    from redis.asyncio import Redis

    from crudauth.storage import redis as redis_store
    from tests.conftest import REDIS_TEST_URL

    store = redis_store.RedisSessionStore(Redis.from_url(REDIS_TEST_URL), namespace="rp:")
    try:
        assert store.lane is not None
        for now, slide in ((1795883596.0350058, 60.0), (2.5, 180.0), (1e9, 60.0)):
            expected = store.lane._evalsha_payload(
                redis_store._LOAD.sha, 1, (store._key("k" * 64), repr(now), slide)
            )
            assert store._load_command(store._key("k" * 64), now, slide) == expected
    finally:
        await store.close()


@pytest.mark.parametrize(
    "reply",
    [None, b"", 0, b"not json", b"[]", b"[1,2]", b'["a"]', b"{}", "[null]"],
)
def test_a_malformed_load_reply_reads_as_no_session(reply: Any) -> None:
    from crudauth.storage.redis import _decode_loaded

    assert _decode_loaded(reply) is None


def test_a_load_reply_decodes_in_field_order() -> None:
    from crudauth.storage.base import SessionRecord
    from crudauth.storage.redis import _decode_loaded

    record = SessionRecord("7", "h", "c", 1.0, 2.0, 1800.0, 9.0, 3, True, None, "ua", {"k": 1})
    reply = "[" + ",".join(json.dumps(v) for v in record.to_dict().values()) + "]"
    assert _decode_loaded(reply.encode()) == record
    assert _decode_loaded(reply) == record  # a client that decodes replies to str
