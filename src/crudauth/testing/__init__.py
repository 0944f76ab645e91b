"""Test helpers for applications and third-party backends."""

from crudauth.clock import FrozenClock
from crudauth.testing.conformance import (
    Advance,
    KeyValueStoreConformance,
    RateLimiterConformance,
    SessionStoreConformance,
    make_record,
    new_key,
)

__all__ = [
    "Advance",
    "FrozenClock",
    "KeyValueStoreConformance",
    "RateLimiterConformance",
    "SessionStoreConformance",
    "make_record",
    "new_key",
]
