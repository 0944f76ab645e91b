"""``SudoConfig``: how long a re-authentication lasts and how failures are limited."""

from __future__ import annotations

from dataclasses import dataclass, field

from crudauth.errors import ConfigurationError
from crudauth.ratelimit.policy import RateLimit

MAX_WINDOW_SECONDS = 86400.0


@dataclass(frozen=True)
class SudoConfig:
    """Sudo mode: a re-authentication that unlocks sensitive routes for one session.

    - ``window_seconds``: how long a grant lasts (5 minutes, as allauth).
    - ``max_attempts`` failed re-authentications within ``failure_window_seconds`` lock sudo
      for the user for ``lockout_seconds`` and drop every grant the user holds. The failure
      window is its own setting: the reference reused the grant window for it.
    - ``rate_limit``: re-authentication requests per user (10 a minute), or ``None``.
    - ``route``: mount ``POST /sudo`` in ``auth.router``.
    """

    window_seconds: float = 300
    max_attempts: int = 3
    lockout_seconds: float = 900
    failure_window_seconds: float = 900
    rate_limit: RateLimit | None = field(default_factory=lambda: RateLimit(10, 60))
    route: bool = True

    def __post_init__(self) -> None:
        for name in ("window_seconds", "lockout_seconds", "failure_window_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"SudoConfig.{name} must be a number of seconds > 0")
        if self.window_seconds > MAX_WINDOW_SECONDS:
            raise ConfigurationError("SudoConfig.window_seconds must be at most one day")
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ConfigurationError("SudoConfig.max_attempts must be an integer >= 1")
        if self.rate_limit is not None and not isinstance(self.rate_limit, RateLimit):
            raise ConfigurationError("SudoConfig.rate_limit must be a RateLimit or None")
