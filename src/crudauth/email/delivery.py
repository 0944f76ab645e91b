"""Delivery: what a recovery message is, who may carry it, and the built-in email channel.

A ``DeliveryIntent`` goes to every configured ``DeliveryChannel``. Channels receive the user as
``repo.to_dict(user)``, which never holds the password hash, TOTP secret or recovery codes. The
``EmailSender`` behind ``EmailChannel`` sees even less: an ``EmailContext`` carries the link but
neither the raw token nor anything the requester typed.
"""

from __future__ import annotations

import enum
import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

if TYPE_CHECKING:
    from crudauth.email.config import EmailConfig


class DeliveryKind(str, enum.Enum):
    """Why a message is sent."""

    VERIFY_EMAIL = "verify_email"
    VERIFY_RECOVERY = "verify_recovery"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a message kind, not a secret
    CHANGE_EMAIL = "change_email"
    EXISTING_ACCOUNT = "existing_account"
    EMAIL_CHANGED = "email_changed"
    LINK_ACCOUNT = "link_account"
    WELCOME = "welcome"  # kept for compatibility; crudauth never sends it
    RECOVERY_CODE_USED = "recovery_code_used"
    MFA_DISABLED = "mfa_disabled"


@dataclass(frozen=True)
class DeliveryIntent:
    """One message to deliver. ``token`` is ``None`` for notices that carry no link."""

    kind: DeliveryKind
    token: str | None
    user: Mapping[str, Any]
    recipient: str
    expires_in: int | None = None


@dataclass(frozen=True)
class EmailContext:
    """What an ``EmailSender`` may use to render its own template. Never the raw token."""

    kind: DeliveryKind
    link: str | None
    recipient: str
    expires_in: int | None = None


@runtime_checkable
class EmailSender(Protocol):
    """Sends one plain-text message (sync or async). Plug in SMTP, an API, or a queue."""

    def send(
        self, *, to: str, subject: str, body: str, kind: DeliveryKind, context: EmailContext
    ) -> Any: ...


class DeliveryChannel(ABC):
    """A way to reach a user: email, SMS, a push service.

    ``deliver`` receives every intent; a channel ignores the kinds it does not handle. Only
    channels with ``sends_email = True`` receive ``change_email`` and ``email_changed``, which
    go to email addresses by definition.
    """

    sends_email: bool = False

    @abstractmethod
    async def deliver(self, intent: DeliveryIntent, db: Any) -> None:
        """Send the message for ``intent``; raising is logged and never changes the answer."""

    def rehearse(self, intent: DeliveryIntent) -> None:  # noqa: B027 - optional, no-op default
        """Do the local work of ``deliver`` without sending (for requests about no account),
        so that both kinds of request cost the same."""


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    context: EmailContext


_SUBJECTS: Final[Mapping[DeliveryKind, str]] = {
    DeliveryKind.VERIFY_EMAIL: "Confirm your email address",
    DeliveryKind.VERIFY_RECOVERY: "Confirm your recovery address",
    DeliveryKind.RESET_PASSWORD: "Reset your password",
    DeliveryKind.CHANGE_EMAIL: "Confirm your new email address",
    DeliveryKind.EXISTING_ACCOUNT: "You already have an account",
    DeliveryKind.EMAIL_CHANGED: "Your email address was changed",
    DeliveryKind.LINK_ACCOUNT: "Confirm signing in with another provider",
    DeliveryKind.WELCOME: "Welcome",
    DeliveryKind.RECOVERY_CODE_USED: "A recovery code was used on your account",
    DeliveryKind.MFA_DISABLED: "Two-factor sign-in was turned off",
}

_TEXTS: Final[Mapping[DeliveryKind, str]] = {
    DeliveryKind.VERIFY_EMAIL: "Open this link to confirm that this address is yours.",
    DeliveryKind.VERIFY_RECOVERY: "Open this link to confirm that this address is yours.",
    DeliveryKind.RESET_PASSWORD: (
        "Someone asked to reset the password of your account. If it was you, open this link "
        "to choose a new one; otherwise ignore this message and your password stays as it is."
    ),
    DeliveryKind.CHANGE_EMAIL: (
        "Open this link to make this address the email of your account. If you did not ask "
        "for this, ignore this message."
    ),
    DeliveryKind.EXISTING_ACCOUNT: (
        "Someone tried to sign up with this address, but it already belongs to an account. "
        "If it was you, sign in instead, or reset your password if you have forgotten it. If "
        "it was not you, you can ignore this message."
    ),
    DeliveryKind.EMAIL_CHANGED: (
        "The email address of your account was just changed, and this address no longer "
        "signs in to it. If you did not do this, reset your password and contact support."
    ),
    DeliveryKind.LINK_ACCOUNT: (
        "Someone signed in with an external provider that vouches for this address, which "
        "already belongs to your account. If it was you, open this link to let that provider "
        "sign you in; otherwise ignore this message and nothing changes."
    ),
    DeliveryKind.WELCOME: "Welcome aboard.",
    DeliveryKind.RECOVERY_CODE_USED: (
        "One of the recovery codes of your account was just used in place of your "
        "authenticator app. If it was not you, reset your password and replace your recovery "
        "codes."
    ),
    DeliveryKind.MFA_DISABLED: (
        "Two-factor sign-in was just turned off for your account. If you did not do this, "
        "reset your password and turn it on again."
    ),
}

_PATHS: Final[Mapping[DeliveryKind, str]] = {
    DeliveryKind.VERIFY_EMAIL: "verify_path",
    DeliveryKind.VERIFY_RECOVERY: "verify_path",
    DeliveryKind.RESET_PASSWORD: "reset_path",
    DeliveryKind.CHANGE_EMAIL: "change_path",
    DeliveryKind.LINK_ACCOUNT: "link_path",
}


def _lifetime(seconds: int | None) -> str:
    if not seconds:
        return ""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"The link expires in {hours} hour{'s' if hours != 1 else ''}."
    minutes = max(1, seconds // 60)
    return f"The link expires in {minutes} minute{'s' if minutes != 1 else ''}."


class EmailChannel(DeliveryChannel):
    """The built-in channel: renders plain-text mail and hands it to ``config.sender``."""

    sends_email = True

    def __init__(self, config: EmailConfig) -> None:
        self.config = config

    def compose(self, intent: DeliveryIntent) -> Message | None:
        """The message for ``intent``, or ``None`` when it is not for an email address."""
        if "@" not in intent.recipient:
            return None  # e.g. a phone number: another channel's business
        if any(ord(ch) < 32 for ch in intent.recipient):
            return None  # never let a stored value split a mail header
        link = None
        path_name = _PATHS.get(intent.kind)
        if path_name is not None and intent.token is not None:
            link = self.config.link(getattr(self.config, path_name), intent.token)
        context = EmailContext(intent.kind, link, intent.recipient, intent.expires_in)
        lines = [_TEXTS[intent.kind]]
        if link is not None:
            if intent.expires_in:
                lines.append(_lifetime(intent.expires_in))
            lines.append(link)  # the body ends with the link
        return Message(_SUBJECTS[intent.kind], "\n\n".join(lines), context)

    def rehearse(self, intent: DeliveryIntent) -> None:
        self.compose(intent)

    async def deliver(self, intent: DeliveryIntent, db: Any) -> None:
        message = self.compose(intent)
        if message is None:
            return
        result = self.config.sender.send(
            to=intent.recipient,
            subject=message.subject,
            body=message.body,
            kind=intent.kind,
            context=message.context,
        )
        if inspect.isawaitable(result):
            await result
