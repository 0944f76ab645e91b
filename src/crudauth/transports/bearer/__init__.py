"""Bearer tokens: JWT access tokens and rotating refresh tokens."""

from crudauth.transports.bearer.transport import BearerTransport, IssuedTokens

__all__ = ["BearerTransport", "IssuedTokens"]
