"""Account feature: routes for the signed-in user."""

from crudauth.account.router import build_account_router

__all__ = ["build_account_router"]
