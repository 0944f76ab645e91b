"""The one rule for "may this credential still be used by its account?".

A credential (a session record, an access or refresh token, a claims entry) carries the epoch
(``token_version``) its account had when it was issued. A password change, a reset, an email
change and "sign out everywhere" bump the epoch in the same commit as the change itself, so a
credential is good only at the account's current epoch, for an account that exists and is
active.

Two ways of being wrong are told apart, because a caller acts differently on them:

- ``ENDED``: the account is gone or disabled, or the credential is from an older epoch. It can
  never become good again: a transport that keeps state ends it.
- ``AHEAD``: the credential is from a newer epoch than the account row that was read. Either
  the row was read before a credential change committed (a kept session is moved to the new
  epoch right after the commit), or the database was set back (a restored backup). Refused in
  both cases; the caller reads the row again, and a credential still ahead of a fresh read is
  ended: it must not come back to life when the epoch climbs to its number again.
"""

from __future__ import annotations

from enum import Enum


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
