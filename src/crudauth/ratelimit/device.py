"""Signed device tokens: proof that this browser signed in to an identifier before.

The token lists keyed hashes of identifiers (never the identifiers) and carries an expiry; it is
signed under its own purpose key, and every key of the ring verifies it.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass

from crudauth.clock import Clock
from crudauth.keys import KeyRing
from crudauth.tokenshape import TokenShape

DEVICE_PURPOSE = "device-token"
MAX_SUBJECTS = 8
MAX_TOKEN_LENGTH = 1024
#: ``<claims>.<signature>``, as ``issue`` writes it.
TOKEN_SHAPE = TokenShape(max_length=MAX_TOKEN_LENGTH, parts=2)


@dataclass(frozen=True)
class DeviceToken:
    device_id: str
    subjects: tuple[str, ...]
    expires_at: float


class DeviceTokens:
    """Issue and read device tokens."""

    def __init__(self, keys: KeyRing, clock: Clock, lifetime_seconds: float) -> None:
        self.keys = keys
        self.clock = clock
        self.lifetime = lifetime_seconds

    def read(self, token: str | None) -> DeviceToken | None:
        if not TOKEN_SHAPE.check(token):  # a cookie is client text: shape first, then crypto
            return None
        body, signature = token.split(".")
        if not self.keys.matches(DEVICE_PURPOSE, body, signature):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            parsed = DeviceToken(str(data["d"]), tuple(map(str, data["s"])), float(data["e"]))
        except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
            return None
        return parsed if parsed.expires_at > self.clock.now() else None

    def issue(self, current: DeviceToken | None, subject: str) -> str:
        device_id = current.device_id if current else secrets.token_urlsafe(16)
        subjects = [s for s in (current.subjects if current else ()) if s != subject]
        subjects = [subject, *subjects][:MAX_SUBJECTS]
        payload = {"d": device_id, "s": subjects, "e": self.clock.now() + self.lifetime}
        raw = json.dumps(payload, separators=(",", ":")).encode()
        body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"{body}.{self.keys.digest(DEVICE_PURPOSE, body)}"
