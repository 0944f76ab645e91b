"""Helpers under the import paths of the reference library (``crudauth.utils``).

Each name is a re-export of the one implementation in its own module (passwords, identifiers,
the client address), so code written for the reference imports them unchanged.
"""

from crudauth.http.request import get_client_ip
from crudauth.identity.identifiers import canonical_email, canonical_identifier, mask_email
from crudauth.passwords import (
    LegacyVerifier,
    dummy_verify_password,
    get_password_hash,
    is_unusable_password,
    make_unusable_password,
    normalize_password,
    verify_password,
)

__all__ = [
    "LegacyVerifier",
    "canonical_email",
    "canonical_identifier",
    "dummy_verify_password",
    "get_client_ip",
    "get_password_hash",
    "is_unusable_password",
    "make_unusable_password",
    "mask_email",
    "normalize_password",
    "verify_password",
]
