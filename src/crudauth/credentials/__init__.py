"""Credential changes and their side effects, callable without HTTP (``AccountService``)."""

from crudauth.credentials.commit import Spend, guarded_write
from crudauth.credentials.service import AccountService, Confirm, Revoker, Settled

__all__ = ["AccountService", "Confirm", "Revoker", "Settled", "Spend", "guarded_write"]
