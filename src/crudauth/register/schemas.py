"""Request bodies for ``POST /register``."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from crudauth.identity.identifiers import MAX_EMAIL_LENGTH
from crudauth.passwords import MAX_PASSWORD_FIELD

#: Only a cap on attacker-sized input: the service applies the column's own limit (at most
#: 150 characters) with its own message to any username under it.
MAX_NAME: Final = MAX_EMAIL_LENGTH


class RegisterIn(BaseModel):
    """The default registration body."""

    model_config = ConfigDict(extra="ignore")

    email: EmailStr = Field(max_length=MAX_EMAIL_LENGTH)
    username: str = Field(max_length=MAX_NAME)
    password: str = Field(max_length=MAX_PASSWORD_FIELD)


class UsernameRegisterIn(BaseModel):
    """The registration body of a username-only account shape."""

    model_config = ConfigDict(extra="ignore")

    username: str = Field(max_length=MAX_NAME)
    password: str = Field(max_length=MAX_PASSWORD_FIELD)
