"""Request bodies for ``POST /register``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, EmailStr


class RegisterIn(BaseModel):
    """The default registration body."""

    model_config = ConfigDict(extra="ignore")

    email: EmailStr
    username: str
    password: str


class UsernameRegisterIn(BaseModel):
    """The registration body of a username-only account shape."""

    model_config = ConfigDict(extra="ignore")

    username: str
    password: str
