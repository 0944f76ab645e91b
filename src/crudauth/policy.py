"""``PasswordPolicy``: the rules a new password must meet (register, set, change, reset)."""

from __future__ import annotations

import inspect
import string
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from crudauth.errors import ConfigurationError, PasswordRejected
from crudauth.passwords import MAX_PASSWORD_BYTES, normalize_password

Source = Literal["register", "set", "change", "reset"]


@dataclass(frozen=True)
class PasswordContext:
    """What a validator may know about the password being set."""

    source: Source
    username: str | None = None
    email: str | None = None
    user: Any = None


Validator = (
    Callable[[str], Awaitable[None] | None]
    | Callable[[str, PasswordContext], Awaitable[None] | None]
)


@dataclass(frozen=True)
class PasswordPolicy:
    """Built-in rules plus optional validators that raise ``ValueError`` to refuse.

    Length counts Unicode code points of the NFKC form. Input above 1024 bytes is refused
    before any hashing.
    """

    min_length: int = 8
    require_uppercase: bool = False
    require_lowercase: bool = False
    require_digit: bool = False
    require_special: bool = False
    validators: Sequence[Validator] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.min_length < 1:
            raise ConfigurationError("PasswordPolicy.min_length must be at least 1")
        object.__setattr__(self, "validators", tuple(self.validators))
        for validator in self.validators:
            if not callable(validator):
                raise ConfigurationError("PasswordPolicy.validators must be callables")

    async def check(self, password: str, context: PasswordContext, field: str = "password") -> None:
        """Raise ``PasswordRejected`` listing every failed rule."""
        loc = ["body", field]
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            msg = f"Password must be at most {MAX_PASSWORD_BYTES} bytes"
            raise PasswordRejected(
                field,
                [
                    {
                        "type": "string_too_long",
                        "loc": loc,
                        "msg": msg,
                        "ctx": {"max_length": MAX_PASSWORD_BYTES},
                    }
                ],
            )
        pw = normalize_password(password)
        errors: list[dict[str, Any]] = []
        if len(pw) < self.min_length:
            errors.append(
                {
                    "type": "string_too_short",
                    "loc": loc,
                    "msg": f"String should have at least {self.min_length} characters",
                    "ctx": {"min_length": self.min_length},
                }
            )
        rules = (
            (self.require_uppercase, any(c.isupper() for c in pw), "an uppercase letter"),
            (self.require_lowercase, any(c.islower() for c in pw), "a lowercase letter"),
            (self.require_digit, any(c.isdigit() for c in pw), "a digit"),
            (self.require_special, any(_is_special(c) for c in pw), "a special character"),
        )
        for required, met, what in rules:
            if required and not met:
                errors.append(_policy_error(loc, f"Password must contain {what}"))
        if errors:
            raise PasswordRejected(field, errors)
        for validator in self.validators:
            try:
                result = (
                    validator(pw, context)  # type: ignore[call-arg]
                    if _arity(validator) >= 2
                    else validator(pw)  # type: ignore[call-arg]
                )
                if inspect.isawaitable(result):
                    await result
            except ValueError as exc:
                raise PasswordRejected(field, [_policy_error(loc, str(exc))]) from None


def _policy_error(loc: list[str], msg: str) -> dict[str, Any]:
    return {"type": "password_policy", "loc": loc, "msg": msg, "ctx": {"reason": msg}}


def _is_special(char: str) -> bool:
    return char in string.punctuation or not (char.isalnum() or char.isspace())


def _arity(func: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 2
    return len(positional)


# -- opt-in validators ---------------------------------------------------------------------------

COMMON_PASSWORDS_FILE = "data/common-passwords.txt"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The bundled list of the 10,000 most common passwords, lower-cased (read once)."""
    text = resources.files("crudauth").joinpath(COMMON_PASSWORDS_FILE).read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def common_password_validator(
    extra: Iterable[str] = (),
) -> Callable[[str], None]:
    """A validator refusing the 10,000 most common passwords (and ``extra``), ignoring case.

    ASVS 6.2.4 asks for at least the top 3,000. Opt in with
    ``PasswordPolicy(validators=[common_password_validator()])``.
    """
    added = frozenset(word.casefold() for word in extra)

    def not_common(password: str) -> None:
        folded = password.casefold()
        if folded in added or folded in common_passwords():
            raise ValueError("This password is too common")

    return not_common


def context_words_validator(
    words: Iterable[str] = (), *, min_length: int = 4
) -> Callable[[str, PasswordContext], None]:
    """A validator refusing passwords built on the account's own names (ASVS 6.2.11).

    The username, the local part of the email address and ``words`` (say, the app's name) may
    not appear in the password, ignoring case. Words shorter than ``min_length`` are refused
    only as the whole password, so a three-letter username does not forbid every password
    that happens to contain it.
    """
    if min_length < 1:
        raise ConfigurationError("context_words_validator(min_length=...) must be >= 1")
    fixed = [w.casefold() for w in words if w.strip()]

    def no_context_words(password: str, context: PasswordContext) -> None:
        folded = password.casefold()
        candidates = list(fixed)
        if context.username:
            candidates.append(context.username.casefold())
        if context.email and "@" in context.email:
            candidates.append(context.email.rsplit("@", 1)[0].casefold())
        for word in candidates:
            if folded == word or (len(word) >= min_length and word in folded):
                raise ValueError("This password is too close to your account details")

    return no_context_words
