"""Audit events: a typed event per security moment, delivered to the app's sinks."""

from crudauth.audit.log import AuditEvent as AuditEvent
from crudauth.audit.log import AuditLog as AuditLog
from crudauth.audit.log import AuditSink as AuditSink
from crudauth.audit.log import Events as Events
from crudauth.audit.log import log_sink as log_sink

__all__ = ["AuditEvent", "AuditLog", "AuditSink", "Events", "log_sink"]
