"""Behavioural conformance suites for store backends.

Subclass a suite in your own test module and provide three fixtures, and your backend is held
to exactly the guarantees crudauth's own backends meet::

    class TestMyStore(SessionStoreConformance):
        @pytest.fixture
        def clock(self) -> FrozenClock: ...          # the clock the store was given
        @pytest.fixture
        async def store(self, clock) -> SessionStore: ...
        @pytest.fixture
        def advance(self, clock) -> Advance: ...     # moves time for the store

The suites need ``pytest-asyncio`` (auto mode, or mark the module ``pytest.mark.asyncio``).
"""

from crudauth.testing.ratelimit import RateLimiterConformance
from crudauth.testing.stores import KeyValueStoreConformance, SessionStoreConformance
from crudauth.testing.support import Advance, make_record, new_key

__all__ = [
    "Advance",
    "KeyValueStoreConformance",
    "RateLimiterConformance",
    "SessionStoreConformance",
    "make_record",
    "new_key",
]
