"""Recovery tokens: signed, purpose-bound, state-bound, short-lived and single-use.

A token is ``<claims>.<signature>``: URL-safe base64 of a small JSON object, then an HMAC under
the key ring's key for that purpose (the newest secret signs, every secret verifies). A verify
token can therefore never pass as a reset token, and rotating ``SECRET_KEY`` breaks no link.

Three further locks, each with its own job:

- **State binding.** The claims carry a keyed fingerprint of what the token may change
  (password hash, recovery value or email, ``token_version``). Once any of it changes, the
  token is dead, even if every other check would pass.
- **One live token per user and purpose.** Minting writes ``live:<digest of nonce>`` to the
  store under the user's key; a newer token overwrites it, so an older link stops working. The
  store never holds the token itself.
- **Single use, burned only if the change commits.** The flow prepares its database write,
  then consumes the record with one atomic compare-and-set (``live:...`` to ``used:...``); of
  any number of concurrent redeemers on any number of workers exactly one wins. Then it
  commits. If the commit fails, the record is set back to ``live:...`` so the link still
  works; a crash between the two steps leaves a burned token and an unchanged account, and the
  user asks for a new link (never the reverse: a changed account with a reusable token).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

from crudauth.clock import Clock
from crudauth.errors import InvalidRecoveryToken
from crudauth.keys import KeyRing, Purpose, TokenShape
from crudauth.storage.base import KeyValueStore

TokenPurpose = Literal["verify_email", "reset_password", "change_email"]

_KEY_LABELS: Final[dict[str, str]] = {
    "verify_email": Purpose.EMAIL_VERIFY_TOKEN,
    "reset_password": Purpose.PASSWORD_RESET_TOKEN,
    "change_email": Purpose.EMAIL_CHANGE_TOKEN,
}
MAX_TOKEN_LENGTH: Final = 2048
#: ``<claims>.<signature>``, as ``issue`` writes it.
TOKEN_SHAPE: Final = TokenShape(max_length=MAX_TOKEN_LENGTH, parts=2)
_LIVE: Final = "live:"
_USED: Final = "used:"
_LEEWAY: Final = 5.0  # seconds a record outlives its token, so a late replay reads "used"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class RecoveryClaims:
    """What a verified token says."""

    purpose: TokenPurpose
    user_id: str
    expires_at: float
    nonce: str
    fingerprint: str
    redirect_to: str | None = None
    new_email: str | None = None

    @property
    def nonce_digest(self) -> str:
        return hashlib.sha256(self.nonce.encode("ascii")).hexdigest()

    @property
    def record_key(self) -> str:
        return record_key(self.purpose, self.user_id)


def record_key(purpose: str, user_id: str) -> str:
    return f"recovery:{{u:{user_id}}}:{purpose}"


@dataclass(frozen=True)
class LiveRecord:
    """The store record of the live token: its raw value and the session to keep, if any."""

    raw: str
    keep_session: str | None


class RecoveryTokens:
    """Mints, reads and consumes recovery tokens."""

    def __init__(self, keys: KeyRing, clock: Clock, store: KeyValueStore) -> None:
        self.keys = keys
        self.clock = clock
        self.store = store

    # -- minting ------------------------------------------------------------------------------

    def fingerprint(self, purpose: str, user_id: str, snapshot: list[Any], index: int = 0) -> str:
        material = json.dumps([purpose, user_id, *snapshot], default=str, separators=(",", ":"))
        return self.keys.digest(Purpose.RECOVERY_STATE, material, index)[:32]

    def _sign(self, purpose: str, body: str, index: int = 0) -> str:
        key = self.keys.key(_KEY_LABELS[purpose], index)
        return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())

    def _signed_by_any_key(self, purpose: str, body: str, signature: str) -> bool:
        """Constant-time check of ``signature`` under every key of the ring (as bytes)."""
        presented = signature.encode("ascii")
        valid = False
        for index in range(self.keys.size):
            valid |= hmac.compare_digest(self._sign(purpose, body, index).encode(), presented)
        return valid

    async def issue(
        self,
        purpose: TokenPurpose,
        user_id: str | None,
        snapshot: list[Any],
        ttl: float,
        *,
        redirect_to: str | None = None,
        new_email: str | None = None,
        keep_session: str | None = None,
    ) -> str:
        """Mint a token and make it the user's live one for ``purpose``.

        ``user_id=None`` mints a token for nobody and writes its record under a throwaway key:
        the same work as a real request, for requests about accounts that do not exist.
        """
        subject = user_id if user_id is not None else "0"
        claims: dict[str, Any] = {
            "p": purpose,
            "u": subject,
            "x": int(self.clock.now() + ttl),
            "n": secrets.token_urlsafe(16),
            "f": self.fingerprint(purpose, subject, snapshot),
        }
        if redirect_to is not None:
            claims["r"] = redirect_to
        if new_email is not None:
            claims["m"] = new_email
        body = _b64(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        token = f"{body}.{self._sign(purpose, body)}"
        digest = hashlib.sha256(claims["n"].encode("ascii")).hexdigest()
        if user_id is None:
            key = f"recovery:decoy:{purpose}:{digest}"
        else:
            key = record_key(purpose, user_id)
        await self.store.set(key, f"{_LIVE}{digest}:{keep_session or ''}", ttl + _LEEWAY)
        return token

    # -- redeeming ----------------------------------------------------------------------------

    def read(self, purpose: TokenPurpose, token: str) -> RecoveryClaims:
        """Check signature, purpose and expiry; raise ``InvalidRecoveryToken`` otherwise."""
        # A link token is client text: its shape first, so that nothing below meets non-ASCII.
        if not TOKEN_SHAPE.check(token):
            raise InvalidRecoveryToken("malformed")
        body, _, signature = token.partition(".")
        if not self._signed_by_any_key(purpose, body, signature):
            raise InvalidRecoveryToken("bad signature or wrong purpose")
        try:
            data = json.loads(_unb64(body))
            claims = RecoveryClaims(
                purpose=data["p"],
                user_id=str(data["u"]),
                expires_at=float(data["x"]),
                nonce=str(data["n"]),
                fingerprint=str(data["f"]),
                redirect_to=data.get("r"),
                new_email=data.get("m"),
            )
        except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
            raise InvalidRecoveryToken("malformed claims") from None
        if claims.purpose != purpose:  # belt and braces: the key is per purpose already
            raise InvalidRecoveryToken("wrong purpose")
        if claims.expires_at <= self.clock.now():
            raise InvalidRecoveryToken("expired")
        return claims

    def state_matches(self, claims: RecoveryClaims, snapshot: list[Any]) -> bool:
        """Constant-time check that the account is still in the state the token was minted for."""
        found = False
        for index in range(self.keys.size):
            expected = self.fingerprint(claims.purpose, claims.user_id, snapshot, index)
            found |= hmac.compare_digest(expected, claims.fingerprint)
        return found

    async def live_record(self, claims: RecoveryClaims) -> LiveRecord:
        """The live record of this very token; ``InvalidRecoveryToken`` (``used`` when it was
        redeemed already) otherwise. Reads only: nothing is consumed here."""
        raw = await self.store.get(claims.record_key)
        return self._live(claims, raw)

    def _live(self, claims: RecoveryClaims, raw: str | None) -> LiveRecord:
        mine = claims.nonce_digest
        if raw is not None and raw.startswith(_LIVE):
            digest, _, keep = raw[len(_LIVE) :].partition(":")
            if hmac.compare_digest(digest, mine):
                return LiveRecord(raw, keep or None)
        if raw is not None and hmac.compare_digest(raw, _USED + mine):
            raise InvalidRecoveryToken("already used", used=True)
        raise InvalidRecoveryToken("superseded, expired or unknown")

    def _ttl(self, claims: RecoveryClaims) -> float:
        return max(1.0, claims.expires_at - self.clock.now() + _LEEWAY)

    async def consume(self, claims: RecoveryClaims, record: LiveRecord) -> None:
        """Burn the token in one atomic step; every concurrent loser gets an error."""
        used = _USED + claims.nonce_digest
        if await self.store.compare_and_set(claims.record_key, record.raw, used, self._ttl(claims)):
            return
        self._live(claims, await self.store.get(claims.record_key))  # raises the right error
        raise InvalidRecoveryToken("lost a race")

    async def restore(self, claims: RecoveryClaims, record: LiveRecord) -> None:
        """Undo ``consume`` after the database refused the change (unless a newer token has
        taken the slot meanwhile: then this one stays dead)."""
        used = _USED + claims.nonce_digest
        await self.store.compare_and_set(claims.record_key, used, record.raw, self._ttl(claims))
