"""Audit events (``AuditEvent``, the ``Events`` catalogue) and ``AuditLog``, which hands each
event to its sinks without ever holding up or failing a request.

A sink is a callable taking an ``AuditEvent``, plain or ``async``. The JSON logging sink
(logger ``crudauth.audit``, level INFO) is always first; silence it through ``logging``. A
plain sink runs inline and must be quick (a queue put, a counter); an ``async`` sink runs as a
background task, at most ``MAX_PENDING`` at once (beyond that its events are dropped, counted
and logged). A sink that raises is logged on ``crudauth`` and counted; the request goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

from crudauth.clock import Clock, SystemClock
from crudauth.hooks import HookContext
from crudauth.identity.identifiers import escape_identifier
from crudauth.metrics import instruments

# -- the event ---------------------------------------------------------------------------

# The audit event: what happened, to whom, from where; never a secret.
#
# An event carries the user id (when known), the identifier as typed but escaped
# (``escape_identifier``), the client address and user agent, the request id, a reason code and
# a few counters. It never carries a password, a hash, a token or a code: emitters pass only the
# fields below, and ``details`` takes plain numbers, booleans and short code words.
#: The longest text kept in a free-text field (user agent, request id); longer is cut.
MAX_FIELD = 256

Detail = str | int | float | bool | None


class Events:
    """The catalogue of the events crudauth emits (``AuditEvent.name``)."""

    SIGNIN_SUCCEEDED: Final = "signin.succeeded"
    SIGNIN_FAILED: Final = "signin.failed"
    LOCKOUT_ENGAGED: Final = "lockout.engaged"
    LOCKOUT_CLEARED: Final = "lockout.cleared"
    SIGNOUT: Final = "signout"
    SESSION_REVOKED: Final = "session.revoked"
    REFRESH_REUSE_DETECTED: Final = "refresh.reuse_detected"
    PASSWORD_CHANGED: Final = "password.changed"  # noqa: S105 - an event name
    PASSWORD_SET: Final = "password.set"  # noqa: S105 - an event name, not a secret
    PASSWORD_RESET: Final = "password.reset"  # noqa: S105 - an event name, not a secret
    EMAIL_CHANGE_REQUESTED: Final = "email.change_requested"
    EMAIL_CHANGE_CONFIRMED: Final = "email.change_confirmed"
    EMAIL_VERIFIED: Final = "email.verified"
    SUDO_GRANTED: Final = "sudo.granted"
    MFA_ENABLED: Final = "mfa.enabled"
    MFA_DISABLED: Final = "mfa.disabled"
    MFA_RECOVERY_CODE_USED: Final = "mfa.recovery_code_used"
    OAUTH_LINKED: Final = "oauth.linked"
    OAUTH_UNLINKED: Final = "oauth.unlinked"


@dataclass(frozen=True)
class AuditEvent:
    """One security-relevant moment."""

    name: str
    time: datetime
    user_id: str | None = None
    #: The identifier as typed, escaped: printable, one line, bounded.
    identifier: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    #: The transport involved (``session``, ``bearer``), when one is.
    transport: str | None = None
    #: A stable code word: why a sign-in failed, why sessions were revoked.
    reason: str | None = None
    #: Who caused it: ``user`` (the account's owner, signed in), ``admin`` (the application's
    #: own code or the ``crudauth`` command), ``system`` (crudauth itself, e.g. a detected reuse).
    actor: str | None = None
    details: Mapping[str, Detail] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping; ``time`` in ISO 8601 (UTC)."""
        return {
            "event": self.name,
            "time": self.time.isoformat(),
            "user_id": self.user_id,
            "identifier": self.identifier,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            "transport": self.transport,
            "reason": self.reason,
            "actor": self.actor,
            "details": dict(self.details),
        }


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


# -- the log -----------------------------------------------------------------------------

audit_logger = logging.getLogger("crudauth.audit")
logger = logging.getLogger("crudauth")

AuditSink = Callable[[AuditEvent], Any]

#: Async sink calls in flight before new ones are dropped (a stuck sink must not grow memory).
MAX_PENDING = 1000
#: The request header a request id is read from.
REQUEST_ID_HEADER = "x-request-id"


def log_sink(event: AuditEvent) -> None:
    """The default sink: one JSON object per line on ``crudauth.audit`` (INFO)."""
    if audit_logger.isEnabledFor(logging.INFO):
        payload = event.to_dict()
        audit_logger.info(json.dumps(payload, sort_keys=True), extra={"audit": payload})


def _bounded(value: object) -> str | None:
    if value is None:
        return None
    return escape_identifier(str(value))[:MAX_FIELD]


def _request_id(request: Any) -> str | None:
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    return _bounded(headers.get(REQUEST_ID_HEADER))


class AuditLog:
    """The sinks of one ``CRUDAuth``; ``emit`` is synchronous and never raises."""

    def __init__(self, sinks: Iterable[AuditSink] = (), clock: Clock | None = None) -> None:
        extra = list(sinks)
        for sink in extra:
            if not callable(sink):
                raise TypeError("audit sinks must be callables taking an AuditEvent")
        self.sinks: tuple[AuditSink, ...] = (log_sink, *extra)
        self.clock = clock or SystemClock()
        #: Sink calls that raised or were dropped.
        self.failures = 0
        self._pending: set[asyncio.Task[Any]] = set()

    def emit(
        self,
        name: str,
        context: HookContext | None = None,
        *,
        user_id: object = None,
        identifier: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
        transport: str | None = None,
        details: Mapping[str, Detail] | None = None,
    ) -> AuditEvent:
        """Build the event ``name`` and hand it to every sink."""
        context = context or HookContext()
        event = AuditEvent(
            name=name,
            time=utc(self.clock.now()),
            user_id=None if user_id is None else str(user_id),
            identifier=None if identifier is None else escape_identifier(identifier),
            client_ip=context.ip_address,
            user_agent=_bounded(context.user_agent),
            request_id=_request_id(context.request),
            transport=transport or context.transport,
            reason=reason,
            actor=actor,
            details=dict(details or {}),
        )
        for sink in self.sinks:
            self._deliver(sink, event)
        return event

    def _deliver(self, sink: AuditSink, event: AuditEvent) -> None:
        try:
            result = sink(event)
            if inspect.isawaitable(result):
                self._schedule(sink, result)
        except Exception:
            self._failed(sink, "raised")

    def _schedule(self, sink: AuditSink, awaitable: Any) -> None:
        if len(self._pending) >= MAX_PENDING:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            self._failed(sink, "dropped: too many events in flight")
            return
        task = asyncio.ensure_future(self._run(sink, awaitable))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _run(self, sink: AuditSink, awaitable: Any) -> None:
        try:
            await awaitable
        except Exception:
            self._failed(sink, "raised")

    def _failed(self, sink: AuditSink, what: str) -> None:
        self.failures += 1
        instruments().audit_sink_failures.add(1)
        logger.warning(
            "crudauth: audit sink %s %s (%d failures so far)",
            getattr(sink, "__qualname__", type(sink).__name__),
            what,
            self.failures,
            exc_info=what == "raised",
        )

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout`` seconds) for the async sinks' events in flight."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            await asyncio.wait(set(self._pending), timeout=deadline - time.monotonic())


def build_audit_log(audit: AuditSink | Iterable[AuditSink] | None, clock: Clock) -> AuditLog:
    """``CRUDAuth(audit=...)``: one sink, several, or none (the logging sink alone)."""
    if audit is None:
        return AuditLog(clock=clock)
    if callable(audit):
        return AuditLog([audit], clock)
    return AuditLog(audit, clock)
