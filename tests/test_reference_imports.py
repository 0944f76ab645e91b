"""Code written for the reference library imports and runs: its module paths and helpers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import DeclarativeBase
from starlette.requests import Request


def request_from(peer: str | None, forwarded_for: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for else []
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": headers,
        "client": (peer, 1234) if peer else None,
    }
    return Request(scope)


def test_the_model_mixin_imports_from_crudauth_models() -> None:
    from crudauth.models import AuthUserMixin

    class Base(DeclarativeBase):
        pass

    class User(AuthUserMixin, Base):
        __tablename__ = "reference_users"

    columns = set(sa_inspect(User).columns.keys())
    assert {"id", "email", "username", "hashed_password", "token_version"} <= columns


def test_make_auth_identity_imports_from_crudauth_models() -> None:
    from crudauth.models import make_auth_identity

    class Base(DeclarativeBase):
        pass

    UsernameOnly = make_auth_identity(identifiers=["username"], recovery=None, oauth=False)

    class Account(UsernameOnly, Base):  # type: ignore[misc, valid-type]
        __tablename__ = "reference_accounts"

    columns = set(sa_inspect(Account).columns.keys())
    assert "username" in columns and "email" not in columns


def test_password_helpers_import_from_crudauth_utils() -> None:
    from crudauth.utils import (
        dummy_verify_password,
        get_password_hash,
        is_unusable_password,
        make_unusable_password,
        verify_password,
    )

    hashed = get_password_hash("correct horse battery")
    assert verify_password("correct horse battery", hashed)
    assert not verify_password("wrong horse battery", hashed)
    unusable = make_unusable_password()
    assert is_unusable_password(unusable) and not is_unusable_password(hashed)
    assert not verify_password("", unusable)
    assert dummy_verify_password("correct horse battery") is False


def test_dummy_verify_password_costs_a_real_verification() -> None:
    from crudauth.passwords import default_hasher
    from crudauth.utils import dummy_verify_password

    hasher = default_hasher()
    seen: list[str] = []
    original = hasher._verify_argon

    def spy(password: str, hashed: str) -> Any:
        seen.append(hashed)
        return original(password, hashed)

    hasher._verify_argon = spy  # type: ignore[method-assign]
    try:
        dummy_verify_password("anything at all")
    finally:
        del hasher._verify_argon
    assert len(seen) == 1 and seen[0].startswith("$argon2id$")


def test_identifier_helpers_import_from_crudauth_utils() -> None:
    from crudauth.utils import canonical_email, canonical_identifier, mask_email

    assert canonical_email("  Alice@Example.COM ") == "alice@example.com"
    assert canonical_identifier(" \uff21LICE ") == "alice"  # NFKC, then case-folded
    assert mask_email("alice@example.com") == "a***@example.com"
    assert mask_email("a@example.com") == "a***@example.com"  # the length is not told
    assert mask_email("not-an-address") == "n***"
    assert mask_email("") == "***"


def test_get_client_ip_imports_from_crudauth_utils() -> None:
    from crudauth.utils import get_client_ip

    assert get_client_ip(request_from("203.0.113.7")) == "203.0.113.7"
    spoofed = request_from("10.0.0.1", forwarded_for="198.51.100.1")
    assert get_client_ip(spoofed) == "10.0.0.1"  # no trusted proxy: the header is ignored
    assert get_client_ip(spoofed, 1) == "198.51.100.1"
    assert get_client_ip(request_from(None)) == "unknown"
