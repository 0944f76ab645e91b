"""Throttles and hand-over shared by every request flow.

The silent per-target limits live here: they are keyed by a keyed hash of the value the client
typed (never a raw address, never whether it has an account), and being over one only means
nothing is sent; the answer does not change and no header mentions it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from crudauth.email.delivery import DeliveryChannel, DeliveryIntent
from crudauth.errors import RateLimited, StoreUnavailable
from crudauth.identity.identifiers import canonical_email
from crudauth.keys import Purpose
from crudauth.runtime import AuthRuntime

logger = logging.getLogger("crudauth")

Job = Callable[[], Awaitable[None]]
Defer = Callable[[Job], Any]
"""Takes a delivery job and runs it later (the routes pass ``BackgroundTasks.add_task``), so
that how long a mail server takes never shows in a response time."""


class Dispatcher:
    """Counts requests and hands messages to the channels."""

    def __init__(self, runtime: AuthRuntime, channels: Sequence[DeliveryChannel]) -> None:
        self.runtime = runtime
        self.channels = tuple(channels)

    async def throttle_address(self, action: str, client_ip: str | None) -> None:
        """The public per-address limit (429 when over)."""
        await self.runtime.throttles.hit_address(action, client_ip)

    async def target_allowed(self, action: str, value: str) -> bool:
        """The silent per-target limit: ``False`` when over it, or when it cannot be counted.

        This limit is what keeps a mailbox from being flooded, so it fails closed whatever the
        action's ``fail_open`` says (that setting still governs the per-address limit): with
        the counter store unreachable or too slow, nothing is sent, and the answer, which never
        says whether anything was sent, stays the same.
        """
        key = canonical_email(value)  # trims and lower-cases; harmless for phone numbers
        digest = self.runtime.keys.digest(Purpose.RECOVERY_TARGET, key)[:32]
        throttles = self.runtime.throttles
        strict = replace(throttles.limit_for(action), fail_open=False)
        try:
            await throttles.hit(action, f"target:{digest}", strict)
        except RateLimited:
            return False
        except StoreUnavailable:
            logger.warning("crudauth: %s: nothing sent, per-target limit unavailable", action)
            return False
        return True

    async def hand_over(
        self,
        intent: DeliveryIntent,
        db: Any,
        *,
        real: bool,
        email_only: bool = False,
        defer: Defer | None = None,
    ) -> None:
        """Deliver ``intent`` on every channel (``real``), or only rehearse it.

        A channel that raises is logged and skipped; the others still run.
        """
        channels = [c for c in self.channels if c.sends_email or not email_only]

        async def job() -> None:
            for channel in channels:
                try:
                    if real:
                        await channel.deliver(intent, db)
                    else:
                        channel.rehearse(intent)
                except Exception:
                    # Never part of the answer (that would tell who has an account). The
                    # message itself is not logged: it holds a live link.
                    logger.exception(
                        "crudauth: delivery channel %s failed for a %s message",
                        type(channel).__name__,
                        intent.kind.value,
                    )

        if defer is None:
            await job()
            return
        result = defer(job)
        if inspect.isawaitable(result):
            await result
