"""Operator actions as services: deployment checks, accounts, sessions, keys."""

from crudauth.operations.admin import KeyStatus as KeyStatus
from crudauth.operations.admin import Operations as Operations
from crudauth.operations.admin import SessionLine as SessionLine
from crudauth.operations.admin import generate_secret as generate_secret
from crudauth.operations.doctor import Finding as Finding
from crudauth.operations.doctor import diagnose as diagnose

__all__ = ["Finding", "KeyStatus", "Operations", "SessionLine", "diagnose", "generate_secret"]
