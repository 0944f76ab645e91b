"""Wrong codes count against the sign-in lockout: one budget with the password.

A code is a guess at a 10^6 space with three valid answers at a time, so it is metered like a
password: a slot is reserved on the same lockout subjects *before* the code is checked (N
parallel guesses on any number of workers evaluate at most what the lockout allows), a wrong
code keeps its slot, and only a sign-in that stands clears them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from crudauth.ratelimit.lockout import LoginLockout

logger = logging.getLogger("crudauth")


async def reserve(lockout: LoginLockout, keys: Sequence[tuple[str, bool]]) -> list[str]:
    """Take a slot on every ``(key, hard_cap)`` or raise ``LockedOut`` having kept none."""
    return await lockout.reserve_all(keys, "second-factor code")


async def give_back(lockout: LoginLockout, keys: Sequence[str], *, clear: bool) -> None:
    """After a right code: forget the subjects (``clear``) or return the slot taken."""
    now = lockout.clock.now()
    for key in keys:
        await lockout.backend.lockout_release(key, lockout.config, now, clear=clear)


def account_key(lockout: LoginLockout, user_id: object) -> str:
    """The account's own lockout subject, the one its password attempts count against."""
    return f"login:acct:{lockout.account_subject(user_id)}"
