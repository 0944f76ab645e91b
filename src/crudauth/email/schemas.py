"""Request bodies of the recovery routes, and the fixed texts they answer with."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, EmailStr, Field, create_model

from crudauth.http.redirects import MAX_REDIRECT_LENGTH
from crudauth.passwords import MAX_PASSWORD_FIELD

VERIFY_SENT_EMAIL: Final = "If an account exists, a verification email has been sent."
VERIFY_SENT_MESSAGE: Final = "If an account exists, a verification message has been sent."
RESET_SENT_EMAIL: Final = "If an account exists, a password reset email has been sent."
RESET_SENT_MESSAGE: Final = "If an account exists, a password reset message has been sent."
CHANGE_SENT: Final = "If the address is available, a confirmation email has been sent."
VERIFIED: Final = "Verified successfully."
PASSWORD_RESET: Final = "Password reset successfully."  # noqa: S105 - a reply text
EMAIL_CHANGED: Final = "Email changed successfully."

MAX_TOKEN: Final = 2048
MAX_PASSWORD: Final = MAX_PASSWORD_FIELD


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token: str = Field(max_length=MAX_TOKEN)


class ResetConfirmIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token: str = Field(max_length=MAX_TOKEN)
    new_password: str = Field(max_length=MAX_PASSWORD)


class EmailChangeIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    new_email: EmailStr = Field(max_length=320)
    password: str = Field(max_length=MAX_PASSWORD)
    redirect_to: str | None = Field(default=None, max_length=MAX_REDIRECT_LENGTH)


def factor_request_schema(factor: str) -> type[BaseModel]:
    """``{<factor>, redirect_to?}``: an ``EmailStr`` for email, a plain string otherwise."""
    value_type: Any = EmailStr if factor == "email" else str
    fields: dict[str, Any] = {
        factor: (value_type, Field(min_length=1, max_length=320)),
        "redirect_to": (str | None, Field(default=None, max_length=MAX_REDIRECT_LENGTH)),
    }
    name = f"{factor.title().replace('_', '')}RecoveryRequest"
    return create_model(name, __config__=ConfigDict(extra="ignore"), **fields)
