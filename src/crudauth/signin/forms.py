"""The sign-in form of ``POST /login`` and ``POST /token``."""

from typing import Annotated, Final

from fastapi import Form

from crudauth.identity.identifiers import MAX_EMAIL_LENGTH
from crudauth.passwords import MAX_PASSWORD_FIELD

#: Field caps of the sign-in form (422 above them, before any lookup or hashing). Generous:
#: up to them, an identifier over 320 characters or a password over 1024 bytes is refused as
#: a wrong password, after the same work as any other attempt.
MAX_IDENTIFIER: Final = MAX_EMAIL_LENGTH
MAX_FIELD: Final = 1024


class LoginForm:
    """The sign-in form of ``/login`` and ``/token``: OAuth2's password form plus
    ``remember_me``. ``client_id``, ``client_secret`` and ``grant_type`` are accepted for
    OAuth2 clients and ignored."""

    def __init__(
        self,
        username: Annotated[str, Form(max_length=MAX_IDENTIFIER)],
        password: Annotated[str, Form(max_length=MAX_PASSWORD_FIELD)],
        remember_me: Annotated[bool, Form()] = False,
        scope: Annotated[str, Form(max_length=MAX_FIELD)] = "",
        client_id: Annotated[str | None, Form(max_length=MAX_FIELD)] = None,
        client_secret: Annotated[str | None, Form(max_length=MAX_FIELD)] = None,
        grant_type: Annotated[str | None, Form(max_length=MAX_FIELD)] = None,
    ) -> None:
        self.username = username
        self.password = password
        self.remember_me = remember_me
        self.scopes = scope.split()
