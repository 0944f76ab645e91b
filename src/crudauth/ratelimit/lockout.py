"""The login lockout: who is counted, in what order, and what a success gives back.

Threat model
- Guessing one account from many addresses: the identifier is counted wherever the attempts
  come from, and the slot is reserved *before* the password is hashed, so N parallel guesses on
  any number of workers evaluate at most ``max_attempts`` passwords per window.
- Guessing many accounts from one address: the address (IPv6 by /64) is counted too.
- Locking a victim out on purpose: a browser that signed in to the account before holds a signed
  device cookie; for it the identifier lock is replaced by a lock on that device alone, so an
  attacker holding the account locked does not lock its owner out. The address lock still
  applies to everyone.
- Unknown identifiers are counted exactly like known ones, so a lock reveals nothing.
- Learning which identifiers belong to one account: every login field of an account (its
  username, its email) shares one account budget, but a refusal by that budget alone is told
  to the client as a wrong password (401 after one dummy verification; the address and
  identifier slots stay counted, as a failure's do), never as a lock. Otherwise the first
  guess at ``carol@example.com`` after ``carol`` was locked would answer 429 where an unknown
  address answers 401, telling anyone who knows a username which email is hers. The password
  is still not evaluated while the account is locked, so the budget holds whatever the
  identifier. A 429 names only a lock whose subject the client already knows: its own
  address, the identifier it typed, or the account of an identifier its device cookie lists
  or that it is signed in to (a password confirmation). Such a client already knows the
  identifier is an account, and its owner is told the truth rather than "wrong password".
- The backend being down means no password is checked at all (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from crudauth.clock import Clock
from crudauth.errors import LockedOut, StoreUnavailable
from crudauth.identity.identifiers import MAX_EMAIL_LENGTH, canonical_identifier
from crudauth.keys import KeyRing, TokenShape
from crudauth.ratelimit.base import RateLimiterBackend
from crudauth.ratelimit.policy import Contended, LockoutConfig

SUBJECT_PURPOSE = "lockout-subject"

logger = logging.getLogger("crudauth")


def address_subject(ip: str) -> str:
    """IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 by its /64 (one customer's block)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass
class Attempt:
    """The slots one sign-in attempt holds."""

    ip_key: str | None
    identifier_key: str
    subject: str  # the identifier's keyed hash; device cookies list these
    #: Set once the identifier resolved to an account: one budget per account, whichever
    #: login field (username, email) the guesses use.
    account_key: str | None = None
    #: What a device cookie lists for the account: bound to its epoch (``token_version``).
    account_device_tag: str | None = None
    #: The client already knows the identifier is an account (its device cookie lists it, or
    #: it is signed in to that account), so a lock of the account may be shown to it as one.
    shows_account_lock: bool = False

    def subject_keys(self) -> list[str]:
        return [k for k in (self.ip_key, self.identifier_key) if k is not None]


class LoginLockout:
    """Reserve before checking a password; release or clear after a success."""

    def __init__(
        self, backend: RateLimiterBackend, config: LockoutConfig, keys: KeyRing, clock: Clock
    ) -> None:
        self.backend = backend
        self.config = config
        self.keys = keys
        self.clock = clock
        #: Sign-ins refused because the backend failed (the lockout always fails closed).
        self.failures = 0

    def subject(self, identifier: str) -> str:
        """A keyed hash of the canonical identifier: raw identifiers are never stored."""
        if len(identifier) > MAX_EMAIL_LENGTH:  # never NFKC attacker-sized input
            identifier = hashlib.sha256(identifier.encode("utf-8", "replace")).hexdigest()
        return self.keys.digest(SUBJECT_PURPOSE, canonical_identifier(identifier))[:32]

    def attempt(
        self, ip: str | None, identifier: str, device_id: str | None, account_known: bool = False
    ) -> Attempt:
        subject = self.subject(identifier)
        ip_key = f"login:ip:{address_subject(ip)}" if ip else None
        if device_id is not None:
            identifier_key = f"login:dev:{device_id}:{subject}"
        else:
            identifier_key = f"login:user:{subject}"
        shows = account_known or device_id is not None
        return Attempt(ip_key, identifier_key, subject, shows_account_lock=shows)

    async def begin(
        self,
        ip: str | None,
        identifier: str,
        device_id: str | None = None,
        *,
        account_known: bool = False,
    ) -> Attempt:
        """Take a slot on every subject, or raise ``LockedOut`` having taken none.

        ``device_id``: this browser's device cookie lists ``identifier``. ``account_known``:
        the caller is signed in to the account ``identifier`` names (a password confirmation).
        """
        attempt = self.attempt(ip, identifier, device_id, account_known)
        keys = [(key, key == attempt.identifier_key) for key in attempt.subject_keys()]
        await self.reserve_all(keys, "sign-in")
        return attempt

    async def reserve_all(self, keys: Sequence[tuple[str, bool]], what: str) -> list[str]:
        """Take a slot on every ``(key, hard_cap)`` in order, or raise ``LockedOut`` having
        kept none; ``StoreUnavailable`` (fail closed) when the backend cannot answer. Every
        metered guess (a password, a second-factor code) reserves through here."""
        now = self.clock.now()
        taken: list[str] = []
        try:
            for key, hard_cap in keys:
                decision = await self.backend.lockout_reserve(
                    key, self.config, now, hard_cap=hard_cap
                )
                if not decision.allowed:
                    for held in taken:
                        await self.backend.lockout_release(held, self.config, now, clear=False)
                    raise LockedOut(decision.retry_after)
                taken.append(key)
        except (Contended, StoreUnavailable) as exc:
            self.failures += 1
            logger.warning(
                "crudauth: login lockout unavailable (%s); refusing the %s (%d so far)",
                type(exc).__name__,
                what,
                self.failures,
            )
            raise StoreUnavailable("lockout backend unavailable", store="ratelimit") from None
        return taken

    def account_subject(self, user_id: object) -> str:
        return self.keys.digest(SUBJECT_PURPOSE, f"account:{user_id}")[:32]

    def account_device_tag(self, user_id: object, epoch: int) -> str:
        """What a device cookie lists for an account. It names the account's epoch, so a
        password reset or change (which moves the epoch) ends every browser's exemption from
        the account lock, a stolen device cookie's included, until that browser signs in
        again."""
        return self.keys.digest(SUBJECT_PURPOSE, f"account:{user_id}:epoch:{epoch}")[:32]

    async def reserve_account(
        self,
        attempt: Attempt,
        user_id: object,
        device_subjects: tuple[str, ...] = (),
        device_id: str | None = None,
        epoch: int = 0,
    ) -> bool:
        """Take a slot on the account itself, before its password is hashed.

        When the account's budget is spent its password must not be evaluated: if the client
        knows the account (``Attempt.shows_account_lock``), give back the slots ``begin`` took
        and raise ``LockedOut``; for anyone else return ``False``, and the attempt fails as a
        wrong password would, keeping those slots (see the module docstring)."""
        subject = self.account_subject(user_id)
        tag = self.account_device_tag(user_id, epoch)
        if device_id is not None and tag in device_subjects:
            key = f"login:dev:{device_id}:{subject}"
        else:
            key = f"login:acct:{subject}"
        now = self.clock.now()
        try:
            # The escalating lock applies per account; the "until cleared" hard cap stays on the
            # identifier key, which is what an admin or a reset clears by name.
            decision = await self.backend.lockout_reserve(key, self.config, now, hard_cap=False)
        except (Contended, StoreUnavailable) as exc:
            self.failures += 1
            logger.warning("crudauth: login lockout unavailable (%s)", type(exc).__name__)
            raise StoreUnavailable("lockout backend unavailable", store="ratelimit") from None
        if not decision.allowed:
            if not attempt.shows_account_lock:
                return False
            for held in attempt.subject_keys():
                await self.backend.lockout_release(held, self.config, now, clear=False)
            raise LockedOut(decision.retry_after)
        attempt.account_key = key
        attempt.account_device_tag = tag
        return True

    async def succeeded(self, attempt: Attempt) -> None:
        """A correct password: the identifier starts afresh; the address gets its slot back
        (``clear_all``) or keeps it counted (``clear_user_only``)."""
        releases = [(attempt.identifier_key, True)]
        if attempt.account_key is not None:
            releases.append((attempt.account_key, True))
        if attempt.ip_key is not None and self.config.on_login_success == "clear_all":
            releases.append((attempt.ip_key, False))
        await self.backend.lockout_release_many(releases, self.config, self.clock.now())

    async def clear(self, identifier: str, user_id: object | None = None) -> None:
        """Forget an identifier's (and its account's) failures and lock, after a password
        reset or by an admin."""
        now = self.clock.now()
        key = f"login:user:{self.subject(identifier)}"
        await self.backend.lockout_release(key, self.config, now, clear=True)
        if user_id is not None:
            account = f"login:acct:{self.account_subject(user_id)}"
            await self.backend.lockout_release(account, self.config, now, clear=True)


# -- device tokens -----------------------------------------------------------------------

# Signed device tokens: proof that this browser signed in to an identifier before.
#
# The token lists keyed hashes of identifiers (never the identifiers) and carries an expiry; it is
# signed under its own purpose key, and every key of the ring verifies it.
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
