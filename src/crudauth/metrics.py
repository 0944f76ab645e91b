"""OpenTelemetry metrics through ``opentelemetry-api`` (``pip install crudauth[otel]``).

Without the package every instrument is a no-op. With it, the instruments come from the global
meter provider (or the one given to ``configure_metrics``): until the application installs an
SDK they cost one attribute check per call. Attribute sets are fixed and small: no user ids,
no addresses, no identifiers.

| Instrument | Kind | Attributes |
|---|---|---|
| ``crudauth.signin.attempts`` | counter | ``outcome`` (succeeded, failed, locked_out), ``reason`` |
| ``crudauth.lockouts`` | counter | none |
| ``crudauth.refresh.reuse`` | counter | none |
| ``crudauth.unavailable`` | counter | ``store`` (redis, sql, ratelimit, database) |
| ``crudauth.password.hash.duration`` | histogram (s) | ``operation`` (hash, verify) |
| ``crudauth.password.hash.queue`` | up-down counter | none |
| ``crudauth.store.duration`` | histogram (s) | ``store`` (redis, sql), ``kind`` |
| ``crudauth.audit.sink_failures`` | counter | none |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_otel: Any
try:
    from opentelemetry import metrics as _otel
except ImportError:  # the ``otel`` extra is not installed
    _otel = None

METER_NAME = "crudauth"


class _NoOp:
    """What every instrument is without ``opentelemetry-api``."""

    def add(self, amount: float, attributes: Any = None) -> None:
        return None

    def record(self, amount: float, attributes: Any = None) -> None:
        return None


@dataclass(frozen=True)
class Instruments:
    signin_attempts: Any
    lockouts: Any
    refresh_reuse: Any
    unavailable: Any
    hash_duration: Any
    hash_queue: Any
    store_duration: Any
    audit_sink_failures: Any


def _build(meter_provider: Any = None) -> Instruments:
    if _otel is None:
        noop = _NoOp()
        return Instruments(noop, noop, noop, noop, noop, noop, noop, noop)
    if meter_provider is None:
        meter = _otel.get_meter(METER_NAME)
    else:
        meter = meter_provider.get_meter(METER_NAME)
    return Instruments(
        signin_attempts=meter.create_counter(
            "crudauth.signin.attempts", unit="{attempt}", description="Sign-ins by outcome"
        ),
        lockouts=meter.create_counter(
            "crudauth.lockouts", unit="{attempt}", description="Sign-ins refused by a lock"
        ),
        refresh_reuse=meter.create_counter(
            "crudauth.refresh.reuse",
            unit="{token}",
            description="Spent refresh tokens presented again (family revoked)",
        ),
        unavailable=meter.create_counter(
            "crudauth.unavailable", unit="{response}", description="503 answers by store"
        ),
        hash_duration=meter.create_histogram(
            "crudauth.password.hash.duration",
            unit="s",
            description="Time to hash or verify one password on the hashing pool",
        ),
        hash_queue=meter.create_up_down_counter(
            "crudauth.password.hash.queue",
            unit="{job}",
            description="Password hashes waiting for a hashing-pool thread",
        ),
        store_duration=meter.create_histogram(
            "crudauth.store.duration", unit="s", description="Latency of state-store calls"
        ),
        audit_sink_failures=meter.create_counter(
            "crudauth.audit.sink_failures",
            unit="{event}",
            description="Audit events a sink failed on or dropped",
        ),
    )


_instruments = _build()


def instruments() -> Instruments:
    """The instruments every part of crudauth records to."""
    return _instruments


def configure_metrics(meter_provider: Any = None) -> None:
    """Record crudauth's metrics through ``meter_provider`` (``None``: the global provider).

    Only needed when the application keeps its provider out of the global slot."""
    global _instruments
    _instruments = _build(meter_provider)


def enabled() -> bool:
    """Whether ``opentelemetry-api`` is installed."""
    return _otel is not None
