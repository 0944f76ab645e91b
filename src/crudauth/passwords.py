"""Password hashing: argon2id by default, older formats verified and upgraded at the next login.

Formats understood, by the prefix of the stored string:

- ``$argon2id$...``: current default, OWASP parameters (m=19 MiB, t=2, p=1).
- ``$2a$/$2b$/$2y$...``: bcrypt. Tried first as the reference crudauth format (bcrypt over
  base64(SHA-256(NFKC(password))), which sidesteps bcrypt's 72-byte limit), then as plain
  bcrypt of the typed password. Plain bcrypt input over 72 bytes never matches: bcrypt would
  otherwise compare only a prefix.
- ``!...`` or empty: unusable; never matches, yet costs the same as a real check.
- Any other string: offered to the application's legacy verifiers
  (``CRUDAuth(legacy_verifiers=[...])``), in order; a match is upgraded like any older format.
  Without a match it costs one dummy check more than the verifiers themselves, like a wrong
  password.

Hashing runs on a small dedicated thread pool so that memory-hard work neither blocks the event
loop nor starves the shared threadpool that sync routes use.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, TypeVar

import bcrypt
from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from crudauth.metrics import instruments

logger = logging.getLogger("crudauth")

LegacyVerifier: TypeAlias = Callable[[str, str], bool]
"""``(plain_password, stored_hash) -> bool`` for a hash format crudauth does not know.

Called on the hashing pool (it may block), with the password as typed. ``True`` signs the user
in and replaces the stored hash with argon2id; ``False`` or an exception is a wrong password.
"""

MAX_PASSWORD_BYTES: Final = 1024
"""Longer input is refused before any hashing (long-password denial of service)."""

MAX_PASSWORD_FIELD: Final = 4 * MAX_PASSWORD_BYTES
"""Characters a password field of a request body may hold (422 above). Looser than
``MAX_PASSWORD_BYTES`` on purpose: between the two, the policy or the sign-in answers with its
own message; above, the body is refused before any work."""

UNUSABLE_PREFIX: Final = "!"
_T = TypeVar("_T")

_BCRYPT_PREFIXES: Final = ("$2a$", "$2b$", "$2y$")
_B64_SHA256_SHAPE: Final = re.compile(r"^[A-Za-z0-9+/]{43}=$")


def normalize_password(password: str) -> str:
    """The NFKC form that is hashed, so that visually identical input verifies alike."""
    return unicodedata.normalize("NFKC", password)


def is_unusable_password(hashed: str | None) -> bool:
    """True when ``hashed`` can never verify (empty, or marked unusable)."""
    return not hashed or hashed.startswith(UNUSABLE_PREFIX)


def make_unusable_password() -> str:
    """A stored value that no password matches (for accounts that sign in another way)."""
    return UNUSABLE_PREFIX + secrets.token_urlsafe(16)


def _reference_prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


@dataclass(frozen=True, slots=True)
class Verification:
    """Outcome of one password check."""

    ok: bool
    needs_rehash: bool = False


class PasswordHasher:
    """Hashes with argon2id and verifies every supported format.

    ``verify`` always performs exactly one logical check, including for unknown users and
    unusable hashes (against a dummy hash), so that response time does not reveal whether an
    account exists. Subclass or wrap it to count calls in tests.
    """

    def __init__(
        self,
        *,
        time_cost: int = 2,
        memory_cost: int = 19_456,
        parallelism: int = 1,
        max_concurrency: int | None = None,
    ) -> None:
        if time_cost < 1 or memory_cost < 8 * parallelism or parallelism < 1:
            raise ValueError("argon2 parameters out of range")
        self._argon = _Argon2(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        workers = max_concurrency or max(1, (os.cpu_count() or 2) // 2)
        self.max_concurrency = workers
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._dummy: str | None = None
        self.legacy_verifiers: tuple[LegacyVerifier, ...] = ()

    def use_legacy_verifiers(self, verifiers: LegacyVerifier | Sequence[LegacyVerifier]) -> None:
        """Offer hashes of no built-in format to ``verifiers``, in order (see the module doc).

        ``CRUDAuth(legacy_verifiers=...)`` calls this on its hasher. A hasher takes one list:
        giving a different one later raises ``ValueError``.
        """
        chosen: tuple[object, ...] = (verifiers,) if callable(verifiers) else tuple(verifiers)
        if not chosen or not all(callable(v) for v in chosen):
            raise ValueError("legacy_verifiers must be callables (plain, hashed) -> bool")
        if self.legacy_verifiers and self.legacy_verifiers != chosen:
            raise ValueError("this PasswordHasher already has other legacy verifiers")
        self.legacy_verifiers = tuple(v for v in chosen if callable(v))

    # -- sync core ---------------------------------------------------------------------------

    def parameters(self) -> tuple[int, int, int]:
        """argon2id ``(memory_cost in KiB, time_cost, parallelism)`` of new hashes."""
        return (self._argon.memory_cost, self._argon.time_cost, self._argon.parallelism)

    def hash(self, password: str) -> str:
        """Hash ``password`` (NFKC-normalised) with argon2id."""
        _check_length(password)
        return self._argon.hash(normalize_password(password))

    def verify(self, password: str, hashed: str | None) -> Verification:
        """Check ``password`` against ``hashed``; unknown/unusable hashes cost the same."""
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            return Verification(ok=False)
        if hashed is None or is_unusable_password(hashed):
            # Timing defence: an account without a usable hash (or no account at all) still
            # pays for one full hash, so response time does not reveal that it is special.
            self._verify_argon(password, self._dummy_hash())
            return Verification(ok=False)
        if hashed.startswith("$argon2"):
            return self._verify_argon(password, hashed)
        if hashed.startswith(_BCRYPT_PREFIXES):
            return self._verify_bcrypt(password, hashed)
        if self._verify_legacy(password, hashed):
            return Verification(ok=True, needs_rehash=True)
        # Timing defence: an unknown format, or a legacy hash the verifiers did not match,
        # still pays for one full hash, as a wrong password against an argon2id hash does.
        self._verify_argon(password, self._dummy_hash())
        return Verification(ok=False)

    def _verify_legacy(self, password: str, hashed: str) -> bool:
        for verifier in self.legacy_verifiers:
            try:
                if verifier(password, hashed) is True:
                    return True
            except Exception as exc:  # a broken verifier must not turn into a 500 or a sign-in
                # The exception's text may quote the hash or the password: log its type only.
                name = getattr(verifier, "__qualname__", type(verifier).__qualname__)
                logger.warning(
                    "crudauth: legacy password verifier %s raised %s; counted as a wrong password",
                    name,
                    type(exc).__name__,
                )
        return False

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._argon.hash(secrets.token_urlsafe(24))
        return self._dummy

    def _verify_argon(self, password: str, hashed: str) -> Verification:
        normalized = normalize_password(password)
        candidates = [normalized] if normalized == password else [normalized, password]
        for position, candidate in enumerate(candidates):
            try:
                self._argon.verify(hashed, candidate)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                continue
            rehash = position > 0 or self._argon.check_needs_rehash(hashed)
            return Verification(ok=True, needs_rehash=rehash)
        return Verification(ok=False)

    def _verify_bcrypt(self, password: str, hashed: str) -> Verification:
        stored = hashed.encode("ascii", "replace")
        normalized = normalize_password(password)
        prehashed = [_reference_prehash(normalized)]
        if normalized != password:
            prehashed.append(_reference_prehash(password))
        for candidate in prehashed:
            if _bcrypt_check(candidate, stored):
                return Verification(ok=True, needs_rehash=True)
        raw = password.encode("utf-8")
        # Plain bcrypt of the typed password. Refuse input shaped like a base64 SHA-256 digest:
        # otherwise a leaked unsalted digest could be replayed as if it were the password.
        if len(raw) <= 72 and not _B64_SHA256_SHAPE.match(password) and _bcrypt_check(raw, stored):
            return Verification(ok=True, needs_rehash=True)
        return Verification(ok=False)

    # -- async wrappers ----------------------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix="crudauth-hash"
                )
            return self._executor

    async def hash_async(self, password: str) -> str:
        """``hash`` on the hashing pool."""
        _check_length(password)
        return await self._on_pool("hash", self.hash, password)

    async def verify_async(self, password: str, hashed: str | None) -> Verification:
        """``verify`` on the hashing pool."""
        return await self._on_pool("verify", self.verify, password, hashed)

    async def _on_pool(self, operation: str, work: Callable[..., _T], *args: Any) -> _T:
        """Run ``work`` on the pool, measured: the time it takes there, and how many jobs
        wait for a thread meanwhile (a growing queue means sign-ins wait on hashing)."""
        metrics = instruments()
        attributes = {"operation": operation}

        def timed() -> _T:
            metrics.hash_queue.add(-1)
            started = time.perf_counter()
            try:
                return work(*args)
            finally:
                metrics.hash_duration.record(time.perf_counter() - started, attributes)

        def dropped(job: Future[_T]) -> None:
            if job.cancelled():  # it never reached ``timed``
                metrics.hash_queue.add(-1)

        metrics.hash_queue.add(1)
        try:
            job = self._pool().submit(timed)
        except BaseException:
            metrics.hash_queue.add(-1)
            raise
        job.add_done_callback(dropped)
        return await asyncio.wrap_future(job)

    def close(self) -> None:
        """Stop the hashing pool (it is re-created on demand)."""
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None


def _check_length(password: str) -> None:
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password longer than {MAX_PASSWORD_BYTES} bytes")


def _bcrypt_check(candidate: bytes, stored: bytes) -> bool:
    try:
        return bcrypt.checkpw(candidate, stored)
    except ValueError:
        return False


_default_hasher: PasswordHasher | None = None
_default_lock = threading.Lock()


def default_hasher() -> PasswordHasher:
    """The process-wide hasher behind the module-level helpers."""
    global _default_hasher
    with _default_lock:
        if _default_hasher is None:
            _default_hasher = PasswordHasher()
        return _default_hasher


def get_password_hash(password: str) -> str:
    """Hash a password with the default argon2id parameters."""
    return default_hasher().hash(password)


async def get_password_hash_async(password: str) -> str:
    """Hash a password off the event loop."""
    return await default_hasher().hash_async(password)


def verify_password(plain_password: str, hashed_password: str | None) -> bool:
    """True when ``plain_password`` matches ``hashed_password`` in any supported format."""
    return default_hasher().verify(plain_password, hashed_password).ok


def dummy_verify_password(plain_password: str) -> bool:
    """Pay for one verification against a dummy hash and return ``False``.

    For code paths with no account to check (an unknown user): without it, their faster answer
    would tell an attacker which identifiers exist.
    """
    return default_hasher().verify(plain_password, None).ok


async def verify_password_async(plain_password: str, hashed_password: str | None) -> bool:
    """``verify_password`` off the event loop."""
    return (await default_hasher().verify_async(plain_password, hashed_password)).ok
