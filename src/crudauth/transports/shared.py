"""What both transports share, so that neither imports the other.

- **Standing**: the one rule for "may this credential still be used by its account?".
- **Principals**: the ``Principal`` of a user row, the claims snapshot a credential carries
  for ``current_user(load_user=False)``, and the principal read back from that snapshot.
- **Cookies**: every cookie crudauth sets, set and cleared with the configured attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from starlette.responses import Response

from crudauth.config import CookieConfig
from crudauth.identity.repository import AuthRow
from crudauth.principal import Principal
from crudauth.runtime import AuthRuntime

# -- standing ----------------------------------------------------------------------------------

# The one rule for "may this credential still be used by its account?".
#
# A credential (a session record, an access or refresh token, a claims entry) carries the epoch
# (``token_version``) its account had when it was issued. A password change, a reset, an email
# change and "sign out everywhere" bump the epoch in the same commit as the change itself, so a
# credential is good only at the account's current epoch, for an account that exists and is
# active.
#
# Two ways of being wrong are told apart, because a caller acts differently on them:
#
# - ``ENDED``: the account is gone or disabled, or the credential is from an older epoch. It can
#   never become good again: a transport that keeps state ends it.
# - ``AHEAD``: the credential is from a newer epoch than the account row that was read. Either
#   the row was read before a credential change committed (a kept session is moved to the new
#   epoch right after the commit), or the database was set back (a restored backup). Always
#   refused. A session read on the request path is kept (in a race it is current a moment
#   later; a row read early, overlapped with the store read, is read again first); one ahead
#   of ``/csrf/refresh``'s fresh read is ended, so that it cannot come back to life when the
#   epoch climbs to its number again. The bearer claims path reads the account again once.


class Standing(Enum):
    CURRENT = "current"
    ENDED = "ended"
    AHEAD = "ahead"


def standing(active: bool | None, epoch: int, presented: int | None) -> Standing:
    """How a credential issued at epoch ``presented`` stands with an account whose row reads
    ``active`` (``None``: no such account) and ``epoch``.

    ``presented=None`` is a session record written before records carried an epoch: it is
    judged on the account alone (every credential change also deletes the user's sessions).
    """
    if not active:
        return Standing.ENDED
    if presented is None or presented == epoch:
        return Standing.CURRENT
    return Standing.ENDED if presented < epoch else Standing.AHEAD


# -- principals --------------------------------------------------------------------------------


def build_principal(
    runtime: AuthRuntime,
    user: Any,
    transport: str,
    metadata: dict[str, Any],
    scopes: frozenset[str] = frozenset(),
    row: AuthRow | None = None,
) -> Principal:
    """The ``Principal`` for an authenticated ORM user row.

    ``metadata`` becomes the principal's own (pass a fresh dict); ``row`` is the row's
    ``auth_row`` if the caller has read it already.
    """
    if row is None:
        row = runtime.repo.auth_row(user)
    return assemble_principal(
        row.user_id,
        scopes,
        transport,
        user,
        row.is_superuser,
        row.email_verified,
        row.recovery_verified,
        metadata,
    )


_set_dict = object.__setattr__


def assemble_principal(
    user_id: Any,
    scopes: frozenset[str],
    transport: str,
    user: Any,
    is_superuser: bool,
    email_verified: bool,
    recovery_verified: bool,
    metadata: Mapping[str, Any],
) -> Principal:
    """``Principal(...)`` for the request path, with every field given and already typed.

    The frozen dataclass's ``__init__`` sets each of the eight fields through
    ``object.__setattr__`` (about 1 us per request); this sets the instance dict once. The
    result is the same object in every respect (a test compares them field by field and pins
    the field list, so a new field cannot be forgotten here).
    """
    principal = object.__new__(Principal)
    _set_dict(
        principal,
        "__dict__",
        {
            "user_id": user_id,
            "scopes": scopes,
            "transport": transport,
            "user": user,
            "is_superuser": is_superuser,
            "email_verified": email_verified,
            "recovery_verified": recovery_verified,
            "metadata": metadata,
        },
    )
    return principal


def claims_snapshot(principal: Principal) -> dict[str, bool]:
    """The flags ``current_user(load_user=False)`` serves without reading the user row."""
    return {
        "su": principal.is_superuser,
        "ev": principal.email_verified,
        "rv": principal.recovery_verified,
    }


def snapshot_principal(
    user_id: Any,
    transport: str,
    snapshot: Mapping[str, Any],
    metadata: dict[str, Any],
    scopes: frozenset[str] = frozenset(),
) -> Principal:
    """The ``Principal`` of ``current_user(load_user=False)``: the flags from a snapshot
    (``claims_snapshot``'s keys, a missing one read as ``False``), no user row."""
    return assemble_principal(
        user_id,
        scopes,
        transport,
        None,
        bool(snapshot.get("su", False)),
        bool(snapshot.get("ev", False)),
        bool(snapshot.get("rv", False)),
        metadata,
    )


# -- cookies -----------------------------------------------------------------------------------
#
# Every cookie gets the app's ``CookieConfig`` (``Secure``, ``SameSite``, ``Path``; never a
# ``Domain``); clearing repeats the same attributes, or browsers keep the original cookie.


@dataclass(frozen=True)
class CookieWriter:
    """Writes cookies under one ``CookieConfig``; ``path`` overrides the config's path."""

    config: CookieConfig
    path: str | None = None

    def set(
        self,
        response: Response,
        name: str,
        value: str,
        *,
        max_age: int | None,
        http_only: bool = True,
    ) -> None:
        """Set ``name``; ``max_age=None`` makes it a browser-session cookie."""
        config = self.config
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=self.path or config.path,
            secure=config.secure,
            httponly=http_only,
            samesite=config.samesite,
        )

    def clear(self, response: Response, name: str, *, http_only: bool = True) -> None:
        """Expire ``name`` with the attributes it was set with."""
        config = self.config
        response.delete_cookie(
            name,
            path=self.path or config.path,
            secure=config.secure,
            httponly=http_only,
            samesite=config.samesite,
        )
