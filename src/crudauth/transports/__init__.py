"""Transports: where credentials travel."""

from crudauth.transports.base import AuthContext, Transport
from crudauth.transports.bearer import BearerTransport
from crudauth.transports.session import SessionTransport

__all__ = ["AuthContext", "BearerTransport", "SessionTransport", "Transport"]
