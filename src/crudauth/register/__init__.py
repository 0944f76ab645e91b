"""Registration feature."""

from crudauth.register.router import build_register_route
from crudauth.register.schemas import RegisterIn, UsernameRegisterIn
from crudauth.register.service import (
    REGISTRATION_ALLOWED_FIELDS,
    REGISTRATION_GATED_FIELDS,
    NewUserContext,
    RegistrationService,
)

__all__ = [
    "REGISTRATION_ALLOWED_FIELDS",
    "REGISTRATION_GATED_FIELDS",
    "NewUserContext",
    "RegisterIn",
    "RegistrationService",
    "UsernameRegisterIn",
    "build_register_route",
]
