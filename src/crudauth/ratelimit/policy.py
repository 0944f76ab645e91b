"""Lockout and throttle policies, and the pure arithmetic every backend runs.

The arithmetic lives here once. The memory and SQL backends call these functions inside an
atomic compare-and-set; the Redis backend runs the same steps in Lua, and one conformance suite
holds all three to identical answers.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Final, Literal

from crudauth.errors import ConfigurationError
from crudauth.storage.base import KeyValueStore

RateLimitResolver = Callable[[Any, Any], "RateLimit | Awaitable[RateLimit | None] | None"]
"""``(request, principal) -> RateLimit | None``, sync or async: a limit chosen per request."""


class KeyBy(str, enum.Enum):
    """Whom a throttle counts: the client address, the signed-in user, or either."""

    IP = "ip"
    USER = "user"
    USER_OR_IP = "user_or_ip"


@dataclass(frozen=True)
class RateLimit:
    """At most ``times`` requests per ``seconds``; ``times=0`` turns the limit off.

    ``fail_open`` decides what happens when the counter backend is down: ``True`` lets the
    request through (logged and counted), ``False`` refuses it with 503.
    """

    times: int
    seconds: float
    fail_open: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.times, bool) or not isinstance(self.times, int) or self.times < 0:
            raise ConfigurationError("RateLimit.times must be an integer >= 0")
        if not self.seconds > 0:
            raise ConfigurationError("RateLimit.seconds must be > 0")

    @property
    def disabled(self) -> bool:
        return self.times == 0


DEFAULT_RATE_LIMITS: Final[Mapping[str, RateLimit]] = {
    "register": RateLimit(5, 3600),
    "email_verify_request": RateLimit(5, 3600),
    "password_reset_request": RateLimit(5, 3600),
    "email_change_request": RateLimit(3, 3600),
    "existing_account_notice": RateLimit(5, 3600),
    "change_password": RateLimit(5, 3600),
    "logout_all": RateLimit(10, 3600),
    "csrf_refresh": RateLimit(30, 3600),
    "oauth_authorize": RateLimit(30, 3600),
    "oauth_callback": RateLimit(60, 3600),
    "oauth_link_confirm": RateLimit(10, 3600),
    "mfa_manage": RateLimit(10, 3600),
    # Beyond the reference: the token refresh route and raw login volume per address.
    "refresh": RateLimit(60, 60),
    "login_ip": RateLimit(30, 60, fail_open=False),
}
"""The limit of every rate-limited action; ``CRUDAuth(rate_limits=...)`` overrides by name."""


def merge_rate_limits(overrides: Mapping[str, RateLimit | None] | None) -> dict[str, RateLimit]:
    """Defaults with ``overrides`` applied; ``None`` or ``times=0`` disables an action."""
    merged = dict(DEFAULT_RATE_LIMITS)
    for action, limit in (overrides or {}).items():
        if action not in DEFAULT_RATE_LIMITS:
            raise ConfigurationError(
                f"rate_limits: unknown action {action!r} (known: {sorted(DEFAULT_RATE_LIMITS)})"
            )
        if limit is not None and not isinstance(limit, RateLimit):
            raise ConfigurationError(f"rate_limits[{action!r}] must be a RateLimit or None")
        merged[action] = limit if limit is not None else RateLimit(0, 1)
    return merged


@dataclass(frozen=True)
class LockoutConfig:
    """The escalating login lockout.

    After ``max_attempts`` attempts inside ``attempt_window_seconds``, the subject (an address
    or an identifier) is locked for ``lockout_base_seconds * 2**round``, capped at
    ``lockout_max_seconds``; rounds are remembered for ``round_retention_seconds``. After
    ``max_consecutive_failures`` failures with no success in between, the identifier stays
    locked until a password reset or ``clear`` (NIST SP 800-63B: at most 100). That cap holds
    whatever ``max_attempts`` says: a larger ``max_attempts`` is accepted (and warned about
    at startup), and the identifier still locks at the cap.
    """

    max_attempts: int = 5
    attempt_window_seconds: float = 60
    lockout_base_seconds: float = 60
    lockout_max_seconds: float = 3600
    round_retention_seconds: float = 3600
    on_login_success: Literal["clear_all", "clear_user_only"] = "clear_all"
    max_consecutive_failures: int = 100
    device_cookie: bool = True
    device_cookie_days: int = 90

    def __post_init__(self) -> None:
        for name in (
            "max_attempts",
            "attempt_window_seconds",
            "lockout_base_seconds",
            "lockout_max_seconds",
            "round_retention_seconds",
            "max_consecutive_failures",
            "device_cookie_days",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not value > 0:
                raise ConfigurationError(f"LockoutConfig.{name} must be > 0")
        if self.lockout_max_seconds < self.lockout_base_seconds:
            raise ConfigurationError("lockout_max_seconds must be >= lockout_base_seconds")
        if self.on_login_success not in ("clear_all", "clear_user_only"):
            raise ConfigurationError("on_login_success must be 'clear_all' or 'clear_user_only'")


# -- lockout arithmetic -----------------------------------------------------------------------


@dataclass(frozen=True)
class LockState:
    """One subject's lockout state."""

    attempts: int = 0  # reserved in the current window
    window_start: float = 0.0
    locked_until: float = 0.0
    rounds: int = 0
    consecutive: int = 0  # attempts without a success in between (hard cap)

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | None) -> LockState:
        return cls() if raw is None else cls(**json.loads(raw))


@dataclass(frozen=True)
class Reservation:
    """The answer to one attempt: go ahead, or wait ``retry_after`` seconds."""

    allowed: bool
    retry_after: float = 0.0
    hard_locked: bool = False


HARD_LOCK_RETRY: Final = 3600.0
"""What ``Retry-After`` says for an identifier locked until reset (it is not a promise)."""

HARD_LOCK_KEEP: Final = 90 * 86400.0
"""How long a hard-locked identifier's state is kept after its last attempt. Long enough to mean
"until a reset or an admin clears it", bounded so abandoned keys do not live forever."""


def reserve(
    state: LockState, now: float, config: LockoutConfig, *, hard_cap: bool
) -> tuple[LockState, Reservation, float]:
    """Take one attempt slot. Returns the new state, the decision and the state's lifetime."""
    if hard_cap and state.consecutive >= config.max_consecutive_failures:
        return state, Reservation(False, HARD_LOCK_RETRY, hard_locked=True), HARD_LOCK_KEEP
    if state.locked_until > now:
        return state, Reservation(False, state.locked_until - now), state_ttl(state, now, config)
    attempts, start = state.attempts, state.window_start
    if start + config.attempt_window_seconds <= now:
        attempts, start = 0, now
    attempts += 1
    new = replace(state, attempts=attempts, window_start=start, consecutive=state.consecutive + 1)
    if attempts > config.max_attempts:
        lock = min(
            config.lockout_base_seconds * math.pow(2, state.rounds), config.lockout_max_seconds
        )
        new = replace(
            new,
            attempts=0,
            window_start=now,
            locked_until=now + lock,
            rounds=state.rounds + 1,
            consecutive=state.consecutive,  # the refused attempt was never evaluated
        )
        return new, Reservation(False, lock), state_ttl(new, now, config)
    if hard_cap and new.consecutive >= config.max_consecutive_failures:
        return new, Reservation(True), HARD_LOCK_KEEP  # the last slot: the hard lock must stay
    return new, Reservation(True), state_ttl(new, now, config)


def release(state: LockState) -> LockState:
    """Give back one slot (a correct password, on a subject that is not cleared)."""
    return replace(
        state, attempts=max(0, state.attempts - 1), consecutive=max(0, state.consecutive - 1)
    )


def state_ttl(state: LockState, now: float, config: LockoutConfig) -> float:
    """How long a subject's state must be kept."""
    # Rounds are remembered for round_retention_seconds *after* the last lock ends, so an
    # attacker who waits out a capped lock comes back to the capped lock, not to the start.
    return max(
        config.round_retention_seconds + max(0.0, state.locked_until - now),
        state.window_start + config.attempt_window_seconds - now,
        1.0,
    )


# -- throttle arithmetic (GCRA) ---------------------------------------------------------------

_EPSILON: Final = 1e-4


@dataclass(frozen=True)
class ThrottleResult:
    """One request against a ``RateLimit``."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float


def throttle(
    theoretical_arrival: float | None, now: float, limit: RateLimit
) -> tuple[float, ThrottleResult]:
    """The generic cell rate algorithm: exactly ``times`` in any ``seconds`` window, with no
    burst of twice the limit at a window boundary. Returns the new arrival time to store."""
    interval = limit.seconds / limit.times
    tat = max(theoretical_arrival or now, now)
    new_tat = tat + interval
    allowed_at = new_tat - limit.seconds
    if allowed_at > now + _EPSILON:  # stored times are rounded to microseconds
        result = ThrottleResult(False, limit.times, 0, allowed_at - now, tat - now)
        return tat, result
    remaining = math.floor((limit.seconds - (new_tat - now) + _EPSILON) / interval)
    return new_tat, ThrottleResult(True, limit.times, remaining, 0.0, new_tat - now)


# -- compare-and-set backends ------------------------------------------------------------

# Lockout and throttle steps over any ``KeyValueStore``, made atomic by compare-and-set.
#
# The memory and SQL limiters use this; Redis runs the same arithmetic in Lua instead.
_ATTEMPTS = 100


class Contended(RuntimeError):
    """Compare-and-set kept losing; treated like an unavailable backend by the caller."""


async def _swap(store: KeyValueStore, key: str, old: str | None, new: str, ttl: float) -> bool:
    if old is None:
        return await store.set_if_absent(key, new, ttl)
    return await store.compare_and_set(key, old, new, ttl)


async def cas_reserve(
    store: KeyValueStore, key: str, config: LockoutConfig, now: float, *, hard_cap: bool
) -> Reservation:
    for _ in range(_ATTEMPTS):
        raw = await store.get(key)
        state = LockState.loads(raw)
        new, decision, ttl = reserve(state, now, config, hard_cap=hard_cap)
        if new == state and not decision.hard_locked:
            return decision  # refused by an existing lock: nothing to write
        if await _swap(store, key, raw, new.dumps(), ttl):
            return decision
    raise Contended(key)


async def cas_release(
    store: KeyValueStore, key: str, config: LockoutConfig, now: float, *, clear: bool
) -> None:
    if clear:
        await store.delete(key)
        return
    for _ in range(_ATTEMPTS):
        raw = await store.get(key)
        if raw is None:
            return
        new = release(LockState.loads(raw))
        if await store.compare_and_set(key, raw, new.dumps(), state_ttl(new, now, config)):
            return
    raise Contended(key)


async def cas_throttle(
    store: KeyValueStore, key: str, limit: RateLimit, now: float
) -> ThrottleResult:
    for _ in range(_ATTEMPTS):
        raw = await store.get(key)
        tat, result = throttle(float(raw) if raw is not None else None, now, limit)
        if not result.allowed:
            return result
        if await _swap(store, key, raw, repr(tat), max(tat - now, 0.001)):
            return result
    raise Contended(key)
