"""The audit event: what happened, to whom, from where; never a secret.

An event carries the user id (when known), the identifier as typed but escaped
(``escape_identifier``), the client address and user agent, the request id, a reason code and
a few counters. It never carries a password, a hash, a token or a code: emitters pass only the
fields below, and ``details`` takes plain numbers, booleans and short code words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

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
