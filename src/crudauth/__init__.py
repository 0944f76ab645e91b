"""crudauth: authentication for FastAPI over your own SQLAlchemy user model."""

from crudauth.auth import CRUDAuth
from crudauth.clock import Clock, FrozenClock, SystemClock
from crudauth.config import CookieConfig
from crudauth.errors import ConfigurationError, CrudAuthError
from crudauth.exceptions import (
    BadRequestException,
    CSRFException,
    DuplicateValueException,
    ForbiddenException,
    NotFoundException,
    OAuthAccountException,
    PasswordPolicyException,
    RateLimitException,
    SudoLockoutError,
    UnauthorizedException,
    UnprocessableEntityException,
    ValueTooLongException,
)
from crudauth.hooks import AuthHooks, HookContext
from crudauth.identity import (
    AuthUserMixin,
    IdentityConfig,
    UserRepository,
    make_auth_identity,
)
from crudauth.passwords import (
    PasswordHasher,
    get_password_hash,
    get_password_hash_async,
    is_unusable_password,
    make_unusable_password,
    verify_password,
    verify_password_async,
)
from crudauth.policy import PasswordContext, PasswordPolicy
from crudauth.principal import Principal
from crudauth.register import (
    REGISTRATION_ALLOWED_FIELDS,
    REGISTRATION_GATED_FIELDS,
    NewUserContext,
)
from crudauth.transports import AuthContext, BearerTransport, SessionTransport, Transport
from crudauth.transports.session import SessionManager

__version__ = "0.1.0"

__all__ = [
    "REGISTRATION_ALLOWED_FIELDS",
    "REGISTRATION_GATED_FIELDS",
    "AuthContext",
    "AuthHooks",
    "AuthUserMixin",
    "BadRequestException",
    "BearerTransport",
    "CRUDAuth",
    "CSRFException",
    "Clock",
    "ConfigurationError",
    "CookieConfig",
    "CrudAuthError",
    "DuplicateValueException",
    "ForbiddenException",
    "FrozenClock",
    "HookContext",
    "IdentityConfig",
    "NewUserContext",
    "NotFoundException",
    "OAuthAccountException",
    "PasswordContext",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordPolicyException",
    "Principal",
    "RateLimitException",
    "SessionManager",
    "SessionTransport",
    "SudoLockoutError",
    "SystemClock",
    "Transport",
    "UnauthorizedException",
    "UnprocessableEntityException",
    "UserRepository",
    "ValueTooLongException",
    "__version__",
    "get_password_hash",
    "get_password_hash_async",
    "is_unusable_password",
    "make_auth_identity",
    "make_unusable_password",
    "verify_password",
    "verify_password_async",
]
