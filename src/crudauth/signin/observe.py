"""What a sign-in tells the audit log and the metrics, in one place for every first factor."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from crudauth.audit.events import Events
from crudauth.hooks import HookContext
from crudauth.metrics import instruments
from crudauth.runtime import AuthRuntime


def refused(
    runtime: AuthRuntime,
    context: HookContext,
    identifier: str,
    user: Any,
    event: str,
    reason: str,
) -> None:
    """A refused sign-in (``signin.failed`` or ``lockout.engaged``). The log and the operator
    may tell an account-budget refusal from a wrong password; the client never can."""
    user_id = runtime.repo.user_id(user) if user is not None else None
    runtime.audit.emit(event, context, user_id=user_id, identifier=identifier, reason=reason)
    locked = event == Events.LOCKOUT_ENGAGED
    attributes = {"outcome": "locked_out" if locked else "failed", "reason": reason}
    instruments().signin_attempts.add(1, attributes)
    if locked:
        instruments().lockouts.add(1)


def signed_in(runtime: AuthRuntime, request: Request, transport: str, user_id: Any) -> None:
    """A sign-in that stands (after step 7 of the pipeline)."""
    context = runtime.hook_context(request, transport)
    runtime.audit.emit(Events.SIGNIN_SUCCEEDED, context, user_id=user_id)
    instruments().signin_attempts.add(1, {"outcome": "succeeded", "reason": "ok"})
