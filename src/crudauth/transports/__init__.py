"""Transports: where credentials travel."""

from crudauth.transports.base import AuthContext, Transport
from crudauth.transports.session import SessionTransport

__all__ = ["AuthContext", "SessionTransport", "Transport"]
