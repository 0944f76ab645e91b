"""EmailConfig validation, construction-time errors and the open-redirect filter."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import DeclarativeBase

from crudauth import (
    ConfigurationError,
    CRUDAuth,
    EmailConfig,
    IdentityConfig,
    make_auth_identity,
    safe_redirect_path,
)
from tests.conftest import SECRET, User
from tests.email_support import FRONTEND, Outbox


async def _no_db():  # never called: construction only
    yield None


def test_lifetimes_take_seconds_timedelta_or_hours() -> None:
    sender = Outbox()
    config = EmailConfig(sender=sender, frontend_url=FRONTEND, reset_ttl=timedelta(minutes=15))
    assert config.reset_ttl_seconds == 900
    assert config.verify_ttl_seconds == 24 * 3600 and config.change_ttl_seconds == 24 * 3600
    assert EmailConfig(sender=sender, frontend_url=FRONTEND, reset_ttl=90).reset_ttl_seconds == 90
    hours = EmailConfig(sender=sender, frontend_url=FRONTEND, verify_ttl_hours=2)
    assert hours.verify_ttl_seconds == 7200
    for bad in ({"reset_ttl": 0}, {"reset_ttl": 60, "reset_ttl_hours": 1}, {"reset_ttl": "1h"}):
        with pytest.raises(ConfigurationError):
            EmailConfig(sender=sender, frontend_url=FRONTEND, **bad)


def test_frontend_url_is_checked_and_an_empty_one_warns(caplog) -> None:
    sender = Outbox()
    for bad in ("ftp://x.example", "https://x.example/?a=1", "https://u:p@x.example", "x.example"):
        with pytest.raises(ConfigurationError):
            EmailConfig(sender=sender, frontend_url=bad)
    with pytest.raises(ConfigurationError):
        EmailConfig(sender=sender, frontend_url=FRONTEND, reset_path="//evil.example")
    assert EmailConfig(sender=sender, frontend_url=FRONTEND + "/").frontend_url == FRONTEND
    with caplog.at_level(logging.WARNING, logger="crudauth"):
        EmailConfig(sender=sender)
    assert "frontend_url" in caplog.text


def test_recovery_none_or_no_email_column_is_a_configuration_error() -> None:
    config = EmailConfig(sender=Outbox(), frontend_url=FRONTEND)

    class Base(DeclarativeBase):
        pass

    class Named(make_auth_identity(identifiers=["username"], recovery=None, oauth=False), Base):
        __tablename__ = "named_users"

    with pytest.raises(ConfigurationError):
        CRUDAuth(
            session=_no_db,
            user_model=User,
            SECRET_KEY=SECRET,
            identity=IdentityConfig(recovery=None),
            email=config,
            warn_on_memory_backend=False,
        )
    with pytest.raises(ConfigurationError):
        CRUDAuth(
            session=_no_db,
            user_model=Named,
            SECRET_KEY=SECRET,
            identity=IdentityConfig(login=["username"], recovery=None),
            email=config,
            warn_on_memory_backend=False,
        )


def test_routes_are_mounted_only_with_delivery() -> None:
    def paths(auth: CRUDAuth) -> set[str]:
        app = FastAPI()
        app.include_router(auth.router)
        return set(app.openapi()["paths"])

    plain = CRUDAuth(
        session=_no_db, user_model=User, SECRET_KEY=SECRET, warn_on_memory_backend=False
    )
    assert plain.emails is None and "/password/reset-request" not in paths(plain)
    config = EmailConfig(sender=Outbox(), frontend_url=FRONTEND)
    auth = CRUDAuth(
        session=_no_db,
        user_model=User,
        SECRET_KEY=SECRET,
        email=config,
        warn_on_memory_backend=False,
    )
    assert auth.emails is not None
    assert {
        "/email/verify-request",
        "/email/verify-confirm",
        "/password/reset-request",
        "/password/reset-confirm",
        "/email/change-request",
        "/email/change-confirm",
    } <= paths(auth)


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "http://evil.example",
        "https:/evil.example",
        "javascript:alert(1)",
        "evil.example",
        " /path",
        "/path\r\nSet-Cookie: x=1",
        "/a\\b",
        "\t/path",
        "",
        "/" + "a" * 3000,
    ],
)
def test_safe_redirect_path_refuses_anything_off_site(value: str) -> None:
    assert safe_redirect_path(value) is None


@pytest.mark.parametrize("value", ["/", "/dashboard", "/a/b?c=d#e", "/%0d%0a-encoded-is-inert"])
def test_safe_redirect_path_keeps_plain_paths(value: str) -> None:
    assert safe_redirect_path(value) == value
