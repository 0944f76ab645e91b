"""The account shape: model mixin, identity configuration and the repository."""

from crudauth.identity.config import IdentityConfig
from crudauth.identity.identifiers import canonical_email, canonical_identifier
from crudauth.identity.model import AuthUserMixin, make_auth_identity
from crudauth.identity.repository import LOGICAL_FIELDS, SECRET_FIELDS, UserRepository

__all__ = [
    "LOGICAL_FIELDS",
    "SECRET_FIELDS",
    "AuthUserMixin",
    "IdentityConfig",
    "UserRepository",
    "canonical_email",
    "canonical_identifier",
    "make_auth_identity",
]
