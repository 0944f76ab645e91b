"""Cookie sessions with CSRF."""

from crudauth.transports.session.manager import LiveSession, SessionManager, SessionSettings
from crudauth.transports.session.transport import SessionTransport

__all__ = ["LiveSession", "SessionManager", "SessionSettings", "SessionTransport"]
