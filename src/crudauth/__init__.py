"""crudauth: authentication for FastAPI over your own SQLAlchemy user model."""

from crudauth.auth import CRUDAuth
from crudauth.clock import Clock, FrozenClock, SystemClock
from crudauth.config import CookieConfig
from crudauth.email import (
    DeliveryChannel,
    DeliveryIntent,
    DeliveryKind,
    EmailChannel,
    EmailConfig,
    EmailContext,
    EmailFlowResult,
    EmailFlowService,
    EmailSender,
)
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
from crudauth.http.redirects import safe_redirect_path
from crudauth.identity import (
    AuthUserMixin,
    IdentityConfig,
    UserRepository,
    make_auth_identity,
)
from crudauth.mfa import MfaConfig, MfaService
from crudauth.oauth import OAuthAccountService, OAuthCredentials
from crudauth.passwords import (
    PasswordHasher,
    get_password_hash,
    get_password_hash_async,
    is_unusable_password,
    make_unusable_password,
    verify_password,
    verify_password_async,
)
from crudauth.policy import (
    PasswordContext,
    PasswordPolicy,
    common_password_validator,
    context_words_validator,
)
from crudauth.principal import Principal
from crudauth.register import (
    REGISTRATION_ALLOWED_FIELDS,
    REGISTRATION_GATED_FIELDS,
    NewUserContext,
)
from crudauth.register.service import NewUserFields
from crudauth.storage.database import DatabaseStore
from crudauth.sudo import SudoConfig, SudoManager
from crudauth.transports import AuthContext, BearerTransport, SessionTransport, Transport
from crudauth.transports.session import SessionManager
from crudauth.transports.session.management import SessionInfo

__version__ = "0.1.0"
"""The version of this package."""

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
    "DatabaseStore",
    "DeliveryChannel",
    "DeliveryIntent",
    "DeliveryKind",
    "DuplicateValueException",
    "EmailChannel",
    "EmailConfig",
    "EmailContext",
    "EmailFlowResult",
    "EmailFlowService",
    "EmailSender",
    "ForbiddenException",
    "FrozenClock",
    "HookContext",
    "IdentityConfig",
    "MfaConfig",
    "MfaService",
    "NewUserContext",
    "NewUserFields",
    "NotFoundException",
    "OAuthAccountException",
    "OAuthAccountService",
    "OAuthCredentials",
    "PasswordContext",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordPolicyException",
    "Principal",
    "RateLimitException",
    "SessionInfo",
    "SessionManager",
    "SessionTransport",
    "SudoConfig",
    "SudoLockoutError",
    "SudoManager",
    "SystemClock",
    "Transport",
    "UnauthorizedException",
    "UnprocessableEntityException",
    "UserRepository",
    "ValueTooLongException",
    "__version__",
    "common_password_validator",
    "context_words_validator",
    "get_password_hash",
    "get_password_hash_async",
    "is_unusable_password",
    "make_auth_identity",
    "make_unusable_password",
    "safe_redirect_path",
    "verify_password",
    "verify_password_async",
]
