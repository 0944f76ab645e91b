"""Two-factor sign-in: TOTP (RFC 6238) and single-use recovery codes.

``CRUDAuth(mfa=MfaConfig(issuer=..., encryption_key=...))`` turns it on; see docs/mfa.md.
"""

from crudauth.mfa.config import MfaConfig, MfaRequirement
from crudauth.mfa.service import MfaService

__all__ = ["MfaConfig", "MfaRequirement", "MfaService"]
