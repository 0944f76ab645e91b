"""Bearer tokens: JWT access tokens and rotating refresh tokens."""

from crudauth.transports.bearer.results import IssuedTokens
from crudauth.transports.bearer.transport import BearerTransport

__all__ = ["BearerTransport", "IssuedTokens"]
