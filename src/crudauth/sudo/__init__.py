"""Sudo mode: a fresh re-authentication that unlocks sensitive routes for one session."""

from crudauth.sudo.config import SudoConfig
from crudauth.sudo.manager import SudoManager
from crudauth.sudo.router import build_sudo_router, sudo_gate

__all__ = ["SudoConfig", "SudoManager", "build_sudo_router", "sudo_gate"]
