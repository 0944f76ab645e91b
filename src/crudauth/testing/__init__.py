"""Test helpers for applications and third-party backends."""

from crudauth.clock import FrozenClock
from crudauth.testing.conformance import (
    Advance,
    KeyValueStoreConformance,
    SessionStoreConformance,
    make_record,
    new_key,
)

__all__ = [
    "Advance",
    "FrozenClock",
    "KeyValueStoreConformance",
    "SessionStoreConformance",
    "make_record",
    "new_key",
]
