"""Per-action throttles, with the fail-open/fail-closed choice made here and nowhere else."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from crudauth.clock import Clock
from crudauth.errors import RateLimited, StoreUnavailable
from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.lockout import address_subject
from crudauth.ratelimit.policy import Contended, RateLimit, ThrottleResult

logger = logging.getLogger("crudauth")


class Throttles:
    """Counts requests per action and identity against the configured limits."""

    def __init__(
        self, backend: RateLimiterBackend, limits: Mapping[str, RateLimit], clock: Clock
    ) -> None:
        self.backend = backend
        self.limits = dict(limits)
        self.clock = clock
        #: Requests let through because the backend failed under a fail-open policy.
        self.failed_open = 0

    def limit_for(self, action: str) -> RateLimit:
        try:
            return self.limits[action]
        except KeyError:
            raise KeyError(f"no rate limit is configured for action {action!r}") from None

    async def hit_address(
        self, action: str, address: str | None, limit: RateLimit | None = None
    ) -> ThrottleResult | None:
        """``hit`` keyed by a client address: IPv6 by its /64, like the lockout, so rotating
        addresses inside one allocation does not buy a fresh quota."""
        identity = f"ip:{address_subject(address)}" if address else None
        return await self.hit(action, identity, limit)

    async def hit(
        self, action: str, identity: str | None, limit: RateLimit | None = None
    ) -> ThrottleResult | None:
        """Count one request; raise ``RateLimited`` when over. ``None`` when not limited.

        ``identity=None`` (a request with no client address) is not counted: lumping every such
        request into one shared bucket would let one client throttle all the others.
        """
        policy = limit if limit is not None else self.limit_for(action)
        if policy.disabled or identity is None:
            return None
        try:
            result = await self.backend.throttle(f"{action}:{identity}", policy, self.clock.now())
        except (StoreUnavailable, Contended) as exc:
            if not policy.fail_open:
                raise StoreUnavailable(
                    f"rate limit {action!r} unavailable", store="ratelimit"
                ) from None
            self.failed_open += 1
            logger.warning(
                "crudauth: rate limit %r let a request through: backend unavailable (%s); "
                "%d so far",
                action,
                type(exc).__name__,
                self.failed_open,
            )
            return None
        if not result.allowed:
            raise RateLimited(result.retry_after)
        return result
