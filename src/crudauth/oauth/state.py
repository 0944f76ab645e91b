"""OAuth state: one authorization request, bound to the browser that started it.

A browser-bound single-use record (``crudauth.storage.browser_bound``):

- The ``state`` value is 256 random bits; the store keeps the record under a keyed hash of
  it (``oauth_state:<hmac>``), never the value itself, for ten minutes.
- The record holds the provider, the PKCE verifier, the nonce, the safe ``redirect_to`` and
  the keyed hash of a second secret that only this browser holds, in the HttpOnly
  ``oauth_state`` cookie: a state (and code) replayed from another browser is refused.
- ``consume`` takes the record with the store's atomic ``get_and_delete``: of any number of
  callbacks carrying one state, on any number of workers, exactly one gets it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Final

from crudauth.keys import Purpose
from crudauth.oauth.types import INVALID_STATE, OAuthFailure, OAuthState
from crudauth.runtime import AuthRuntime
from crudauth.storage.browser_bound import TOKEN_SHAPE, BrowserBoundRecords, new_secret

STATE_TTL_SECONDS: Final = 600
STATE_COOKIE: Final = "oauth_state"


@dataclass(frozen=True)
class StartedAuthorization:
    state: str
    browser_secret: str
    record: OAuthState


class StateStore:
    """Mints and consumes OAuth state records in the shared single-use store."""

    def __init__(self, runtime: AuthRuntime) -> None:
        self.runtime = runtime
        self.records = BrowserBoundRecords(
            runtime.tokens,
            runtime.keys,
            prefix="oauth_state:",
            token_purpose=Purpose.OAUTH_STATE,
            binding_purpose=Purpose.OAUTH_BROWSER,
            rotation=True,  # a rotated secret keeps live states
        )

    async def begin(
        self, provider: str, *, redirect_to: str | None, link_user_id: str | None = None
    ) -> StartedAuthorization:
        state = new_secret()
        browser = new_secret()
        record = OAuthState(
            provider=provider,
            code_verifier=secrets.token_urlsafe(32),  # 43 characters (RFC 7636 §4.1)
            nonce=secrets.token_urlsafe(32),
            browser=self.records.binding(browser),
            redirect_to=redirect_to,
            created_at=self.runtime.clock.now(),
            link_user_id=link_user_id,
        )
        await self.records.put(state, json.dumps(record.to_dict()), STATE_TTL_SECONDS)
        return StartedAuthorization(state, browser, record)

    async def consume(self, state: str | None, browser_secret: str | None) -> OAuthState:
        """The record of ``state``, removed; ``OAuthFailure("invalid_state")`` when there is
        none, it was used, it expired, or this browser did not start it."""
        if not TOKEN_SHAPE.check(state):
            raise OAuthFailure(INVALID_STATE, "no state or not ours")
        raw = await self.records.take(state)
        if raw is None:
            raise OAuthFailure(INVALID_STATE, "unknown, used or expired state")
        record = OAuthState.from_dict(json.loads(raw))
        if record.created_at + STATE_TTL_SECONDS < self.runtime.clock.now():
            raise OAuthFailure(INVALID_STATE, "expired state")
        if not browser_secret:
            raise OAuthFailure(INVALID_STATE, "no state cookie")
        if not self.records.bound(record.browser, browser_secret):
            raise OAuthFailure(INVALID_STATE, "state started in another browser")
        return record
